"""Features of a frozen backbone for evaluation: eval mode, no augmentation, no gradients."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn


def normalize_images(images: Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    """uint8 (B, 3, H, W) -> float normalised with the dataset's mean and std."""
    x = images.float().div_(255.0)
    m = torch.tensor(mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - m) / s


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """``module`` in eval mode for the block, its previous mode restored afterwards (even on error), so
    measuring a model during or after training never changes how it trains next."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def autocast_for(device: torch.device, dtype: torch.dtype | None) -> torch.autocast:
    """Mixed precision in ``dtype`` on ``device``, or a disabled context when ``dtype`` is None."""
    return torch.autocast(device_type=device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def extract_features(
    backbone: nn.Module,
    images: Tensor | Iterable[Tensor],
    mean: tuple[float, ...],
    std: tuple[float, ...],
    batch_size: int = 512,
    device: torch.device | str | None = None,
    autocast_dtype: torch.dtype | None = None,
    channels_last: bool = True,
    on_batch: Callable[[int], None] | None = None,
) -> Tensor:
    """Backbone features of uint8 images, computed in eval mode and returned as float32 on the CPU.

    ``images`` is one ``(N, 3, H, W)`` tensor (cut into batches of ``batch_size``) or an iterable of such
    batches (a streamed split's, decoded as they are read, so the split is never held whole).
    The backbone's train/eval mode is restored afterwards and its weights are never touched, so calling
    this during or after training cannot change the model (a frozen-backbone guarantee evaluation relies on).
    ``on_batch`` is told the size of each batch once it is encoded (see :func:`encode_inputs`).
    """
    device = torch.device(device) if device is not None else next(backbone.parameters()).device
    batches = (
        (images[start : start + batch_size] for start in range(0, images.shape[0], batch_size))
        if isinstance(images, Tensor)
        else images
    )
    normalized = (normalize_images(batch.to(device, non_blocking=True), mean, std) for batch in batches)
    return encode_inputs(
        backbone,
        normalized,
        device=device,
        autocast_dtype=autocast_dtype,
        channels_last=channels_last,
        on_batch=on_batch,
    )


def encode_batches(
    backbone: nn.Module,
    count: int,
    make_batch: Callable[[int, int], Tensor],
    batch_size: int = 512,
    device: torch.device | str | None = None,
    autocast_dtype: torch.dtype | None = None,
    channels_last: bool = True,
    on_batch: Callable[[int], None] | None = None,
) -> Tensor:
    """Outputs of ``backbone`` for ``count`` inputs whose normalised float batches come from
    ``make_batch(start, stop)``: test-time-augmented views, freshly rendered Spirograph images, a
    classifier's test inputs (see :func:`encode_inputs`)."""
    batches = (make_batch(start, min(start + batch_size, count)) for start in range(0, count, batch_size))
    return encode_inputs(
        backbone,
        batches,
        device=device,
        autocast_dtype=autocast_dtype,
        channels_last=channels_last,
        on_batch=on_batch,
    )


@torch.no_grad()
def encode_inputs(
    backbone: nn.Module,
    batches: Iterable[Tensor],
    device: torch.device | str | None = None,
    autocast_dtype: torch.dtype | None = None,
    channels_last: bool = True,
    on_batch: Callable[[int], None] | None = None,
) -> Tensor:
    """Outputs of ``backbone`` for normalised float input batches, concatenated. Eval mode, restored
    afterwards, no gradients; float32 on the CPU. ``on_batch(rows)`` is called after each batch with its
    number of inputs, which a caller that knows the total adds up into a progress report (inputs, not
    batches: a split's last batch is usually smaller)."""
    device = torch.device(device) if device is not None else next(backbone.parameters()).device
    chunks: list[Tensor] = []
    with eval_mode(backbone):
        for inputs in batches:
            batch = inputs.to(device)
            if channels_last:
                batch = batch.contiguous(memory_format=torch.channels_last)
            with autocast_for(device, autocast_dtype):
                out = backbone(batch)
            chunks.append(out.float().cpu())
            if on_batch is not None:
                on_batch(batch.shape[0])
    return torch.cat(chunks) if chunks else torch.empty(0, 0)
