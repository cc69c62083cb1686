"""Any PIL image as 8-bit RGB: the one conversion every image passes, whether it was decoded from a file
(:mod:`simclr.data.decode`) or handed to a per-image transform (:mod:`simclr.views.transform`).

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
"""

from __future__ import annotations

import numpy as np
from PIL import Image

__all__ = ["to_rgb_array"]

_ALPHA_MODES = {"RGBA": "RGBA", "LA": "LA", "PA": "RGBA", "La": "LA", "RGBa": "RGBA"}
_SIXTEEN_BIT = {"I;16", "I;16B", "I;16L", "I;16N"}


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
