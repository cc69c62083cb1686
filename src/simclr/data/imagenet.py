"""ImageNet (ILSVRC2012) and its standard 100-class subset, read from the user's own copy.

ImageNet's licence requires every user to register, so nothing here downloads it; ``--download``
explains how to get it instead. Accepted layout of ``DATA_DIR``:

* ``train/<wnid>/*.JPEG`` (as extracted from ``ILSVRC2012_img_train.tar``); the sorted ``wnid``
  sub-folders are the classes, so train and validation labels agree whatever the val layout.
* validation, either foldered, ``val/<wnid>/*.JPEG``, or flat, ``val/ILSVRC2012_val_00000001.JPEG ...``
  plus one ground-truth file, looked up in this order:

  - ``DATA_DIR/LOC_val_solution.csv`` (Kaggle's ``ImageId,PredictionString``; the first token of
    ``PredictionString`` is the wnid);
  - ``DATA_DIR/val_labels.txt``: one ``<file name> <wnid>`` per line (blank- or comma-separated);
  - the devkit, ``DATA_DIR/ILSVRC2012_devkit_t12/data/``: ``ILSVRC2012_validation_ground_truth.txt``
    holds the 1-based ``ILSVRC2012_ID`` of ``ILSVRC2012_val_<k>`` on line ``k``, and ``meta.mat`` maps
    ``ILSVRC2012_ID`` to wnid (read with SciPy).

Flat validation images without a ground-truth entry are skipped and counted, like undecodable files.

``imagenet100`` is the 100-class subset of CMC (Tian et al. 2019), also used by solo-learn; its labels
index the sorted 100 wnids. Images are decoded once, resized (shorter side) and centre-cropped to
``image_size`` (224 by default) by :func:`simclr.data.parallel_decode.decode_files`. The whole train split
at 224 px takes about 190 GB as uint8 (imagenet100: about 19 GB); ``limit`` keeps a stratified subset.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Sequence
from pathlib import Path

import torch

from simclr.data.decode import is_image_file
from simclr.data.folder_listing import find_split_folder
from simclr.data.parallel_decode import decode_files
from simclr.data.request import LoadRequest
from simclr.data.sampling import stratified_subset
from simclr.data.store import ImageStore
from simclr.errors import UserError

__all__ = [
    "IMAGENET100_WNIDS",
    "IMAGENET_IMAGE_SIZE",
    "IMAGENET_SUBSETS",
    "imagenet_download_error",
    "list_imagenet",
    "load_imagenet",
    "read_val_ground_truth",
]

IMAGENET_IMAGE_SIZE = 224

# The ImageNet-100 subset of CMC (Tian, Krishnan & Isola 2019, "Contrastive Multiview Coding",
# arXiv:1906.05849): the file imagenet100.txt of https://github.com/HobbitLong/CMC, in its order; the
# same 100 wnids as solo-learn's solo/data/dataset_subset/imagenet100_classes.txt.
IMAGENET100_WNIDS: tuple[str, ...] = (
    "n02869837", "n01749939", "n02488291", "n02107142", "n13037406", "n02091831", "n04517823", "n04589890",
    "n03062245", "n01773797", "n01735189", "n07831146", "n07753275", "n03085013", "n04485082", "n02105505",
    "n01983481", "n02788148", "n03530642", "n04435653", "n02086910", "n02859443", "n13040303", "n03594734",
    "n02085620", "n02099849", "n01558993", "n04493381", "n02109047", "n04111531", "n02877765", "n04429376",
    "n02009229", "n01978455", "n02106550", "n01820546", "n01692333", "n07714571", "n02974003", "n02114855",
    "n03785016", "n03764736", "n03775546", "n02087046", "n07836838", "n04099969", "n04592741", "n03891251",
    "n02701002", "n03379051", "n02259212", "n07715103", "n03947888", "n04026417", "n02326432", "n03637318",
    "n01980166", "n02113799", "n02086240", "n03903868", "n02483362", "n04127249", "n02089973", "n03017168",
    "n02093428", "n02804414", "n02396427", "n04418357", "n02172182", "n01729322", "n02113978", "n03787032",
    "n02089867", "n02119022", "n03777754", "n04238763", "n02231487", "n03032252", "n02138441", "n02104029",
    "n03837869", "n03494278", "n04136333", "n03794056", "n03492542", "n02018207", "n04067472", "n03930630",
    "n03584829", "n02123045", "n04229816", "n02100583", "n03642806", "n04336792", "n03259280", "n02116738",
    "n02108089", "n03424325", "n01855672", "n02090622",
)  # fmt: skip

# Dataset name -> the wnids it keeps (None: every wnid folder of train/).
IMAGENET_SUBSETS: dict[str, tuple[str, ...] | None] = {"imagenet": None, "imagenet100": IMAGENET100_WNIDS}

_WNID = re.compile(r"n\d{8}")
_KAGGLE_CSV = "LOC_val_solution.csv"
_LABELS_TXT = "val_labels.txt"
_DEVKIT_DATA = Path("ILSVRC2012_devkit_t12") / "data"
_DEVKIT_TRUTH = _DEVKIT_DATA / "ILSVRC2012_validation_ground_truth.txt"
_DEVKIT_META = _DEVKIT_DATA / "meta.mat"
_LAYOUT = (
    "DIR/train/<wnid>/*.JPEG and DIR/val/<wnid>/*.JPEG, or a flat DIR/val/*.JPEG with "
    f"DIR/{_KAGGLE_CSV}, DIR/{_LABELS_TXT} or DIR/{_DEVKIT_DATA.parent}/"
)


def imagenet_download_error(name: str = "imagenet") -> UserError:
    """The error ``--download`` gives for ImageNet: it cannot be fetched automatically (its licence needs a
    registered user), so the message says where to get it, how to lay it out and to pass ``--data-dir``."""
    return UserError(
        f"{name} cannot be downloaded automatically (the ImageNet licence requires registering): sign in at "
        "https://image-net.org, download ILSVRC2012_img_train.tar, ILSVRC2012_img_val.tar and "
        f"ILSVRC2012_devkit_t12.tar.gz, extract them as {_LAYOUT}, then pass --data-dir DIR without --download"
    )


def _dataset_name(subset: Sequence[str] | None) -> str:
    """How messages name the data: ``imagenet``, or ``imagenet100`` for a 100-class subset."""
    return "imagenet" if subset is None else f"imagenet{len(subset)}"


def _image_names(folder: Path) -> list[str]:
    """Sorted names of the image files directly in ``folder`` (hidden files ignored)."""
    with os.scandir(folder) as entries:
        return sorted(e.name for e in entries if is_image_file(e.name) and e.is_file())


def _wnid_folders(folder: Path) -> list[str]:
    """Sorted names of the wnid-named (``n`` + 8 digits) sub-folders of ``folder``."""
    with os.scandir(folder) as entries:
        return sorted(e.name for e in entries if _WNID.fullmatch(e.name) and e.is_dir())


def _classes(root: Path, subset: Sequence[str] | None, what: str) -> list[str]:
    """The class wnids in label order: the sorted wnid folders of ``root/train`` (or the sorted ``subset``,
    every one of which must be among them)."""
    train = root / "train"
    if not train.is_dir():
        raise UserError(
            f"no train/ folder in {root}; {what} must be downloaded by hand (run with --download for how) "
            f"and --data-dir must point at the folder holding {_LAYOUT}"
        )
    found = _wnid_folders(train)
    if not found:
        raise UserError(
            f"{train} has no wnid sub-folders (like n01440764/); extract each class tar of "
            "ILSVRC2012_img_train.tar into train/<wnid>/ and point --data-dir at the folder holding train/"
        )
    if subset is None:
        return found
    missing = sorted(set(subset) - set(found))
    if missing:
        raise UserError(
            f"{len(missing)} of the {len(set(subset))} {what} classes are missing from {train} "
            f"(e.g. {', '.join(missing[:3])}); extract those classes into train/<wnid>/ or use --dataset imagenet"
        )
    return sorted(set(subset))


def _read_kaggle_csv(path: Path) -> dict[str, str]:
    with path.open(newline="") as f:
        rows = csv.reader(f)
        header = [cell.strip() for cell in next(rows, [])]
        if header[:2] != ["ImageId", "PredictionString"]:
            raise UserError(f"{path} does not start with the header ImageId,PredictionString; use Kaggle's file")
        truth: dict[str, str] = {}
        for line, row in enumerate(rows, start=2):
            tokens = row[1].split() if len(row) >= 2 else []
            if not tokens:
                raise UserError(f"{path} line {line}: expected ImageId,PredictionString with a wnid first")
            truth[row[0].strip()] = tokens[0]
    return truth


def _read_labels_txt(path: Path) -> dict[str, str]:
    truth: dict[str, str] = {}
    for line, text in enumerate(path.read_text().splitlines(), start=1):
        fields = text.replace(",", " ").split()
        if not fields:
            continue
        if len(fields) != 2 or not _WNID.fullmatch(fields[1]):
            raise UserError(
                f"{path} line {line}: expected '<file name> <wnid>', e.g. ILSVRC2012_val_00000001.JPEG n01751748"
            )
        truth[os.path.splitext(fields[0])[0]] = fields[1]
    return truth


def _read_devkit(root: Path) -> dict[str, str]:
    meta = root / _DEVKIT_META
    try:
        from scipy.io import loadmat  # SciPy is optional: only the devkit's meta.mat needs it
    except ImportError as e:
        raise UserError(
            f"reading {meta} needs SciPy (pip install 'simclr-kit[imagenet]'); or put a {_LABELS_TXT} or {_KAGGLE_CSV} "
            "in the data folder, or sort val/ into wnid sub-folders"
        ) from e
    try:
        synsets = loadmat(str(meta), squeeze_me=True)["synsets"]
        id_to_wnid = {int(i): str(w) for i, w in zip(synsets["ILSVRC2012_ID"], synsets["WNID"], strict=True)}
    except (OSError, ValueError, KeyError) as e:
        raise UserError(f"cannot read {meta} ({e}); extract ILSVRC2012_devkit_t12.tar.gz again") from e
    truth: dict[str, str] = {}
    ids = (root / _DEVKIT_TRUTH).read_text().split()
    for k, text in enumerate(ids, start=1):
        wnid = id_to_wnid.get(int(text)) if text.isdigit() else None
        if wnid is None:
            raise UserError(f"{root / _DEVKIT_TRUTH} entry {k} ({text!r}) is not an ILSVRC2012_ID of {meta}")
        truth[f"ILSVRC2012_val_{k:08d}"] = wnid
    return truth


def read_val_ground_truth(root: Path) -> dict[str, str]:
    """Validation image name without extension (``ILSVRC2012_val_00000001``) -> wnid, from the first
    ground-truth file found in ``root``: Kaggle's ``LOC_val_solution.csv``, ``val_labels.txt`` or the
    ILSVRC2012 devkit (see the module docstring). A flat ``val/`` folder needs one of them."""
    root = Path(root).expanduser()
    if (root / _KAGGLE_CSV).is_file():
        return _read_kaggle_csv(root / _KAGGLE_CSV)
    if (root / _LABELS_TXT).is_file():
        return _read_labels_txt(root / _LABELS_TXT)
    if (root / _DEVKIT_TRUTH).is_file() and (root / _DEVKIT_META).is_file():
        return _read_devkit(root)
    raise UserError(
        f"no ground truth for the flat val/ folder of {root}: put {_KAGGLE_CSV} "
        f"or {_LABELS_TXT} ('<file name> <wnid>' lines) in {root}, extract ILSVRC2012_devkit_t12.tar.gz there, "
        "or sort val/ into wnid sub-folders"
    )


def list_imagenet(
    split: str, data_dir: Path, *, subset: Sequence[str] | None = None
) -> tuple[list[tuple[Path, int]], list[str], list[tuple[str, str]]]:
    """The files of ``split`` (``train`` / ``train_labeled``, or ``test`` = the val split) without decoding.

    Returns ``(files, class_names, unlabelled)``: ``files`` are ``(path, label)`` with ``label`` the index
    of the wnid in ``class_names`` (the sorted wnid folders of ``train/``, or the sorted ``subset``), so
    train and val agree; validation images of classes outside ``subset`` are left out, and flat
    validation images without a ground-truth entry are returned in ``unlabelled`` as ``(name, reason)``.
    """
    split = _check_split(split)
    root = Path(data_dir).expanduser()
    what = _dataset_name(subset)
    classes = _classes(root, subset, what)
    index = {wnid: i for i, wnid in enumerate(classes)}
    if split == "train":
        train = root / "train"
        return [(train / w / f, index[w]) for w in classes for f in _image_names(train / w)], classes, []
    val = find_split_folder(root, "val")
    if val is None:
        raise UserError(f"no val/ folder in {root}; extract ILSVRC2012_img_val.tar into {root / 'val'}")
    files: list[tuple[Path, int]] = []
    unknown: set[str] = set()
    unlabelled: list[tuple[str, str]] = []
    flat = _image_names(val)
    if flat:
        truth = read_val_ground_truth(root)
        for name in flat:
            wnid = truth.get(os.path.splitext(name)[0])
            if wnid is None:
                unlabelled.append((f"{val.name}/{name}", "no ground-truth label"))
            elif wnid in index:
                files.append((val / name, index[wnid]))
            else:
                unknown.add(wnid)
    else:
        folders = _wnid_folders(val)
        if not folders:
            raise UserError(f"{val} holds neither images nor wnid sub-folders; extract ILSVRC2012_img_val.tar there")
        unknown = set(folders) - set(index)
        files = [(val / w / f, index[w]) for w in folders if w in index for f in _image_names(val / w)]
    if unknown and subset is None:
        raise UserError(
            f"{val} has images of {len(unknown)} class(es) missing from {root / 'train'} "
            f"(e.g. {', '.join(sorted(unknown)[:3])}); extract every class of the train tar"
        )
    return files, classes, unlabelled


def _check_split(split: str) -> str:
    """``train`` for ``train`` and ``train_labeled`` (ImageNet has no unlabelled extra), ``test`` for ``test``."""
    if split in ("train", "train_labeled"):
        return "train"
    if split == "test":
        return "test"
    raise UserError(f"unknown split {split!r}; use one of train, train_labeled, test")


def load_imagenet(request: LoadRequest, subset: Sequence[str] | None = None) -> ImageStore:
    """Decode ``request.split`` (``train``, ``train_labeled`` = ``train``, or ``test`` = val) of an ILSVRC2012
    folder into an :class:`ImageStore` of ``request.image_size`` squares (shorter side resized, centre crop).

    ``subset``: keep only these wnids (``IMAGENET100_WNIDS`` for ``imagenet100``), labelled in sorted
    order. ``request.limit``: a stratified subset of that many files, chosen with ``request.seed`` before
    decoding. ``request.download`` only explains how to get ImageNet (a :class:`UserError`) when the data is
    not there yet. Undecodable and unlabelled files are skipped and listed in ``ImageStore.skipped``.
    """
    split, data_dir = request.split, request.data_dir
    what = _dataset_name(subset)
    root = None if data_dir is None else Path(data_dir).expanduser()
    if request.download and (root is None or not (root / "train").is_dir()):
        raise imagenet_download_error(what)
    if root is None:
        raise UserError(f"{what} needs the ILSVRC2012 folder; pass --data-dir DIR holding {_LAYOUT}")
    files, classes, unlabelled = list_imagenet(split, root, subset=subset)
    labels = torch.tensor([label for _, label in files], dtype=torch.int64)
    if request.limit is not None:
        keep = stratified_subset(labels, request.limit, request.seed).tolist()
        files, labels = [files[i] for i in keep], labels[keep]
    if not files:
        raise UserError(f"no {what} images found for split {split!r} in {root}; the expected layout is {_LAYOUT}")
    names = [path.relative_to(root).as_posix() for path, _ in files]
    paths = [path for path, _ in files]
    images, ok_idx, skipped = decode_files(
        paths, image_size=request.resolved_size(), workers=request.workers, names=names, where=root
    )
    if ok_idx.numel() == 0:
        raise UserError(
            f"no readable image in {root} for split {split!r}: {len(skipped)} file(s) could not be decoded "
            f"(e.g. {skipped[0][0]}: {skipped[0][1]}); re-extract the ILSVRC2012 tars"
        )
    return ImageStore(
        images=images,
        labels=labels.index_select(0, ok_idx),
        class_names=classes,
        file_names=[names[i] for i in ok_idx.tolist()],
        skipped=unlabelled + skipped,
    )
