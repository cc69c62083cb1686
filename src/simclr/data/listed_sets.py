"""SimCLR-AE's photograph sets (arXiv 2408.14514) read from the file lists torchvision makes of them.

torchvision lists each split's files and labels; the files are then decoded here, in parallel, with the
skip handling and resizing of image folders, rather than one PIL call per item through the dataset's
``__getitem__``. The listings read the datasets' own attributes (some private, unchanged across torchvision
0.17-0.2x). Images are resized (shorter side) and centre-cropped to the requested size.

``caltech101`` (101 classes, the background class dropped as torchvision does), ``caltech256`` (257 with
clutter) and ``eurosat`` (10, 64 px) have no official split: ours is a stratified cut of the whole set,
:data:`HELD_OUT_TEST_FRACTION` for test, seeded with :data:`SPLIT_SEED`. ``dtd`` (47; train+val / test of
partition 1), ``country211`` (211; train+valid / test), ``food101`` (101; train / test), ``flowers102``
(102; train+val / test), ``gtsrb`` (43; train / test, 32 px) and ``oxford-iiit-pet`` (37 breeds; trainval /
test) keep their official test split. Which torchvision splits make ours is each set's
:class:`~simclr.data.request.SplitPolicy` in the catalog.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torchvision import datasets

from simclr.data.request import LoadRequest
from simclr.data.sampling import split_train_val
from simclr.data.store import ImageStore
from simclr.data.torchvision_files import (
    decode_listing,
    find_folder_layout,
    load_folder_layout,
    needed_data_dir,
    open_torchvision,
)

__all__ = ["HELD_OUT_TEST_FRACTION", "LISTED_SETS", "SPLIT_SEED", "ListedSet", "load_listed_set"]

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
    """How one torchvision dataset is opened and listed: its class, the folder torchvision keeps it in under
    its root, the function that lists its files, and the extra keyword arguments of the class."""

    name: str
    torchvision_class: str
    folder: str
    listing: Callable[[Any], Listing]
    kwargs: tuple[tuple[str, str], ...] = ()


# SimCLR-AE holds out 20% for test where a set has no split (its --test-perc 0.2), seeding its split with 42;
# a fixed seed (not the run's) keeps every run's test images out of every other run's training images.
HELD_OUT_TEST_FRACTION = 0.2
SPLIT_SEED = 42

LISTED_SETS: dict[str, ListedSet] = {
    spec.name: spec
    for spec in (
        ListedSet("caltech101", "Caltech101", "caltech101", _caltech101, kwargs=(("target_type", "category"),)),
        ListedSet("caltech256", "Caltech256", "caltech256", _caltech256),
        ListedSet("dtd", "DTD", "dtd", _image_files),
        ListedSet("country211", "Country211", "country211", _samples),
        ListedSet("food101", "Food101", "food-101", _image_files),
        ListedSet("eurosat", "EuroSAT", "eurosat", _samples),
        ListedSet("flowers102", "Flowers102", "flowers-102", _image_files),
        ListedSet("gtsrb", "GTSRB", "gtsrb", _gtsrb),
        ListedSet("oxford-iiit-pet", "OxfordIIITPet", "oxford-iiit-pet", _oxford_pet, (("target_types", "category"),)),
    )
}


def _open_listed(spec: ListedSet, root: Path, tv_split: str | None, download: bool) -> Listing:
    cls = getattr(datasets, spec.torchvision_class)
    kwargs: dict[str, Any] = dict(spec.kwargs)
    if tv_split is not None:
        kwargs["split"] = tv_split
    ds = open_torchvision(spec.name, root, download, lambda: cls(root=str(root), download=download, **kwargs))
    return spec.listing(ds)


def load_listed_set(spec: ListedSet, request: LoadRequest) -> ImageStore:
    """One split of a dataset of :data:`LISTED_SETS` (or of its train/test image-folder layout), decoded and
    resized (shorter side, then centre crop) to ``request.image_size``: the torchvision splits
    ``request.source_splits`` joined, or, when there are none, the set's seeded stratified cut."""
    # torchvision's own files win over an image-folder layout: Country211's own files are one.
    folder = find_folder_layout(request.data_dir, spec.name)
    if folder is not None and not (Path(request.data_dir or ".").expanduser() / spec.folder).is_dir():
        return load_folder_layout(folder, request, image_size=request.resolved_size(), limit=request.limit)
    root = needed_data_dir(request, spec.name)
    if request.source_splits:
        files: list[Path] = []
        labels: list[int] = []
        classes: list[str] = []
        for tv_split in request.source_splits:
            part_files, part_labels, part_classes = _open_listed(spec, root, tv_split, request.download)
            files += part_files
            labels += part_labels
            classes = classes or part_classes
        label_tensor = torch.tensor(labels, dtype=torch.int64)
    else:
        files, labels, classes = _open_listed(spec, root, None, request.download)
        label_tensor = torch.tensor(labels, dtype=torch.int64)
        train_idx, test_idx = split_train_val(label_tensor, HELD_OUT_TEST_FRACTION, SPLIT_SEED)
        keep = test_idx if request.split == "test" else train_idx
        files = [files[i] for i in keep.tolist()]
        label_tensor = label_tensor.index_select(0, keep)
    return decode_listing(spec.name, root, (files, label_tensor, classes), request)
