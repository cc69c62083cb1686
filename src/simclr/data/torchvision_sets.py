"""Loaders of the torchvision datasets read as arrays or folders: CIFAR, STL-10, the MNIST family,
Imagenette and FGVC-Aircraft, each producing one :class:`~simclr.data.store.ImageStore` per split.

Each first looks for an image-folder layout, ``DIR/{train,test}/<class>/*`` (``test`` may be ``val``), in
``data_dir`` and in ``data_dir/<name>``, and only then uses torchvision's own files
(:mod:`simclr.data.torchvision_files`). Splits and image sizes come resolved in the
:class:`~simclr.data.request.LoadRequest` (the catalog's :class:`~simclr.data.request.SplitPolicy` and
default sizes).

Per-dataset choices:

* ``cifar10`` / ``cifar100``: torchvision's python-pickle batches, 32 px.
* ``stl10``: ``train`` is train (labelled) + unlabeled (labels -1), 105,000 images;
  ``train_labeled`` is the 5,000 labelled images; 96 px. Folder layout: ``train/<class>/*`` plus an
  optional flat ``unlabeled/`` folder.
* ``mnist``: 28 px grayscale, **zero-padded by 2 px to 32 x 32** (digit pixels stay exact, and 32
  suits the CIFAR ResNet stem), replicated to RGB.
* ``fashion-mnist`` and ``emnist`` (split ``byclass``: 62 classes, digits and both cases of letters):
  as ``mnist`` (padded to 32 px, RGB); EMNIST's transposed glyphs are turned upright.
* ``imagenette``: torchvision's ``"160px"`` variant (shorter side 160 px, a 94 MB download)
  when ``image_size <= 160``, ``"320px"`` up to 320, ``"full"`` above; resized (shorter side,
  antialiased) and centre-cropped to ``image_size`` (default 128). Splits train / val.
* ``fgvc-aircraft``: ``annotation_level="manufacturer"`` (30 classes), splits trainval / test, the
  20-px copyright banner cut off the bottom before resizing to ``image_size`` (default 128).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torchvision import datasets

from simclr.data.folder_listing import find_split_folder
from simclr.data.imagefolder import load_image_folder
from simclr.data.request import LoadRequest
from simclr.data.sampling import stratified_subset
from simclr.data.store import ImageStore, concat_stores
from simclr.data.torchvision_files import (
    decode_listing,
    find_folder_layout,
    load_folder_layout,
    needed_data_dir,
    open_torchvision,
    resize_images,
    store_from_arrays,
)
from simclr.errors import UserError

__all__ = [
    "AIRCRAFT_BANNER_PX",
    "IMAGENETTE_CLASSES",
    "MNIST_FAMILY",
    "load_cifar",
    "load_fgvc_aircraft",
    "load_imagenette",
    "load_mnist_family",
    "load_stl10",
]

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


# ------------------------------------------------------------------------------------ CIFAR


def load_cifar(name: str, request: LoadRequest) -> ImageStore:
    """CIFAR-10 or CIFAR-100 (torchvision batches or a train/test image-folder layout)."""
    size = request.resolved_size()
    folder = find_folder_layout(request.data_dir, name)
    if folder is not None:
        return load_folder_layout(folder, request, image_size=size, limit=request.limit)
    root = needed_data_dir(request, name)
    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    train = request.split != "test"
    ds = open_torchvision(
        name, root, request.download, lambda: cls(root=str(root), train=train, download=request.download)
    )
    images = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2)
    return store_from_arrays(images, torch.as_tensor(ds.targets), list(ds.classes), size, request.limit, request.seed)


# ------------------------------------------------------------------------------------ STL-10


def load_stl10(request: LoadRequest) -> ImageStore:
    """STL-10: ``train`` = train + unlabeled (labels -1), ``train_labeled`` = train, ``test``."""
    size = request.resolved_size()
    folder = find_folder_layout(request.data_dir, "stl10")
    if folder is not None:
        store = load_folder_layout(folder, request, image_size=size, limit=None)
        unlabeled_dir = find_split_folder(folder, "unlabeled")
        if "unlabeled" in request.source_splits and unlabeled_dir is not None:
            extra = load_image_folder(unlabeled_dir, image_size=size, workers=request.workers)
            extra.labels.fill_(-1)
            extra.class_names = []
            extra.file_names = [f"unlabeled/{f}" for f in extra.file_names or []]
            store.file_names = [f"train/{f}" for f in store.file_names or []]
            store = concat_stores([store, extra])
        if request.limit is not None:
            store = store.subset(stratified_subset(store.labels, request.limit, request.seed))
        return store
    root = needed_data_dir(request, "stl10")
    tv_split = "+".join(request.source_splits)  # torchvision names STL-10's joined splits "train+unlabeled"
    ds = open_torchvision(
        "stl10",
        root,
        request.download,
        lambda: datasets.STL10(root=str(root), split=tv_split, download=request.download),
    )
    images = torch.from_numpy(ds.data)  # (N, 3, 96, 96), already transposed by torchvision
    labels = torch.from_numpy(np.asarray(ds.labels))
    return store_from_arrays(images, labels, list(ds.classes), size, request.limit, request.seed)


# ------------------------------------------------------------------------------------ MNIST


def _pad_to_32(images: torch.Tensor) -> torch.Tensor:
    h, w = images.shape[-2:]
    if (h, w) != (28, 28):
        return images
    return F.pad(images, (2, 2, 2, 2), value=0)


# The grayscale digit/letter/clothing sets torchvision stores as idx arrays: (class, extra keyword
# arguments, whether the stored images are transposed). EMNIST's files hold every glyph transposed
# (the NIST conversion's column-major order); it is transposed back so letters stand upright.
MNIST_FAMILY: dict[str, tuple[str, dict[str, str], bool]] = {
    "mnist": ("MNIST", {}, False),
    "fashion-mnist": ("FashionMNIST", {}, False),
    "emnist": ("EMNIST", {"split": "byclass"}, True),
}


def load_mnist_family(name: str, request: LoadRequest) -> ImageStore:
    """MNIST, Fashion-MNIST or EMNIST (byclass, 62 classes) as RGB, zero-padded from 28 to 32 px (then
    resized if ``image_size`` is not 32); the official train / test splits."""
    size = request.resolved_size()
    folder = find_folder_layout(request.data_dir, name)
    if folder is not None:
        store = load_folder_layout(folder, request, image_size=None, limit=request.limit)
        store.images = resize_images(_pad_to_32(store.images).contiguous(), size).contiguous()
        return store
    root = needed_data_dir(request, name)
    class_name, kwargs, transposed = MNIST_FAMILY[name]
    cls = getattr(datasets, class_name)
    train = request.split != "test"
    ds = open_torchvision(
        name, root, request.download, lambda: cls(root=str(root), train=train, download=request.download, **kwargs)
    )
    labels = torch.as_tensor(ds.targets, dtype=torch.int64)
    images = ds.data
    if request.limit is not None:
        keep = stratified_subset(labels, request.limit, request.seed)
        images, labels = images.index_select(0, keep), labels.index_select(0, keep)
    if transposed:
        images = images.transpose(1, 2)
    images = _pad_to_32(images.unsqueeze(1)).expand(-1, 3, -1, -1)
    return store_from_arrays(images, labels, list(ds.classes), size, None, request.seed)


# ------------------------------------------------------------------------------ Imagenette


def _imagenette_variant(image_size: int) -> str:
    if image_size <= 160:
        return "160px"
    return "320px" if image_size <= 320 else "full"


def load_imagenette(request: LoadRequest) -> ImageStore:
    """Imagenette (train / val), resized and centre-cropped to ``image_size`` (default 128)."""
    size = request.resolved_size()
    folder = find_folder_layout(request.data_dir, "imagenette")
    if folder is None:
        root = needed_data_dir(request, "imagenette")
        variant = _imagenette_variant(size)
        # Any variant already on disk will do (it is resized anyway); prefer the wanted one.
        order = [variant] + [v for v in ("160px", "320px", "full") if v != variant]
        folder = next(
            (root / _IMAGENETTE_DIRS[v] for v in order if (root / _IMAGENETTE_DIRS[v]).is_dir()),
            None,
        )
        if folder is None:
            open_torchvision(
                "imagenette",
                root,
                request.download,
                lambda: datasets.Imagenette(root=str(root), split="train", size=variant, download=request.download),
            )
            folder = root / _IMAGENETTE_DIRS[variant]
    store = load_folder_layout(folder, request, image_size=size, limit=request.limit)
    store.class_names = [IMAGENETTE_CLASSES.get(c, c) for c in store.class_names]
    return store


# --------------------------------------------------------------------------- FGVC-Aircraft


def _read_aircraft_split(data: Path, split: str) -> tuple[list[Path], torch.Tensor, list[str]]:
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
    return paths, torch.tensor(labels, dtype=torch.int64), classes


def load_fgvc_aircraft(request: LoadRequest) -> ImageStore:
    """FGVC-Aircraft at manufacturer level (30 classes), trainval / test, banner cut off."""
    folder = find_folder_layout(request.data_dir, "fgvc-aircraft")
    if folder is not None:
        # Image folders are taken as they are (no banner cut: they may already be cropped).
        return load_folder_layout(folder, request, image_size=request.resolved_size(), limit=request.limit)
    root = needed_data_dir(request, "fgvc-aircraft")
    data = root / "fgvc-aircraft-2013b" / "data"
    if not data.is_dir():
        open_torchvision(
            "fgvc-aircraft",
            root,
            request.download,
            lambda: datasets.FGVCAircraft(
                root=str(root), split="trainval", annotation_level="manufacturer", download=request.download
            ),
        )
    try:
        listing = _read_aircraft_split(data, "+".join(request.source_splits))
    except (OSError, KeyError) as e:
        raise UserError(
            f"fgvc-aircraft annotations in {data} are missing or damaged ({e}); delete that folder and "
            "pass --download on a connected machine"
        ) from e
    return decode_listing("fgvc-aircraft", data, listing, request, crop_bottom=AIRCRAFT_BANNER_PX)
