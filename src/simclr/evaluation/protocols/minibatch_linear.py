"""The linear probe's objective fitted by mini-batch SGD, for features too big for a full-batch L-BFGS fit.

The model and the objective are those of :func:`simclr.evaluation.protocols.lbfgs.fit_linear` (mean loss plus
``l2 * ||W||^2``, bias not penalised, on standardised features), so the L2 selection and the reported
protocol stay the same; only the optimiser changes. Full-batch L-BFGS holds the standardised feature matrix
beside the features; ImageNet's 1.28M ResNet-50 features take 10 GB, so above the memory budget the fit
reads the (memory-mapped) features a mini-batch at a time instead and never copies them whole.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from simclr.evaluation.protocols.lbfgs import LinearFit, data_loss
from simclr.optim.schedules import WarmupCosineLR

FULL_BATCH_COPIES = 3  # the features, their standardised copy, and the fit part's copy during the L2 search


def full_batch_bytes(rows: int, dim: int) -> int:
    """Memory a full-batch L-BFGS fit of ``rows`` float32 features of ``dim`` dimensions holds at its peak."""
    return FULL_BATCH_COPIES * 4 * rows * dim


@dataclass(frozen=True)
class MinibatchSettings:
    """SGD with Nesterov momentum and a per-step cosine schedule over ``epochs`` passes of the fit rows."""

    epochs: int = 10  # passes over millions of rows: thousands of steps on a convex objective
    batch_size: int = 1024
    lr: float = 0.5
    momentum: float = 0.9
    seed: int = 0

    def describe(self) -> str:
        return (
            f"mini-batch SGD (batch {self.batch_size}, {self.epochs} epochs, lr {self.lr:g} cosine, "
            f"Nesterov momentum {self.momentum:g})"
        )


def chunked_standardizer(
    features: Tensor, rows: Tensor, standardize: bool, chunk: int = 65_536
) -> tuple[Tensor, Tensor]:
    """:func:`~simclr.evaluation.protocols.lbfgs.standardizer` of ``features[rows]``, summed chunk by chunk in
    float64."""
    dim = features.shape[1]
    if not standardize:
        return torch.zeros(dim), torch.ones(dim)
    total = torch.zeros(dim, dtype=torch.float64)
    squares = torch.zeros(dim, dtype=torch.float64)
    for start in range(0, rows.numel(), chunk):
        x = features[rows[start : start + chunk]].double()
        total += x.sum(0)
        squares += x.pow(2).sum(0)
    mean = total / rows.numel()
    std = (squares / rows.numel() - mean.pow(2)).clamp(min=0).sqrt()
    return mean.float(), torch.where(std > 1e-6, std, torch.ones_like(std)).float()


def fit_linear_minibatch(
    features: Tensor,
    targets: Tensor,
    rows: Tensor,
    *,
    loss: str,
    l2: float,
    standardize: bool = True,
    settings: MinibatchSettings = MinibatchSettings(),
    num_outputs: int | None = None,
    init: LinearFit | None = None,
    focal_gamma: float = 0.0,
) -> LinearFit:
    """Minimise the objective of :func:`~simclr.evaluation.protocols.lbfgs.fit_linear` over ``features[rows]`` by
    mini-batch SGD, gathering one batch of rows at a time; ``init`` warm-starts as there."""
    if loss not in ("ce", "mse"):
        raise ValueError(f"loss must be 'ce' or 'mse', got {loss!r}")
    mean, std = (init.mean, init.std) if init is not None else chunked_standardizer(features, rows, standardize)
    if loss == "ce":
        outputs = num_outputs if num_outputs is not None else int(targets[rows].max()) + 1
    else:
        outputs = targets.shape[1]
    weight = torch.zeros(outputs, features.shape[1]) if init is None else init.weight.clone()
    bias = torch.zeros(outputs) if init is None else init.bias.clone()
    if init is None and loss == "mse":
        bias = targets[rows].float().mean(0)
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    optimizer = torch.optim.SGD([weight, bias], lr=settings.lr, momentum=settings.momentum, nesterov=True)
    steps_per_epoch = math.ceil(rows.numel() / settings.batch_size)
    schedule = WarmupCosineLR(optimizer, total_steps=settings.epochs * steps_per_epoch, warmup_steps=0)
    generator = torch.Generator().manual_seed(settings.seed)

    def batch(index: Tensor) -> tuple[Tensor, Tensor]:
        x = (features[index].float() - mean) / std
        return x, targets[index].long() if loss == "ce" else targets[index].float()

    with torch.enable_grad():
        for _ in range(settings.epochs):
            order = rows[torch.randperm(rows.numel(), generator=generator)]
            for start in range(0, order.numel(), settings.batch_size):
                x, y = batch(order[start : start + settings.batch_size])
                value = data_loss(x @ weight.T + bias, y, loss, focal_gamma) + l2 * weight.pow(2).sum()
                optimizer.zero_grad()
                value.backward()
                optimizer.step()
                schedule.step()
    weight, bias = weight.detach(), bias.detach()
    with torch.no_grad():  # the objective over all fit rows, a chunk at a time
        data = 0.0
        for start in range(0, rows.numel(), 65_536):
            index = rows[start : start + 65_536]
            x, y = batch(index)
            data += float(data_loss(x @ weight.T + bias, y, loss, focal_gamma)) * index.numel()
        final = data / rows.numel() + l2 * float(weight.pow(2).sum())
    return LinearFit(weight, bias, mean, std, final, settings.epochs * steps_per_epoch)
