"""Per-image random parameters of SimCLR views, drawn for a whole batch at once.

SimCLR (Chen et al. 2020, arXiv:2002.05709, Appendix A) draws every augmentation independently for
every image; sharing one draw across a batch would make the two views of all images move together
and weaken the contrastive task. :func:`sample_view_params` therefore draws one independent set of
parameters per row with a handful of vectorised tensor ops, from an explicit CPU
:class:`torch.Generator` so that a fixed seed reproduces the views exactly on any device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
from torch import Tensor

from simclr.views.config import ViewConfig

__all__ = ["JITTER_NAMES", "ViewParams", "sample_crop_boxes", "sample_jitter", "sample_view_params"]

JITTER_NAMES: tuple[str, ...] = ("brightness", "contrast", "saturation", "hue")  # the columns of sample_jitter

_CROP_ATTEMPTS = 10
"""Rejection-sampling attempts per image, as in torchvision's RandomResizedCrop."""


@dataclass
class ViewParams:
    """Explicit parameters of one view per row; all tensors have leading dim ``B`` on one device.

    Keeping the parameters explicit (rather than hidden inside random transforms) lets a caller
    replay a view, and lets the colour-jitter factors carry ``requires_grad`` for methods that
    differentiate the representation w.r.t. the augmentation (Foster et al., "Improving
    Transformation Invariance in Contrastive Representation Learning").
    """

    crop_boxes: Tensor
    """(B, 4) float: (top, left, height, width) as fractions of the source image, inside [0, 1]."""
    flip: Tensor
    """(B,) bool: flip horizontally."""
    jitter: Tensor
    """(B, 4) float: brightness, contrast, saturation factors and hue shift in turns."""
    jitter_on: Tensor
    """(B,) bool: apply the colour jitter (Bernoulli ``jitter_p``)."""
    grayscale: Tensor
    """(B,) bool: convert to grayscale (Bernoulli ``grayscale_p``)."""
    blur_on: Tensor
    """(B,) bool: apply Gaussian blur (Bernoulli ``blur_p``)."""
    blur_sigma: Tensor
    """(B,) float: blur standard deviation in output pixels."""
    vflip: Tensor
    """(B,) bool: flip vertically (Bernoulli ``vflip_p``)."""
    rotation: Tensor
    """(B,) float: rotation in degrees, counter-clockwise (0 where none is drawn, Bernoulli ``rotation_p``)."""

    @property
    def batch_size(self) -> int:
        """Number of views described (the common leading dimension)."""
        return int(self.flip.shape[0])

    def to(self, device: torch.device | str) -> ViewParams:
        """Return a copy with every tensor on ``device``."""
        return ViewParams(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def narrow(self, start: int, length: int) -> ViewParams:
        """Rows ``start:start + length`` (a view of the same storage), e.g. one of n views."""
        return ViewParams(**{f.name: getattr(self, f.name).narrow(0, start, length) for f in fields(self)})


def _uniform(u: Tensor, low: float, high: float) -> Tensor:
    return low + (high - low) * u


def _sample_crop_boxes(u: Tensor, source_hw: tuple[int, int], config: ViewConfig) -> Tensor:
    """RandomResizedCrop boxes from uniforms ``u`` of shape (B, 2 * attempts + 2), in float64.

    Follows torchvision's definition: area fraction uniform in ``crop_scale``, log aspect ratio
    uniform in ``log(crop_ratio)``, up to 10 attempts per image (the first one that fits is kept),
    else a central crop of the whole image clipped to the ratio range. Unlike torchvision, box sides
    are not rounded to whole pixels: the crop is resampled bilinearly anyway, and sub-pixel boxes
    keep the area distribution exactly the one specified.
    """
    height, width = float(source_hw[0]), float(source_hw[1])
    n = _CROP_ATTEMPTS
    area = _uniform(u[:, :n], *config.crop_scale) * (height * width)
    log_lo, log_hi = math.log(config.crop_ratio[0]), math.log(config.crop_ratio[1])
    ratio = torch.exp(_uniform(u[:, n : 2 * n], log_lo, log_hi))
    w = torch.sqrt(area * ratio)
    h = torch.sqrt(area / ratio)
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.to(torch.uint8).argmax(dim=1, keepdim=True)  # first fitting attempt (or 0)
    found = fits.any(dim=1)
    w = w.gather(1, first).squeeze(1)
    h = h.gather(1, first).squeeze(1)

    # Fallback: the whole image, clipped to the allowed aspect-ratio range, centred.
    in_ratio = width / height
    if in_ratio < config.crop_ratio[0]:
        fb_w, fb_h = width, width / config.crop_ratio[0]
    elif in_ratio > config.crop_ratio[1]:
        fb_w, fb_h = height * config.crop_ratio[1], height
    else:
        fb_w, fb_h = width, height
    w = torch.where(found, w, torch.full_like(w, fb_w))
    h = torch.where(found, h, torch.full_like(h, fb_h))

    top_u = torch.where(found, u[:, 2 * n], torch.full_like(w, 0.5))
    left_u = torch.where(found, u[:, 2 * n + 1], torch.full_like(w, 0.5))
    top = top_u * (height - h)
    left = left_u * (width - w)
    boxes = torch.stack([top / height, left / width, h / height, w / width], dim=1)
    return boxes.clamp_(0.0, 1.0)


def sample_crop_boxes(count: int, source_hw: tuple[int, int], config: ViewConfig, generator: torch.Generator) -> Tensor:
    """``(count, 4)`` random resized crop boxes of one ``source_hw`` image, float64 fractions.

    The same distribution as the crop of :func:`sample_view_params`; the streaming loader cuts its views
    with it from each stored image at its own size, where the in-memory path crops on the device.
    """
    u = torch.rand(count, 2 * _CROP_ATTEMPTS + 2, generator=generator, dtype=torch.float64)
    return _sample_crop_boxes(u, source_hw, config)


def _jitter_from_uniform(u: Tensor, config: ViewConfig) -> Tensor:
    """(B, 4) uniforms in [0, 1) -> brightness, contrast, saturation factors and hue shift."""
    ranges = (
        config.brightness_factor_range,
        config.contrast_factor_range,
        config.saturation_factor_range,
        config.hue_shift_range,
    )
    return torch.stack([_uniform(u[:, i], *bounds) for i, bounds in enumerate(ranges)], dim=1)


def sample_jitter(
    batch_size: int, config: ViewConfig, generator: torch.Generator, device: torch.device | str = "cpu"
) -> Tensor:
    """Only the ``(B, 4)`` colour-jitter parameters of :func:`sample_view_params`'s distribution, float32:
    what the gradient penalty re-draws (many per image), without sampling crops it would not use."""
    u = torch.rand(batch_size, 4, generator=generator, dtype=torch.float64)
    return _jitter_from_uniform(u, config).to(torch.float32).to(device)


def sample_view_params(
    batch_size: int,
    source_hw: tuple[int, int],
    config: ViewConfig,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
) -> ViewParams:
    """Draw independent view parameters for ``batch_size`` images of size ``source_hw``.

    All randomness comes from ``generator`` (a CPU :class:`torch.Generator`) in one ``torch.rand``
    call, so a fixed seed reproduces the parameters bit-exactly whatever ``device`` is; the result
    is moved to ``device`` with a single host-to-device copy.
    """
    config.validate()
    if batch_size < 0:
        raise ValueError(f"batch_size must be >= 0, got {batch_size}")
    if generator.device.type != "cpu":
        raise ValueError(f"generator must be a CPU torch.Generator, got one on {generator.device}")
    if min(source_hw) < 1:
        raise ValueError(f"source_hw must be positive, got {source_hw}")

    n = _CROP_ATTEMPTS
    # Columns: 2n+2 crop, flip, 4 jitter, jitter_on, grayscale, blur_on, blur_sigma.
    u = torch.rand(batch_size, 2 * n + 11, generator=generator, dtype=torch.float64)
    c = 2 * n + 2
    boxes = _sample_crop_boxes(u[:, :c], source_hw, config)
    flip = u[:, c] < config.flip_p
    jitter = _jitter_from_uniform(u[:, c + 1 : c + 5], config)
    jitter_on = u[:, c + 5] < config.jitter_p
    grayscale = u[:, c + 6] < config.grayscale_p
    blur_on = u[:, c + 7] < config.blur_p
    blur_sigma = _uniform(u[:, c + 8], *config.blur_sigma)
    vflip, rotation = _sample_geometric_extras(batch_size, config, generator)

    # Pack into one float32 tensor so the transfer to the device is a single copy.
    packed = torch.cat(
        [
            boxes,
            jitter,
            blur_sigma[:, None],
            torch.stack([flip, jitter_on, grayscale, blur_on, vflip], dim=1).to(torch.float64),
            rotation[:, None],
        ],
        dim=1,
    ).to(torch.float32)
    packed = packed.to(device)
    flags = packed[:, 9:14] > 0.5
    return ViewParams(
        crop_boxes=packed[:, 0:4].contiguous(),
        flip=flags[:, 0].contiguous(),
        jitter=packed[:, 4:8].contiguous(),
        jitter_on=flags[:, 1].contiguous(),
        grayscale=flags[:, 2].contiguous(),
        blur_on=flags[:, 3].contiguous(),
        blur_sigma=packed[:, 8].contiguous(),
        vflip=flags[:, 4].contiguous(),
        rotation=packed[:, 14].contiguous(),
    )


def _sample_geometric_extras(batch_size: int, config: ViewConfig, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Vertical flips and rotation angles (degrees), drawn after everything else and only when the config
    asks for either, so a run without them draws exactly the views it drew before they existed."""
    if not config.geometric_extras:
        return torch.zeros(batch_size, dtype=torch.bool), torch.zeros(batch_size, dtype=torch.float64)
    u = torch.rand(batch_size, 3, generator=generator, dtype=torch.float64)
    vflip = u[:, 0] < config.vflip_p
    if config.rotation_quarter_turns:
        angle = torch.floor(u[:, 2] * 4).clamp_(max=3) * 90.0
    else:
        angle = _uniform(u[:, 2], -config.rotation_degrees, config.rotation_degrees)
    rotation = torch.where(u[:, 1] < config.rotation_p, angle, torch.zeros_like(angle))
    return vflip, rotation
