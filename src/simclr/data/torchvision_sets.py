"""Loaders for torchvision datasets, each producing one :class:`ImageStore` per split.

Every loader first looks for an image-folder layout, ``DIR/{train,test}/<class>/*`` (``test`` may
be ``val``), in ``data_dir`` and in ``data_dir/<name>``; only then does it use torchvision's own
files. The network is touched only when ``download=True`` (torchvision's download code); missing
files otherwise raise :class:`UserError` naming ``--download`` and ``--data-dir``.

Splits: ``"train"`` (pretraining), ``"train_labeled"`` (labelled training data for evaluation;
the same as ``"train"`` except for STL-10) and ``"test"``.

Per-dataset choices:

* ``cifar10`` / ``cifar100``: torchvision's python-pickle batches, 32 px.
* ``stl10``: ``train`` is train (labelled) + unlabeled (labels -1), 105,000 images;
  ``train_labeled`` is the 5,000 labelled images; 96 px. Folder layout: ``train/<class>/*`` plus an
  optional flat ``unlabeled/`` folder.
* ``mnist``: 28 px grayscale, **zero-padded by 2 px to 32 x 32** (digit pixels stay exact, and 32
  suits the CIFAR ResNet stem), replicated to RGB.
* ``imagenette``: torchvision's ``"160px"`` variant (shorter side 160 px, a 94 MB download)
  when ``image_size <= 160``, ``"320px"`` up to 320, ``"full"`` above; resized (shorter side,
  antialiased) and centre-cropped to ``image_size`` (default 128). Splits train / val.
* ``fgvc-aircraft``: ``annotation_level="manufacturer"`` (30 classes), splits trainval / test, the
  20-px copyright banner cut off the bottom before resizing to ``image_size`` (default 128).
* ``fashion-mnist`` and ``emnist`` (split ``byclass``: 62 classes, digits and both cases of letters):
  as ``mnist`` (padded to 32 px, RGB); EMNIST's transposed glyphs are turned upright.
* seed 000's photograph sets (:data:`LISTED_SETS`), resized (shorter side) and centre-cropped to
  ``image_size``: ``caltech101`` (101 classes, the background class dropped as torchvision does),
  ``caltech256`` (257 with clutter), ``eurosat`` (10, 64 px) have no official split: a stratified
  80% / 20% train / test cut seeded with 42. ``dtd`` (47; train+val / test of partition 1),
  ``country211`` (211; train+valid / test), ``food101`` (101; train / test), ``flowers102`` (102;
  train+val / test), ``gtsrb`` (43; train / test, 32 px), ``oxford-iiit-pet`` (37 breeds; trainval /
  test) keep their official test split.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from simclr.data.imagefolder import (
    decode_files,
    find_split_folder,
    has_split_layout,
    load_image_folder,
    load_split_folder,
)
from simclr.data.store import ImageStore, concat_stores
from simclr.data.subset import split_train_val, stratified_subset
from simclr.errors import UserError

__all__ = [
    "DEFAULT_IMAGE_SIZES",
    "HELD_OUT_TEST_FRACTION",
    "IMAGENETTE_CLASSES",
    "LISTED_SETS",
    "LOADERS",
    "SPLITS",
    "SPLIT_SEED",
    "ListedSet",
    "find_folder_layout",
    "load_cifar10",
    "load_cifar100",
    "load_fgvc_aircraft",
    "load_imagenette",
    "load_listed_set",
    "load_mnist",
    "load_mnist_family",
    "load_stl10",
    "resize_images",
]

SPLITS = ("train", "train_labeled", "test")
DEFAULT_IMAGE_SIZES = {
    "cifar10": 32,
    "cifar100": 32,
    "stl10": 96,
    "mnist": 32,
    "imagenette": 128,
    "fgvc-aircraft": 128,
    "fashion-mnist": 32,
    "emnist": 32,
    # Photographs of varied size: 128 px, as imagenette and fgvc-aircraft.
    "caltech101": 128,
    "caltech256": 128,
    "dtd": 128,
    "country211": 128,
    "food101": 128,
    "flowers102": 128,
    "oxford-iiit-pet": 128,
    "eurosat": 64,  # Sentinel-2 tiles are 64 x 64: kept native
    "gtsrb": 32,  # signs are 15-250 px, most under 64; 32 px is the usual benchmark size
}
AIRCRAFT_BANNER_PX = 20
IMAGENETTE_CLASSES = {
    "n01440764": "tench",
    "n02102040": "English springer",
    "n02979186": "cassette player",
    "n03000684": "chain saw",
    "n03028079": "church",
    "n03394916": "French horn",
    "n03417042": "garbage truck",
    "n03425413": "gas pump",
    "n03445777": "golf ball",
    "n03888605": "parachute",
}
_IMAGENETTE_DIRS = {"full": "imagenette2", "320px": "imagenette2-320", "160px": "imagenette2-160"}
_RESIZE_CHUNK = 1024


# --------------------------------------------------------------------------------------- helpers


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")


def _need_dir(data_dir: Path | None, name: str) -> Path:
    if data_dir is None:
        raise UserError(f"{name} needs a data folder; pass --data-dir DIR (with --download to fetch it)")
    return Path(data_dir).expanduser()


def _not_found(name: str, data_dir: Path) -> UserError:
    return UserError(
        f"{name} not found in {data_dir}; pass --download on a connected machine or point "
        "--data-dir at a folder with train/ and test/ class folders"
    )


def _download_failed(name: str, data_dir: Path, err: BaseException) -> UserError:
    return UserError(
        f"downloading {name} into {data_dir} failed ({type(err).__name__}: {err}); check the network "
        "connection or put the files there yourself"
    )


def find_folder_layout(data_dir: Path | None, name: str) -> Path | None:
    """``data_dir`` or ``data_dir/<name>`` when it has train/ and test/ (or val/) sub-folders."""
    if data_dir is None:
        return None
    data_dir = Path(data_dir).expanduser()
    for candidate in (data_dir, data_dir / name):
        if candidate.is_dir() and has_split_layout(candidate):
            return candidate
    return None


def _torchvision_dataset(name: str, data_dir: Path, download: bool, factory: Callable[[], object]):
    """Build a torchvision dataset, turning its 'not found' and download errors into UserError."""
    if not download and not data_dir.is_dir():
        raise _not_found(name, data_dir)
    try:
        return factory()
    except RuntimeError as e:
        if download:
            raise _download_failed(name, data_dir, e) from e
        raise _not_found(name, data_dir) from e
    except OSError as e:  # URLError, HTTP errors, disk full, ...
        if download:
            raise _download_failed(name, data_dir, e) from e
        raise


def resize_images(images: torch.Tensor, image_size: int, chunk: int = _RESIZE_CHUNK) -> torch.Tensor:
    """Resize uint8 ``(N, 3, H, W)`` images: shorter side to ``image_size`` (bilinear, antialiased),
    then centre-crop a square. A no-op when they already are ``image_size`` square."""
    n, c, h, w = images.shape
    if h == image_size and w == image_size:
        return images
    scale = image_size / min(h, w)
    new_h = image_size if h <= w else max(image_size, round(h * scale))
    new_w = image_size if w <= h else max(image_size, round(w * scale))
    top = (new_h - image_size) // 2
    left = (new_w - image_size) // 2
    out = torch.empty((n, c, image_size, image_size), dtype=torch.uint8)
    for lo in range(0, n, chunk):
        x = images[lo : lo + chunk].float()
        x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
        x = x[:, :, top : top + image_size, left : left + image_size]
        out[lo : lo + chunk] = x.round_().clamp_(0, 255).to(torch.uint8)
    return out


def _finish(
    images: torch.Tensor,
    labels: torch.Tensor,
    class_names: list[str],
    image_size: int,
    limit: int | None,
    seed: int,
) -> ImageStore:
    """Subset (before resizing, to save work), resize and wrap in-memory arrays."""
    labels = torch.as_tensor(labels, dtype=torch.int64).reshape(-1)
    if limit is not None:
        keep = stratified_subset(labels, limit, seed)
        images, labels = images.index_select(0, keep), labels.index_select(0, keep)
    images = resize_images(images.contiguous(), image_size)
    return ImageStore(images=images.contiguous(), labels=labels, class_names=list(class_names))


def _from_folder(
    root: Path, split: str, image_size: int | None, workers: int, limit: int | None, seed: int
) -> ImageStore:
    return load_split_folder(
        root,
        "test" if split == "test" else "train",
        image_size=image_size,
        workers=workers,
        limit=limit,
        seed=seed,
    )


# ------------------------------------------------------------------------------------ CIFAR


def _load_cifar(
    name: str,
    split: str,
    data_dir: Path | None,
    download: bool,
    image_size: int | None,
    workers: int,
    limit: int | None,
    seed: int,
) -> ImageStore:
    _check_split(split)
    size = image_size or DEFAULT_IMAGE_SIZES[name]
    folder = find_folder_layout(data_dir, name)
    if folder is not None:
        return _from_folder(folder, split, size, workers, limit, seed)
    root = _need_dir(data_dir, name)
    from torchvision import datasets

    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    ds = _torchvision_dataset(
        name, root, download, lambda: cls(root=str(root), train=split != "test", download=download)
    )
    images = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2)
    return _finish(images, torch.as_tensor(ds.targets), list(ds.classes), size, limit, seed)


def load_cifar10(
    split: str,
    data_dir: Path | None,
    download: bool = False,
    image_size: int | None = None,
    workers: int = 0,
    limit: int | None = None,
    seed: int = 0,
) -> ImageStore:
    """CIFAR-10 (torchvision batches or a train/test image-folder layout)."""
    return _load_cifar("cifar10", split, data_dir, download, image_size, workers, limit, seed)


def load_cifar100(
    split: str,
    data_dir: Path | None,
    download: bool = False,
    image_size: int | None = None,
    workers: int = 0,
    limit: int | None = None,
    seed: int = 0,
) -> ImageStore:
    """CIFAR-100 (torchvision batches or a train/test image-folder layout)."""
    return _load_cifar("cifar100", split, data_dir, download, image_size, workers, limit, seed)


# ------------------------------------------------------------------------------------ STL-10


def load_stl10(
    split: str,
    data_dir: Path | None,
    download: bool = False,
    image_size: int | None = None,
    workers: int = 0,
    limit: int | None = None,
    seed: int = 0,
) -> ImageStore:
    """STL-10: ``train`` = train + unlabeled (labels -1), ``train_labeled`` = train, ``test``."""
    _check_split(split)
    size = image_size or DEFAULT_IMAGE_SIZES["stl10"]
    folder = find_folder_layout(data_dir, "stl10")
    if folder is not None:
        store = _from_folder(folder, split, size, workers, None, seed)
        unlabeled_dir = find_split_folder(folder, "unlabeled")
        if split == "train" and unlabeled_dir is not None:
            extra = load_image_folder(unlabeled_dir, image_size=size, workers=workers)
            extra.labels.fill_(-1)
            extra.class_names = []
            extra.file_names = [f"unlabeled/{f}" for f in extra.file_names or []]
            store.file_names = [f"train/{f}" for f in store.file_names or []]
            store = concat_stores([store, extra])
        if limit is not None:
            store = store.subset(stratified_subset(store.labels, limit, seed))
        return store
    root = _need_dir(data_dir, "stl10")
    from torchvision import datasets

    tv_split = {"train": "train+unlabeled", "train_labeled": "train", "test": "test"}[split]
    ds = _torchvision_dataset(
        "stl10",
        root,
        download,
        lambda: datasets.STL10(root=str(root), split=tv_split, download=download),
    )
    images = torch.from_numpy(ds.data)  # (N, 3, 96, 96), already transposed by torchvision
    return _finish(images, torch.from_numpy(np.asarray(ds.labels)), list(ds.classes), size, limit, seed)


# ------------------------------------------------------------------------------------ MNIST


def _pad_to_32(images: torch.Tensor) -> torch.Tensor:
    h, w = images.shape[-2:]
    if (h, w) != (28, 28):
        return images
    return F.pad(images, (2, 2, 2, 2), value=0)


# The grayscale digit/letter/clothing sets torchvision stores as idx arrays: (class, extra keyword
# arguments, whether the stored images are transposed). EMNIST's files hold every glyph transposed
# (the NIST conversion's column-major order); it is transposed back so letters stand upright.
_MNIST_FAMILY: dict[str, tuple[str, dict[str, str], bool]] = {
    "mnist": ("MNIST", {}, False),
    "fashion-mnist": ("FashionMNIST", {}, False),
    "emnist": ("EMNIST", {"split": "byclass"}, True),
}


def load_mnist_family(
    name: str,
    split: str,
    data_dir: Path | None,
    download: bool = False,
    image_size: int | None = None,
    workers: int = 0,
    limit: int | None = None,
    seed: int = 0,
) -> ImageStore:
    """MNIST, Fashion-MNIST or EMNIST (byclass, 62 classes) as RGB, zero-padded from 28 to 32 px (then
    resized if ``image_size`` is not 32); the official train / test splits."""
    _check_split(split)
    size = image_size or DEFAULT_IMAGE_SIZES[name]
    folder = find_folder_layout(data_dir, name)
    if folder is not None:
        store = _from_folder(folder, split, None, workers, limit, seed)
        store.images = resize_images(_pad_to_32(store.images).contiguous(), size).contiguous()
        return store
    root = _need_dir(data_dir, name)
    from torchvision import datasets

    class_name, kwargs, transposed = _MNIST_FAMILY[name]
    cls = getattr(datasets, class_name)
    ds = _torchvision_dataset(
        name,
        root,
        download,
        lambda: cls(root=str(root), train=split != "test", download=download, **kwargs),
    )
    labels = torch.as_tensor(ds.targets, dtype=torch.int64)
    images = ds.data
    if limit is not None:
        keep = stratified_subset(labels, limit, seed)
        images, labels = images.index_select(0, keep), labels.index_select(0, keep)
    if transposed:
        images = images.transpose(1, 2)
    images = _pad_to_32(images.unsqueeze(1)).expand(-1, 3, -1, -1)
    return _finish(images, labels, list(ds.classes), size, None, seed)


def load_mnist(
    split: str,
    data_dir: Path | None,
    download: bool = False,
    image_size: int | None = None,
    workers: int = 0,
    limit: int | None = None,
    seed: int = 0,
) -> ImageStore:
    """MNIST as RGB, zero-padded from 28 to 32 px (then resized if ``image_size`` is not 32)."""
    return load_mnist_family("mnist", split, data_dir, download, image_size, workers, limit, seed)


# ------------------------------------------------------------------------------ Imagenette


def _imagenette_variant(image_size: int) -> str:
    if image_size <= 160:
        return "160px"
    return "320px" if image_size <= 320 else "full"


def load_imagenette(
    split: str,
    data_dir: Path | None,
    download: bool = False,
    image_size: int | None = None,
    workers: int = 0,
    limit: int | None = None,
    seed: int = 0,
) -> ImageStore:
    """Imagenette (train / val), resized and centre-cropped to ``image_size`` (default 128)."""
    _check_split(split)
    size = image_size or DEFAULT_IMAGE_SIZES["imagenette"]
    folder = find_folder_layout(data_dir, "imagenette")
    if folder is None:
        root = _need_dir(data_dir, "imagenette")
        variant = _imagenette_variant(size)
        # Any variant already on disk will do (it is resized anyway); prefer the wanted one.
        order = [variant] + [v for v in ("160px", "320px", "full") if v != variant]
        folder = next(
            (root / _IMAGENETTE_DIRS[v] for v in order if (root / _IMAGENETTE_DIRS[v]).is_dir()),
            None,
        )
        if folder is None:
            from torchvision import datasets

            _torchvision_dataset(
                "imagenette",
                root,
                download,
                lambda: datasets.Imagenette(root=str(root), split="train", size=variant, download=download),
            )
            folder = root / _IMAGENETTE_DIRS[variant]
    store = _from_folder(folder, split, size, workers, limit, seed)
    store.class_names = [IMAGENETTE_CLASSES.get(c, c) for c in store.class_names]
    return store


# --------------------------------------------------------------------------- FGVC-Aircraft


def _read_aircraft_split(data: Path, split: str) -> tuple[list[Path], list[int], list[str]]:
    classes = [ln.strip() for ln in (data / "manufacturers.txt").read_text().splitlines() if ln.strip()]
    index = {c: i for i, c in enumerate(classes)}
    paths: list[Path] = []
    labels: list[int] = []
    for line in (data / f"images_manufacturer_{split}.txt").read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        image_id, _, label = line.partition(" ")
        paths.append(data / "images" / f"{image_id}.jpg")
        labels.append(index[label.strip()])
    return paths, labels, classes


def load_fgvc_aircraft(
    split: str,
    data_dir: Path | None,
    download: bool = False,
    image_size: int | None = None,
    workers: int = 0,
    limit: int | None = None,
    seed: int = 0,
) -> ImageStore:
    """FGVC-Aircraft at manufacturer level (30 classes), trainval / test, banner cut off."""
    _check_split(split)
    size = image_size or DEFAULT_IMAGE_SIZES["fgvc-aircraft"]
    folder = find_folder_layout(data_dir, "fgvc-aircraft")
    if folder is not None:
        # Image folders are taken as they are (no banner cut: they may already be cropped).
        return _from_folder(folder, split, size, workers, limit, seed)
    root = _need_dir(data_dir, "fgvc-aircraft")
    data = root / "fgvc-aircraft-2013b" / "data"
    if not data.is_dir():
        from torchvision import datasets

        _torchvision_dataset(
            "fgvc-aircraft",
            root,
            download,
            lambda: datasets.FGVCAircraft(
                root=str(root), split="trainval", annotation_level="manufacturer", download=download
            ),
        )
    tv_split = "test" if split == "test" else "trainval"
    try:
        paths, labels_list, classes = _read_aircraft_split(data, tv_split)
    except (OSError, KeyError) as e:
        raise UserError(
            f"fgvc-aircraft annotations in {data} are missing or damaged ({e}); delete that folder and "
            "pass --download on a connected machine"
        ) from e
    labels = torch.tensor(labels_list, dtype=torch.int64)
    return _decode_listing(
        "fgvc-aircraft", data, paths, labels, classes, size, workers, limit, seed, crop_bottom=AIRCRAFT_BANNER_PX
    )


def _decode_listing(
    name: str,
    where: Path,
    paths: list[Path],
    labels: torch.Tensor,
    class_names: list[str],
    image_size: int,
    workers: int,
    limit: int | None,
    seed: int,
    crop_bottom: int = 0,
) -> ImageStore:
    """Decode listed image files (a stratified ``limit`` first, so unused files are never read) into a store
    whose file names are relative to ``where``; undecodable files are skipped and recorded."""
    if limit is not None:
        keep = stratified_subset(labels, limit, seed)
        paths = [paths[i] for i in keep.tolist()]
        labels = labels.index_select(0, keep)
    names = [os.path.relpath(p, where) for p in paths]
    images, ok_idx, skipped = decode_files(
        paths, image_size=image_size, workers=workers, crop_bottom=crop_bottom, names=names, where=where
    )
    if ok_idx.numel() == 0:
        raise UserError(f"no readable {name} image in {where}; delete it and pass --download again")
    return ImageStore(
        images=images,
        labels=labels.index_select(0, ok_idx),
        class_names=class_names,
        file_names=[names[i] for i in ok_idx.tolist()],
        skipped=skipped,
    )


# ------------------------------------------------------- torchvision sets read from their file lists
#
# Seed 000's other datasets (arXiv 2408.14514). torchvision lists each split's files and labels; the
# files are then decoded here, in parallel, with the skip handling and resizing of image folders, rather
# than one PIL call per item through the dataset's __getitem__. The listings read the datasets' own
# attributes (some private, unchanged across torchvision 0.17-0.2x).

Listing = tuple[list[Path], list[int], list[str]]  # files, labels, class names


def _listed(files: list[Any], labels: list[int], classes: list[str]) -> Listing:
    return [Path(f) for f in files], [int(y) for y in labels], list(classes)


def _samples(ds: Any) -> Listing:  # ImageFolder-based sets (Country211, EuroSAT)
    return _listed([f for f, _ in ds.samples], [y for _, y in ds.samples], ds.classes)


def _caltech101(ds: Any) -> Listing:
    base = Path(ds.root) / "101_ObjectCategories"
    files = [base / ds.categories[y] / f"image_{i:04d}.jpg" for i, y in zip(ds.index, ds.y, strict=True)]
    return _listed(files, ds.y, ds.categories)


def _caltech256(ds: Any) -> Listing:
    base = Path(ds.root) / "256_ObjectCategories"
    files = [base / ds.categories[y] / f"{y + 1:03d}_{i:04d}.jpg" for i, y in zip(ds.index, ds.y, strict=True)]
    # Folder names are "001.ak47" ... "257.clutter": the class name is what follows the number.
    return _listed(files, ds.y, [c.partition(".")[2] or c for c in ds.categories])


def _image_files(ds: Any) -> Listing:  # DTD, Food101, Flowers102
    return _listed(ds._image_files, ds._labels, ds.classes)


def _gtsrb(ds: Any) -> Listing:
    # GTSRB names its classes by number only (folders 00000..00042).
    return _listed([f for f, _ in ds._samples], [y for _, y in ds._samples], [f"{i:02d}" for i in range(43)])


def _oxford_pet(ds: Any) -> Listing:
    return _listed(ds._images, ds._labels, ds.classes)


@dataclass(frozen=True)
class ListedSet:
    """How one torchvision dataset is opened and listed.

    ``folder`` is where torchvision keeps the set under its root. ``train`` / ``test`` name the
    torchvision splits joined into ours (official validation splits join ``train``: validation is carved
    from it by ``--val-fraction`` where a command wants one); ``()`` for both means the set has no official
    split, and ours is a seeded stratified cut of the whole set (:data:`HELD_OUT_TEST_FRACTION` for test,
    with :data:`SPLIT_SEED`).
    """

    torchvision_class: str
    folder: str
    listing: Callable[[Any], Listing]
    train: tuple[str, ...] = ()
    test: tuple[str, ...] = ()
    kwargs: tuple[tuple[str, str], ...] = ()


# Seed 000 holds out 20% for test where a set has no split (its --test-perc 0.2), seeding its split with 42;
# a fixed seed (not the run's) keeps every run's test images out of every other run's training images.
HELD_OUT_TEST_FRACTION = 0.2
SPLIT_SEED = 42

LISTED_SETS: dict[str, ListedSet] = {
    "caltech101": ListedSet("Caltech101", "caltech101", _caltech101, kwargs=(("target_type", "category"),)),
    "caltech256": ListedSet("Caltech256", "caltech256", _caltech256),
    "dtd": ListedSet("DTD", "dtd", _image_files, ("train", "val"), ("test",)),
    "country211": ListedSet("Country211", "country211", _samples, ("train", "valid"), ("test",)),
    "food101": ListedSet("Food101", "food-101", _image_files, ("train",), ("test",)),
    "eurosat": ListedSet("EuroSAT", "eurosat", _samples),
    "flowers102": ListedSet("Flowers102", "flowers-102", _image_files, ("train", "val"), ("test",)),
    "gtsrb": ListedSet("GTSRB", "gtsrb", _gtsrb, ("train",), ("test",)),
    "oxford-iiit-pet": ListedSet(
        "OxfordIIITPet",
        "oxford-iiit-pet",
        _oxford_pet,
        ("trainval",),
        ("test",),
        kwargs=(("target_types", "category"),),
    ),
}


def _open_listed(name: str, root: Path, tv_split: str | None, download: bool) -> Listing:
    spec = LISTED_SETS[name]
    from torchvision import datasets

    cls = getattr(datasets, spec.torchvision_class)
    kwargs: dict[str, Any] = dict(spec.kwargs)
    if tv_split is not None:
        kwargs["split"] = tv_split
    ds = _torchvision_dataset(name, root, download, lambda: cls(root=str(root), download=download, **kwargs))
    return spec.listing(ds)


def load_listed_set(
    name: str,
    split: str,
    data_dir: Path | None,
    download: bool = False,
    image_size: int | None = None,
    workers: int = 0,
    limit: int | None = None,
    seed: int = 0,
) -> ImageStore:
    """One split of a dataset of :data:`LISTED_SETS` (or of its train/test image-folder layout), decoded
    and resized (shorter side, then centre crop) to ``image_size`` (default :data:`DEFAULT_IMAGE_SIZES`)."""
    _check_split(split)
    spec = LISTED_SETS[name]
    size = image_size or DEFAULT_IMAGE_SIZES[name]
    # torchvision's own files win over an image-folder layout: Country211's own files are one.
    folder = find_folder_layout(data_dir, name)
    if folder is not None and not (Path(data_dir or ".").expanduser() / spec.folder).is_dir():
        return _from_folder(folder, split, size, workers, limit, seed)
    root = _need_dir(data_dir, name)
    if spec.train:
        files: list[Path] = []
        labels: list[int] = []
        classes: list[str] = []
        for tv_split in spec.test if split == "test" else spec.train:
            part_files, part_labels, part_classes = _open_listed(name, root, tv_split, download)
            files += part_files
            labels += part_labels
            classes = classes or part_classes
        label_tensor = torch.tensor(labels, dtype=torch.int64)
    else:
        files, labels, classes = _open_listed(name, root, None, download)
        label_tensor = torch.tensor(labels, dtype=torch.int64)
        train_idx, test_idx = split_train_val(label_tensor, HELD_OUT_TEST_FRACTION, SPLIT_SEED)
        keep = test_idx if split == "test" else train_idx
        files = [files[i] for i in keep.tolist()]
        label_tensor = label_tensor.index_select(0, keep)
    return _decode_listing(name, root, files, label_tensor, classes, size, workers, limit, seed)


LOADERS: dict[str, Callable[..., ImageStore]] = {
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
    "stl10": load_stl10,
    "imagenette": load_imagenette,
    "fgvc-aircraft": load_fgvc_aircraft,
    **{name: partial(load_mnist_family, name) for name in _MNIST_FAMILY},
    **{name: partial(load_listed_set, name) for name in LISTED_SETS},
}
