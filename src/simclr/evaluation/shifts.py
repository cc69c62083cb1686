"""Distribution shifts of test images (seed 003's robustness study): deterministic per image, uint8 in and out.

A shift is a named family with a strength; strength 0 is the clean image. Parameters that vary per image
(colour jitter) come from a generator seeded by the evaluation seed, so every backbone meets the same shifted
images.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from simclr.views import ops
from simclr.views.config import ViewConfig
from simclr.views.params import sample_jitter

__all__ = ["SHIFTS", "Shift", "shifted_batches"]


@dataclass(frozen=True)
class Shift:
    """A family of shifted images: ``apply(images in [0, 1], strength, generator)``, and the strengths swept."""

    name: str
    description: str
    strengths: tuple[float, ...]
    apply: Callable[[Tensor, float, torch.Generator], Tensor]


def _brightness(images: Tensor, strength: float, generator: torch.Generator) -> Tensor:
    return (images + strength).clamp_(0.0, 1.0)


def _jitter(images: Tensor, strength: float, generator: torch.Generator) -> Tensor:
    config = ViewConfig(size=images.shape[-1], jitter_strength=strength)
    factors = sample_jitter(images.shape[0], config, generator).to(images.device)
    return ops.color_jitter(images, factors)


SHIFTS: dict[str, Shift] = {
    "brightness": Shift(
        "brightness", "every pixel shifted by the strength (a mean shift), clamped to [0, 1]",
        (-0.3, -0.15, 0.15, 0.3), _brightness,
    ),
    "colour_jitter": Shift(
        "colour_jitter", "SimCLR's colour jitter of strength s (brightness, contrast, saturation 0.8 s, hue 0.2 s), "
        "random per image", (0.25, 0.5, 1.0, 1.5), _jitter,
    ),
}  # fmt: skip


def shifted_batches(batches: Iterable[Tensor], shift: Shift, strength: float, seed: int) -> Iterator[Tensor]:
    """uint8 batches shifted by ``shift`` at ``strength`` (re-quantised to uint8, as an image file would be)."""
    generator = torch.Generator().manual_seed(seed)
    for batch in batches:
        shifted = shift.apply(batch.float().div_(255.0), strength, generator)
        yield shifted.mul_(255.0).round_().clamp_(0, 255).to(torch.uint8)
