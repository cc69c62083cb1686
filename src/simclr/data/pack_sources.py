"""What ``simclr data pack SRC`` packs: the splits of an image folder or a dataset, each a :class:`PackSource`
(its images' names, labels and how to read them), and the fingerprint of what packing one makes.

An image folder and ImageNet are listed from their files, never decoded here; the torchvision datasets are
read by their loader. :func:`split_fingerprint` hashes what decides a pack's content (every file's name, label,
size and modification time, the class names, the settings, the format), so :mod:`simclr.data.packed` keeps a
pack only for the same files, and the automatic pack (:mod:`simclr.data.pack_cache`) is keyed by it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simclr.data.catalog import DATASET_NAMES, load_dataset
from simclr.data.folder_listing import find_split_folder, has_split_layout, scan_image_folder
from simclr.data.imagenet import IMAGENET_SUBSETS, list_imagenet
from simclr.data.pack_format import PACK_FORMAT, PACK_SPLITS
from simclr.data.pack_settings import PackConfig
from simclr.errors import UserError

__all__ = ["PackSource", "pack_sources", "split_fingerprint"]

# the datasets named by SRC that are packed from what their loader reads (image folders are packed from their
# files, spirograph is generated, packed data is packed already)
_NOT_PACKED_BY_NAME = ("imagefolder", "spirograph", "packed")
_FILES_PER_REPORT = 4096


@dataclass(frozen=True)
class PackSource:
    """One split to pack: how to read image ``i`` (its file, or an already decoded RGB array), its label
    (-1 when unlabelled) and the name it is listed under."""

    names: Sequence[str]
    labels: Sequence[int]
    class_names: Sequence[str]
    read: Callable[[int], Path | np.ndarray]
    description: str
    listing_skipped: Sequence[tuple[str, str]] = ()  # found while listing (links, FIFOs), before any decoding
    folder: Path | None = None  # where the names are, when the images are files (their sizes and times count)

    def __len__(self) -> int:
        return len(self.names)


def pack_sources(
    src: str, data_dir: Path | None = None, download: bool = False, workers: int = 2, follow_links: bool = False
) -> dict[str, PackSource]:
    """The splits ``simclr data pack SRC`` packs: an image folder (``train/`` and ``test/``/``val/`` when it has
    them, else the whole folder as ``train``) or a dataset name (its files are read with ``data_dir``)."""
    path = Path(src).expanduser()
    if path.is_dir():
        splits = {"train": find_split_folder(path, "train"), "test": find_split_folder(path, "test")}
        if not has_split_layout(path):
            splits = {"train": path}
        sources: dict[str, PackSource] = {}
        class_names: list[str] | None = None
        for split, folder in splits.items():
            if folder is None:
                continue
            listing = scan_image_folder(folder, class_names, follow_external_links=follow_links, data_root=path)
            class_names = class_names or listing.class_names
            sources[split] = _file_source(
                folder, listing.paths, listing.labels.tolist(), listing.class_names, str(folder), listing.skipped
            )
        return sources
    if src in IMAGENET_SUBSETS:  # listed from its files, never decoded into memory
        if data_dir is None:
            raise UserError(f"packing {src} needs its folder; pass --data-dir /path/to/ILSVRC2012")
        sources = {}
        for split in PACK_SPLITS:
            files, classes, _ = list_imagenet(split, data_dir, subset=IMAGENET_SUBSETS[src])
            names = [str(path.relative_to(data_dir)) for path, _ in files]
            sources[split] = _file_source(
                Path(data_dir), names, [label for _, label in files], classes, f"{src} {split}"
            )
        return sources
    if src in DATASET_NAMES and src not in _NOT_PACKED_BY_NAME:
        sources = {}
        for split in PACK_SPLITS:
            store = load_dataset(src, split, data_dir, download=download, workers=workers)
            if store is None:
                continue
            names = store.file_names or [f"{split}/{i:07d}.png" for i in range(len(store))]
            sources[split] = PackSource(
                names, store.labels.tolist(), store.class_names, _array_reader(store.images), f"{src} {split}"
            )
        return sources
    raise UserError(
        f"cannot pack {src!r}: not a folder, nor one of the datasets "
        f"{', '.join(n for n in DATASET_NAMES if n not in _NOT_PACKED_BY_NAME)}"
    )


def _file_source(
    folder: Path,
    names: Sequence[str],
    labels: Sequence[int],
    class_names: Sequence[str],
    description: str,
    listing_skipped: Sequence[tuple[str, str]] = (),
) -> PackSource:
    """A split of image files, named relative to ``folder``."""
    return PackSource(
        names, labels, class_names, lambda i: folder / names[i], description, listing_skipped, folder=folder
    )


def _array_reader(images: object) -> Callable[[int], Path | np.ndarray]:
    return lambda i: images[i].permute(1, 2, 0).numpy()  # type: ignore[index]


def split_fingerprint(
    source: PackSource, settings: PackConfig, progress: Callable[[int, int], None] | None = None
) -> str:
    """What packing ``source`` with ``settings`` makes, as a SHA-256: every image's name and label and, for
    files, size and modification time; the class names; what the listing left out; the settings that shape
    the stored images and their order (max side, quality, seed); the format. The same fingerprint, the same
    pack: a folder with a file added, changed or renamed, or a class renamed, gets another one.

    ``progress(done, total)`` every :data:`_FILES_PER_REPORT` files: reading the sizes and times of a million
    files over a network file system takes a while."""
    digest = hashlib.sha256()
    head = {
        "format": PACK_FORMAT,
        "max_side": settings.max_side,
        "quality": settings.quality,
        "seed": settings.seed,
        "classes": list(source.class_names),
        "left_out": [list(item) for item in source.listing_skipped],
    }
    digest.update(json.dumps(head, sort_keys=True).encode())
    for done, (name, label) in enumerate(zip(source.names, source.labels, strict=True), start=1):
        # the name's bytes as the file system holds them: a name that is not UTF-8 (Linux allows any bytes) is
        # a str with surrogate escapes, which .encode() refuses
        digest.update(b"\n" + os.fsencode(name) + f"\t{int(label)}".encode())
        if source.folder is not None:
            digest.update(_file_state(source.folder / name).encode())
        if progress is not None and (done % _FILES_PER_REPORT == 0 or done == len(source)):
            progress(done, len(source))
    return digest.hexdigest()


def _file_state(path: Path) -> str:
    try:
        stat = path.stat()
    except OSError:
        return "\tunreadable"
    return f"\t{stat.st_size}\t{stat.st_mtime_ns}"
