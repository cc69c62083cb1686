"""Configuration of the SimCLR view distribution.

The defaults follow SimCLR (Chen et al. 2020, arXiv:2002.05709, Appendix A): a random resized crop
with area fraction in [0.08, 1] and aspect ratio in [3/4, 4/3], a horizontal flip with probability
0.5, colour jitter of strength ``s`` (brightness, contrast and saturation ``0.8 s``, hue ``0.2 s``)
applied with probability 0.8, random grayscale with probability 0.2, and Gaussian blur (kernel 10%
of the image side, sigma in [0.1, 2.0]) with probability 0.5 on ImageNet-size images; the paper
drops the blur for CIFAR-10 (32px), hence ``blur_p = 0`` by default. ``s = 0.5`` is the CIFAR-10
strength of Appendix B.9; ImageNet uses ``s = 1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from simclr.errors import UserError

__all__ = ["ViewConfig"]


def _check_prob(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and 0.0 <= value <= 1.0):
        raise UserError(f"{name} must be in [0, 1], got {value!r}")


def _check_pair(name: str, value: object) -> tuple[float, float]:
    if not (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, (int, float)) and math.isfinite(v) for v in value)
    ):
        raise UserError(f"{name} must be a pair of finite numbers (low, high), got {value!r}")
    return float(value[0]), float(value[1])


def _check_triple(name: str, value: object) -> tuple[float, float, float]:
    if not (
        isinstance(value, (tuple, list))
        and len(value) == 3
        and all(isinstance(v, (int, float)) and math.isfinite(v) for v in value)
    ):
        raise UserError(f"{name} must be three finite numbers (one per RGB channel), got {value!r}")
    return float(value[0]), float(value[1]), float(value[2])


@dataclass(frozen=True)
class ViewConfig:
    """Parameters of the random view distribution (SimCLR, arXiv:2002.05709, Appendix A).

    Photometric strengths left as ``None`` are derived from ``jitter_strength`` exactly as in the
    paper's pseudo-code (``0.8 s`` for brightness/contrast/saturation, ``0.2 s`` for hue); an
    explicit value overrides the derived one. Call :meth:`validate` before use; the view modules
    call it themselves.
    """

    size: int
    """Output side in pixels (views are square)."""
    crop_scale: tuple[float, float] = (0.08, 1.0)
    """Range of the crop area as a fraction of the source area."""
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    """Range of the crop aspect ratio width / height (sampled log-uniformly)."""
    flip_p: float = 0.5
    """Probability of a horizontal flip."""
    vflip_p: float = 0.0
    """Probability of a vertical flip (off in SimCLR; for data without an up, such as satellite images)."""
    rotation_p: float = 0.0
    """Probability of a rotation (off in SimCLR)."""
    rotation_degrees: float = 30.0
    """Rotations are drawn uniformly from ``[-rotation_degrees, rotation_degrees]`` (corners filled black)..."""
    rotation_quarter_turns: bool = False
    """...or, when true, from the multiples of 90 degrees (exact, nothing filled)."""
    jitter_strength: float = 0.5
    """Colour-jitter strength ``s``: brightness/contrast/saturation ``0.8 s``, hue ``0.2 s``."""
    brightness: float | None = None
    """Brightness strength ``v`` (factor in ``[max(0, 1 - v), 1 + v]``); ``None`` -> ``0.8 s``."""
    contrast: float | None = None
    """Contrast strength; ``None`` -> ``0.8 s``."""
    saturation: float | None = None
    """Saturation strength; ``None`` -> ``0.8 s``."""
    hue: float | None = None
    """Hue strength ``h`` in turns (shift in ``[-h, h]``); ``None`` -> ``0.2 s``; at most 0.5."""
    jitter_p: float = 0.8
    """Probability that colour jitter is applied to a view."""
    grayscale_p: float = 0.2
    """Probability of converting a view to grayscale."""
    blur_p: float = 0.0
    """Probability of Gaussian blur (SimCLR: 0.5 for ImageNet-size data, off for 32px)."""
    blur_kernel: int | None = None
    """Odd blur kernel side; ``None`` -> odd integer closest to 10% of ``size`` (at least 3)."""
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    """Range of the blur standard deviation in output pixels (sampled uniformly)."""
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    """Per-channel mean subtracted by the final normalisation."""
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    """Per-channel standard deviation divided by the final normalisation."""

    # ----------------------------------------------------------------- resolved values
    @property
    def geometric_extras(self) -> bool:
        """True when a vertical flip or a rotation may be drawn (their parameters are drawn only then, so the
        views of a run without them stay those of earlier versions)."""
        return self.vflip_p > 0.0 or self.rotation_p > 0.0

    @property
    def brightness_strength(self) -> float:
        """Brightness strength after resolving ``None`` to ``0.8 * jitter_strength``."""
        return 0.8 * self.jitter_strength if self.brightness is None else float(self.brightness)

    @property
    def contrast_strength(self) -> float:
        """Contrast strength after resolving ``None`` to ``0.8 * jitter_strength``."""
        return 0.8 * self.jitter_strength if self.contrast is None else float(self.contrast)

    @property
    def saturation_strength(self) -> float:
        """Saturation strength after resolving ``None`` to ``0.8 * jitter_strength``."""
        return 0.8 * self.jitter_strength if self.saturation is None else float(self.saturation)

    @property
    def hue_strength(self) -> float:
        """Hue strength in turns after resolving ``None`` to ``0.2 * jitter_strength``."""
        return 0.2 * self.jitter_strength if self.hue is None else float(self.hue)

    @property
    def brightness_factor_range(self) -> tuple[float, float]:
        """Interval the brightness factor is drawn from: ``[max(0, 1 - v), 1 + v]``."""
        return _factor_range(self.brightness_strength)

    @property
    def contrast_factor_range(self) -> tuple[float, float]:
        """Interval the contrast factor is drawn from: ``[max(0, 1 - v), 1 + v]``."""
        return _factor_range(self.contrast_strength)

    @property
    def saturation_factor_range(self) -> tuple[float, float]:
        """Interval the saturation factor is drawn from: ``[max(0, 1 - v), 1 + v]``."""
        return _factor_range(self.saturation_strength)

    @property
    def hue_shift_range(self) -> tuple[float, float]:
        """Interval the hue shift (in turns) is drawn from: ``[-h, h]``."""
        h = self.hue_strength
        return (-h, h)

    @property
    def blur_kernel_size(self) -> int:
        """Blur kernel side: ``blur_kernel`` or the odd integer closest to ``0.1 * size`` (>= 3)."""
        if self.blur_kernel is not None:
            return int(self.blur_kernel)
        k = 2 * math.floor((0.1 * self.size - 1.0) / 2.0 + 0.5) + 1
        return max(3, k)

    # ----------------------------------------------------------------- validation
    def validate(self) -> None:
        """Raise :class:`~simclr.errors.UserError` naming the first invalid field and its range."""
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1:
            raise UserError(f"size must be an integer >= 1, got {self.size!r}")

        lo, hi = _check_pair("crop_scale", self.crop_scale)
        if not 0.0 < lo <= hi <= 1.0:
            raise UserError(f"crop_scale must satisfy 0 < low <= high <= 1, got {self.crop_scale!r}")
        lo, hi = _check_pair("crop_ratio", self.crop_ratio)
        if not 0.0 < lo <= hi:
            raise UserError(f"crop_ratio must satisfy 0 < low <= high, got {self.crop_ratio!r}")

        for name in ("flip_p", "vflip_p", "rotation_p", "jitter_p", "grayscale_p", "blur_p"):
            _check_prob(name, getattr(self, name))
        degrees = self.rotation_degrees
        if not (isinstance(degrees, (int, float)) and math.isfinite(degrees) and 0.0 <= degrees <= 180.0):
            raise UserError(f"rotation_degrees must be within [0, 180], got {degrees!r}")

        s = self.jitter_strength
        if not (isinstance(s, (int, float)) and math.isfinite(s) and s >= 0.0):
            raise UserError(f"jitter_strength must be a finite number >= 0, got {s!r}")
        for name in ("brightness", "contrast", "saturation", "hue"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0.0):
                raise UserError(f"{name} must be None or a finite number >= 0, got {value!r}")
        if self.hue_strength > 0.5:
            source = "hue" if self.hue is not None else "0.2 * jitter_strength (hue)"
            raise UserError(f"{source} must be in [0, 0.5], got {self.hue_strength!r}")

        if self.blur_kernel is not None and (
            isinstance(self.blur_kernel, bool)
            or not isinstance(self.blur_kernel, int)
            or self.blur_kernel < 1
            or self.blur_kernel % 2 == 0
        ):
            raise UserError(f"blur_kernel must be None or an odd integer >= 1, got {self.blur_kernel!r}")
        if self.blur_p > 0.0 and self.blur_kernel_size // 2 >= self.size:
            raise UserError(
                f"blur_kernel must be in [1, 2 * size - 1 = {2 * self.size - 1}] for reflect "
                f"padding, got {self.blur_kernel_size}"
            )
        lo, hi = _check_pair("blur_sigma", self.blur_sigma)
        if not 0.0 < lo <= hi:
            raise UserError(f"blur_sigma must satisfy 0 < low <= high, got {self.blur_sigma!r}")

        _check_triple("mean", self.mean)
        std = _check_triple("std", self.std)
        if min(std) <= 0.0:
            raise UserError(f"std must be three numbers > 0, got {self.std!r}")


def _factor_range(strength: float) -> tuple[float, float]:
    return (max(0.0, 1.0 - strength), 1.0 + strength)
