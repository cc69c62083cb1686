"""Per-channel pixel statistics of a training split (``--standardize``, SimCLR-AE's Z-scoring)."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from simclr.errors import UserError

__all__ = ["STANDARDIZE_SAMPLE", "channel_statistics"]

STANDARDIZE_SAMPLE = 50_000  # images, evenly spaced over the split: beyond this the estimate no longer moves


def channel_statistics(batches: Iterable[torch.Tensor]) -> tuple[list[float], list[float]]:
    """Mean and standard deviation of each channel over every pixel of the images, in [0, 1] units.

    The images are uint8 batches (B, 3, H, W); sums run in float64, so millions of pixels lose nothing.
    (SimCLR-AE averages per-image means and standard deviations instead; the average of per-image
    standard deviations leaves out how much images differ from each other, so it underestimates.)
    """
    total = torch.zeros(3, dtype=torch.float64)
    squares = torch.zeros(3, dtype=torch.float64)
    pixels = 0
    for batch in batches:
        x = batch.to(torch.float64).div_(255.0)
        total += x.sum(dim=(0, 2, 3))
        squares += x.square().sum(dim=(0, 2, 3))
        pixels += x.shape[0] * x.shape[2] * x.shape[3]
    if pixels == 0:
        raise UserError("--standardize needs training images to measure; the training split is empty")
    mean = total / pixels
    std = (squares / pixels - mean.square()).clamp(min=0.0).sqrt()
    if bool((std < 1e-6).any()):
        raise UserError(
            "--standardize: a colour channel of the training images never varies (standard deviation 0); "
            "drop --standardize"
        )
    return [round(float(v), 6) for v in mean], [round(float(v), 6) for v in std]
