"""Decoding one image file into an 8-bit RGB array, whatever its format and PIL mode.

The pixels become RGB by :func:`simclr.views.rgb.to_rgb_array` (its rules: gray repeated, transparency
composited on black, 16-bit and float images scaled). EXIF orientation is applied, and multi-frame files
(GIF, TIFF) give their first frame. An image is made an ``image_size`` square by one of :data:`RESIZE_MODES`.

A file that cannot be decoded (truncated, corrupt, not an image, unsupported mode, decompression
bomb) raises :class:`ImageDecodeError`; folder loaders catch it, count it and record it in
``ImageStore.skipped``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from simclr.data.reading import RESIZE_MODES
from simclr.views.rgb import to_rgb_array

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageDecodeError",
    "decode_image",
    "is_image_file",
    "load_image",
    "resize_center_crop",
    "resize_square",
]

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
)


class ImageDecodeError(Exception):
    """A file that is not a decodable image (truncated, corrupt, unknown format or mode)."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def is_image_file(name: str) -> bool:
    """True when ``name`` has an image extension (case-insensitive) and is not a hidden file."""
    if name.startswith("."):
        return False
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _reduced_request(size: tuple[int, int], image_size: int, crop_bottom: int) -> tuple[int, int] | None:
    w, h = size
    h -= crop_bottom
    if w <= 0 or h <= 0:
        return None
    scale = image_size / min(w, h)
    if scale >= 1.0:
        return None
    return (max(1, math.ceil(w * scale)), max(1, math.ceil((h + crop_bottom) * scale)))


def resize_center_crop(img: Image.Image, image_size: int) -> Image.Image:
    """Resize the shorter side to ``image_size`` (bilinear, antialiased) and centre-crop a square."""
    w, h = img.size
    if w == image_size and h == image_size:
        return img
    scale = image_size / min(w, h)
    new_w = image_size if w <= h else max(image_size, round(w * scale))
    new_h = image_size if h <= w else max(image_size, round(h * scale))
    if (new_w, new_h) != (w, h):
        # PIL widens the bilinear kernel when downscaling, i.e. it antialiases.
        img = img.resize((new_w, new_h), Image.Resampling.BILINEAR)
    left = (new_w - image_size) // 2
    top = (new_h - image_size) // 2
    if (new_w, new_h) != (image_size, image_size):
        img = img.crop((left, top, left + image_size, top + image_size))
    return img


def resize_square(img: Image.Image, image_size: int, mode: str = "crop") -> Image.Image:
    """An ``image_size`` square of ``img`` by :data:`RESIZE_MODES` ``mode`` (bilinear, antialiased)."""
    if mode == "crop":
        return resize_center_crop(img, image_size)
    if mode != "squash":
        raise ValueError(f"resize mode must be one of {RESIZE_MODES}, got {mode!r}")
    if img.size == (image_size, image_size):
        return img
    return img.resize((image_size, image_size), Image.Resampling.BILINEAR)


def _open_rgb(
    path: str | os.PathLike[str], image_size: int | None, crop_bottom: int, resize: str = "crop"
) -> np.ndarray:
    with Image.open(path) as img:
        orig_h = img.size[1]
        if image_size is not None and img.format == "JPEG":
            request = _reduced_request(img.size, image_size, crop_bottom)
            if request is not None:
                img.draft(None, request)  # let libjpeg decode at 1/2, 1/4 or 1/8 scale
        img.load()
        if "exif" in img.info or img.format == "TIFF":
            img = ImageOps.exif_transpose(img)
        if crop_bottom:
            cut = round(crop_bottom * img.size[1] / orig_h)
            if cut >= img.size[1]:
                raise ImageDecodeError(path, f"image is only {orig_h} px high, cannot cut {crop_bottom} px")
            img = img.crop((0, 0, img.size[0], img.size[1] - cut))
        if image_size is None:
            return to_rgb_array(img)
        rgb = to_rgb_array(img)
        if rgb.shape[0] == image_size and rgb.shape[1] == image_size:
            return rgb
        out = resize_square(Image.fromarray(rgb), image_size, resize)
        return np.asarray(out, dtype=np.uint8)


def load_image(
    path: str | os.PathLike[str], image_size: int | None = None, crop_bottom: int = 0, resize: str = "crop"
) -> np.ndarray:
    """Decode ``path`` to ``(H, W, 3) uint8``; optionally cut ``crop_bottom`` rows off the bottom
    (in original pixels) and make it an ``image_size`` square (``resize``: :data:`RESIZE_MODES`).

    Raises :class:`ImageDecodeError` for anything that is not a decodable image.
    """
    try:
        return _open_rgb(path, image_size, crop_bottom, resize)
    except ImageDecodeError:
        raise
    except FileNotFoundError as e:
        raise ImageDecodeError(path, f"file not found ({e.strerror})") from e
    except (
        OSError,
        SyntaxError,
        ValueError,
        EOFError,
        TypeError,
        IndexError,
        KeyError,
        ZeroDivisionError,
        MemoryError,
        Image.DecompressionBombError,
    ) as e:
        # PIL signals corrupt data through many exception types.
        reason = f"{type(e).__name__}: {e}".strip()
        raise ImageDecodeError(path, reason) from e


def decode_image(path: str | os.PathLike[str] | Path) -> np.ndarray:
    """Decode one image file to an ``(H, W, 3) uint8`` RGB array at its native size.

    Raises :class:`ImageDecodeError` when the file is truncated, corrupt or not an image.
    """
    return load_image(path)
