"""Distribution shifts of test data (InvCLR's robustness study), deterministic per image.

A shift is a named family with a strength; strength 0 leaves the data as it was. Two kinds:

- :data:`IMAGE_SHIFTS` act on test images (uint8 in and out). Parameters that vary per image (colour
  jitter) come from a generator seeded by the evaluation seed, so every backbone meets the same shifted images.
- :data:`NUISANCE_SHIFTS` act on Spirograph's 6 nuisance parameters ``(h, rback, gfore, gback, bfore, bback)``
  before the test factors are rendered (Foster et al. 2020's shifts of the foreground, background and ``h``
  means, and the widened ranges): the pictures change in the ways the representation was trained to ignore,
  and the generative factors being regressed stay as they were.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from simclr.views import ops
from simclr.views.config import ViewConfig
from simclr.views.params import sample_jitter
from simclr.views.spirograph import NUISANCE_NAMES, NUISANCE_RANGES

__all__ = ["IMAGE_SHIFTS", "NUISANCE_SHIFTS", "Shift", "shifted_batches"]


@dataclass(frozen=True)
class Shift:
    """A family of shifts: ``apply(data, strength, generator)``, and the strengths swept.

    ``data`` is a batch of images in [0, 1] for an image shift, ``(N, 6)`` nuisance parameters for a
    nuisance shift."""

    name: str
    description: str
    strengths: tuple[float, ...]
    apply: Callable[[Tensor, float, torch.Generator], Tensor]


# -- shifts of images --------------------------------------------------------------------------------


def _brightness(images: Tensor, strength: float, generator: torch.Generator) -> Tensor:
    return (images + strength).clamp_(0.0, 1.0)


def _jitter(images: Tensor, strength: float, generator: torch.Generator) -> Tensor:
    config = ViewConfig(size=images.shape[-1], jitter_strength=strength)
    factors = sample_jitter(images.shape[0], config, generator).to(images.device)
    return ops.color_jitter(images, factors)


IMAGE_SHIFTS: dict[str, Shift] = {
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


# -- shifts of Spirograph's nuisance parameters ----------------------------------------------------------

_H = (NUISANCE_NAMES.index("h"),)
_FOREGROUND = (NUISANCE_NAMES.index("gfore"), NUISANCE_NAMES.index("bfore"))  # rfore is a regressed factor
_BACKGROUND = tuple(NUISANCE_NAMES.index(name) for name in ("rback", "gback", "bback"))


def _valid(nuisance: Tensor) -> Tensor:
    """Colours clamped to [0, 1] and ``h`` to >= 0, the values a rendering can take."""
    nuisance[:, list(_FOREGROUND + _BACKGROUND)] = nuisance[:, list(_FOREGROUND + _BACKGROUND)].clamp(0.0, 1.0)
    nuisance[:, list(_H)] = nuisance[:, list(_H)].clamp_min(0.0)
    return nuisance


def _mean_shift(columns: tuple[int, ...]) -> Callable[[Tensor, float, torch.Generator], Tensor]:
    def apply(nuisance: Tensor, strength: float, generator: torch.Generator) -> Tensor:
        shifted = nuisance.clone()
        shifted[:, list(columns)] += strength
        return _valid(shifted)

    return apply


def _spread(nuisance: Tensor, strength: float, generator: torch.Generator) -> Tensor:
    centre = torch.tensor([(lo + hi) / 2 for lo, hi in NUISANCE_RANGES], dtype=nuisance.dtype)
    return _valid(nuisance + strength * (nuisance - centre))  # centre + (1 + s)(x - centre), exact at s = 0


NUISANCE_SHIFTS: dict[str, Shift] = {
    "h": Shift(
        "h", "the curve's h (range 0.5 to 2.5 in training) moved by the strength, kept >= 0",
        (-0.4, -0.2, 0.2, 0.4), _mean_shift(_H),
    ),
    "foreground": Shift(
        "foreground", "the foreground's green and blue (0.4 to 1 in training) moved by the strength, clamped to "
        "[0, 1]; red is the regressed factor rfore and stays", (-0.3, -0.15, 0.15, 0.3), _mean_shift(_FOREGROUND),
    ),
    "background": Shift(
        "background", "the background colour (0 to 0.6 per channel in training) moved by the strength, clamped "
        "to [0, 1]", (-0.3, -0.15, 0.15, 0.3), _mean_shift(_BACKGROUND),
    ),
    "spread": Shift(
        "spread", "every nuisance range widened about its centre by the factor 1 + strength (colours clamped "
        "to [0, 1], h to >= 0)", (0.25, 0.5, 1.0), _spread,
    ),
}  # fmt: skip
