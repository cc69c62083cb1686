"""Features of a frozen backbone for evaluation: eval mode, no augmentation, no gradients."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn


def normalize_images(images: Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    """uint8 (B, 3, H, W) -> float normalised with the dataset's mean and std."""
    x = images.float().div_(255.0)
    m = torch.tensor(mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - m) / s


@torch.no_grad()
def extract_features(
    backbone: nn.Module,
    images: Tensor,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    batch_size: int = 512,
    device: torch.device | str | None = None,
    autocast_dtype: torch.dtype | None = None,
    channels_last: bool = True,
) -> Tensor:
    """Backbone features of uint8 images, computed in eval mode and returned as float32 on the CPU.

    The backbone's train/eval mode is restored afterwards and its weights are never touched, so calling
    this during or after training cannot change the model (a frozen-backbone guarantee evaluation relies on).
    """
    device = torch.device(device) if device is not None else next(backbone.parameters()).device
    was_training = backbone.training
    backbone.eval()
    chunks: list[Tensor] = []
    try:
        for start in range(0, images.shape[0], batch_size):
            batch = normalize_images(images[start : start + batch_size].to(device, non_blocking=True), mean, std)
            if channels_last:
                batch = batch.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device_type=device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
                out = backbone(batch)
            chunks.append(out.float().cpu())
    finally:
        backbone.train(was_training)
    if not chunks:
        return torch.empty(0, 0)
    return torch.cat(chunks)


@torch.no_grad()
def encode_batches(
    backbone: nn.Module,
    count: int,
    make_batch: Callable[[int, int], Tensor],
    batch_size: int = 512,
    device: torch.device | str | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> Tensor:
    """Features of ``count`` inputs whose normalised float batches come from ``make_batch(start, stop)``
    (already on ``device``): the path for test-time-augmented views and freshly rendered Spirograph
    images. Eval mode, restored afterwards; float32 on the CPU."""
    device = torch.device(device) if device is not None else next(backbone.parameters()).device
    was_training = backbone.training
    backbone.eval()
    chunks: list[Tensor] = []
    try:
        for start in range(0, count, batch_size):
            batch = make_batch(start, min(start + batch_size, count)).to(device)
            with torch.autocast(device_type=device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
                out = backbone(batch.contiguous(memory_format=torch.channels_last))
            chunks.append(out.float().cpu())
    finally:
        backbone.train(was_training)
    return torch.cat(chunks) if chunks else torch.empty(0, 0)
