"""Decoding one image file into an 8-bit RGB array, whatever its PIL mode.

Conversion rules (all produce ``(H, W, 3) uint8``):

* ``RGB`` is used as is; ``L`` / ``1`` / ``P`` / ``CMYK`` / ``YCbCr`` go through PIL's own converters
  (``1`` becomes 0/255, CMYK uses PIL's ``(255 - k) * (1 - c/255)`` formula, Adobe-inverted CMYK
  JPEGs are handled by PIL's JPEG plugin).
* Anything with transparency (``RGBA``, ``LA``, ``PA``, ``P`` with a ``transparency`` entry, ``La``,
  ``RGBa``) is **composited on black**: ``rgb * alpha / 255``. Black is premultiplied alpha - a
  fully transparent pixel carries no light - and is what the image looks like once alpha is
  dropped from premultiplied data; it never invents a white frame around cut-out objects.
* 16-bit integer images (``I;16``, ``I;16B``, ``I;16L``, ``I;16N``) are **scaled**, not clipped:
  ``v * 255 / 65535`` rounded, so 65535 -> 255 and 32768 -> 128.
* 32-bit integer images (``I``) come from 16-bit PNG/TIFF files: values within 0..65535 are scaled
  like 16-bit data; anything outside that range (true 32-bit data) is min-max normalised.
* Float images (``F``) within [0, 1] are multiplied by 255; otherwise they are min-max normalised
  (a constant image becomes black). NaNs become 0.
* EXIF orientation is applied, and multi-frame files (GIF, TIFF) give their first frame.

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

from simclr.config import RESIZE_MODES

__all__ = [
    "IMAGE_EXTENSIONS",
    "RESIZE_MODES",
    "ImageDecodeError",
    "decode_image",
    "is_image_file",
    "load_image",
    "resize_center_crop",
    "resize_square",
    "to_rgb_array",
]

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
)

_ALPHA_MODES = {"RGBA": "RGBA", "LA": "LA", "PA": "RGBA", "La": "LA", "RGBa": "RGBA"}
_SIXTEEN_BIT = {"I;16", "I;16B", "I;16L", "I;16N"}


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


def _scale_to_uint8(arr: np.ndarray, full_scale: float) -> np.ndarray:
    out = np.rint(arr.astype(np.float64) * (255.0 / full_scale))
    return np.clip(out, 0, 255).astype(np.uint8)


def _minmax_to_uint8(arr: np.ndarray) -> np.ndarray:
    arr = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(arr.min()), float(arr.max())
    if hi <= lo:
        return np.zeros(arr.shape, dtype=np.uint8)
    return np.clip(np.rint((arr - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8)


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))


def _composite_on_black(rgba: np.ndarray) -> np.ndarray:
    rgb = rgba[:, :, :3].astype(np.uint16)
    alpha = rgba[:, :, 3:4].astype(np.uint16)
    # Rounded integer rgb * alpha / 255.
    return ((rgb * alpha + 127) // 255).astype(np.uint8)


def to_rgb_array(img: Image.Image) -> np.ndarray:
    """Convert a loaded PIL image of any mode to a contiguous ``(H, W, 3) uint8`` array."""
    mode = img.mode
    if mode == "RGB":
        return np.asarray(img, dtype=np.uint8)
    if mode in _SIXTEEN_BIT:
        return _gray_to_rgb(_scale_to_uint8(np.asarray(img), 65535.0))
    if mode == "I":
        arr = np.asarray(img)
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            return _gray_to_rgb(_minmax_to_uint8(arr))
        return _gray_to_rgb(_scale_to_uint8(arr, 65535.0))
    if mode == "F":
        arr = np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0)
        if arr.size and arr.min() >= 0.0 and arr.max() <= 1.0:
            return _gray_to_rgb(_scale_to_uint8(arr, 1.0))
        return _gray_to_rgb(_minmax_to_uint8(arr))
    if mode == "P" and "transparency" in img.info:
        mode = "PA"
    if mode in _ALPHA_MODES:
        rgba = np.asarray(img.convert("RGBA"), dtype=np.uint8)
        return _composite_on_black(rgba)
    if mode in ("L", "1"):
        return _gray_to_rgb(np.asarray(img.convert("L"), dtype=np.uint8))
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


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
