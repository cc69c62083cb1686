"""The size a folder of images is decoded at when none is given, read from the files' headers.

A folder whose images all share one size keeps it; a folder of mixed sizes gets :func:`default_image_size`
of its images' shorter sides, read from the headers of a sample. :func:`estimate_folder` says how big a
folder's training split would be once decoded, without decoding it.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from simclr.data.folder_listing import checked_folder, find_split_folder, has_split_layout, scan_image_folder
from simclr.data.store import printable_name

__all__ = [
    "STANDARD_IMAGE_SIZES",
    "FolderEstimate",
    "auto_image_size",
    "default_image_size",
    "estimate_folder",
    "log_default_size",
    "sampled_sizes",
]

log = logging.getLogger("simclr")

STANDARD_IMAGE_SIZES: tuple[int, ...] = (32, 64, 96, 128, 160, 224)
# Header reads per folder when choosing an image size: enough for a stable median, cheap on any folder.
_HEADER_SAMPLE = 1000
_EXIF_ORIENTATION = 0x0112


def default_image_size(shorter_sides: Sequence[int]) -> int:
    """The standard image size for a folder whose images have these shorter sides (pixels): the
    largest of :data:`STANDARD_IMAGE_SIZES` not above their median, and 32 at the least.

    Rounding down shrinks the typical image rather than enlarging it, so random crops stay sharp
    (upscaling only adds blur); the standard sizes are those the backbone stems and recipes are
    made for (CIFAR 32 px, STL-10 96 px, ImageNet 224 px), and larger photos are cut down to 224.

    >>> default_image_size([131, 90, 400])
    128
    >>> [default_image_size([side]) for side in (20, 70, 100, 3000)]
    [32, 64, 96, 224]
    """
    if not shorter_sides:
        raise ValueError("default_image_size needs the shorter side of at least one image")
    typical = statistics.median_low(shorter_sides)
    fitting = [size for size in STANDARD_IMAGE_SIZES if size <= typical]
    return fitting[-1] if fitting else STANDARD_IMAGE_SIZES[0]


def _header_size(path: Path) -> tuple[int, int] | None:
    """``(width, height)`` as decoded (EXIF rotation applied) from the header alone; ``None`` when
    unreadable, leaving the file to the decoder, which skips and counts it."""
    try:
        with Image.open(path) as img:
            w, h = img.size
            # Only where the decoder applies EXIF rotation; PNG's getexif() would decode the pixels.
            if ("exif" in img.info or img.format == "TIFF") and img.getexif().get(_EXIF_ORIENTATION) in (5, 6, 7, 8):
                w, h = h, w
            return w, h
    except Exception:  # PIL reports bad files through many exception types; the decoder names the reason
        return None


def sampled_sizes(root: Path, rel: Sequence[str]) -> list[tuple[int, int]]:
    """Header sizes of up to :data:`_HEADER_SAMPLE` readable files spread evenly over ``rel``
    (sorted by class folder, so every class is represented; the same files on every call)."""
    n = len(rel)
    picks = range(n) if n <= _HEADER_SAMPLE else np.linspace(0, n - 1, _HEADER_SAMPLE).round().astype(int).tolist()
    sizes = [_header_size(root / rel[i]) for i in picks]
    return [size for size in sizes if size is not None]


def auto_image_size(sizes: Sequence[tuple[int, int]]) -> int | None:
    """The size to decode a folder at when none is given, from its sampled header sizes: ``None``
    (native) when they all agree, else :func:`default_image_size` of their shorter sides.

    All ``N x N`` gives ``N`` rather than ``None``: the same pixels, but a file outside the
    sample that differs is resized to match instead of failing the whole load.
    """
    distinct = set(sizes)
    if len(distinct) > 1:
        return default_image_size([min(size) for size in sizes])
    if distinct:
        w, h = distinct.pop()
        return w if w == h else None
    return None


@dataclass(frozen=True)
class FolderEstimate:
    """How big a folder's training split would be in memory, from its listing and a sample of headers."""

    images: int
    height: int
    width: int

    @property
    def decoded_bytes(self) -> int:
        return self.images * 3 * self.height * self.width


def estimate_folder(
    root: Path, image_size: int | None = None, *, follow_external_links: bool = False
) -> FolderEstimate:
    """The training split of ``root`` (its ``train/`` when it has splits) as
    :func:`~simclr.data.imagefolder.load_split_folder` or :func:`~simclr.data.imagefolder.load_image_folder`
    would decode it, without decoding anything."""
    root = checked_folder(Path(root))
    train = find_split_folder(root, "train") if has_split_layout(root) else root
    assert train is not None
    rel = scan_image_folder(train, follow_external_links=follow_external_links, data_root=root).paths
    if image_size is None:
        sizes = sampled_sizes(train, rel)
        image_size = auto_image_size(sizes)
        if image_size is None and sizes:
            width, height = sizes[0]
            return FolderEstimate(len(rel), height, width)
    side = image_size or 0
    return FolderEstimate(len(rel), side, side)


def log_default_size(root: Path, shorter_sides: Sequence[int], image_size: int) -> None:
    log.info(
        "image folder %s: images of mixed sizes (shorter side median %d px, %d files sampled); using --image-size %d "
        "(resize shorter side + centre crop); pass --image-size N to choose",
        printable_name(str(root)),
        statistics.median_low(shorter_sides),
        len(shorter_sides),
        image_size,
    )
