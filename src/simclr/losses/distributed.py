"""Cross-process helpers for the contrastive loss: rank, world size and a gather that keeps gradients.

SimCLR (Chen et al. 2020, arXiv:2002.05709, Section 2 "Training with large batch size") draws the
negatives of every anchor from the *global* batch, so embeddings must be shared between processes,
and the gradient must flow back through the sharing. :func:`gather_with_grad` does that.

Why the backward pass sums over ranks
-------------------------------------
Let rank r hold B local images and compute ``loss_r``, a mean over its own anchors that uses the
gathered embeddings of all W ranks as candidates. The quantity we want to minimise is the global
mean over all W*B anchors, ``L = (1/W) * sum_r loss_r``. The embedding ``z`` of rank r appears in
every rank's loss (as a candidate), so

    dL/dz = (1/W) * sum_r' d loss_r' / dz.

Each rank's autograd sees only its own ``loss_r'``; the gradient arriving at the gathered tensor on
rank r' holds ``d loss_r' / d(all embeddings)``. Summing those gradients over ranks (an all-reduce)
and keeping this rank's slice gives ``sum_r' d loss_r' / dz`` = ``W * dL/dz``. DistributedDataParallel
then *averages* parameter gradients over the W ranks, which supplies the ``1/W``. The product is
exactly the gradient of the global mean, i.e. the step single-process training with batch W*B
would take. Taking only this rank's slice without the all-reduce would drop the contributions of the
other ranks' anchors (the bug fixed in lightly 1.5.4).

The slice arithmetic assumes every rank holds the same number of rows (``drop_last=True`` in the
sampler); unequal sizes are detected and reported instead of silently mixing rows.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from simclr.errors import UserError

__all__ = ["gather_with_grad", "is_distributed", "rank", "world_size"]


def is_distributed() -> bool:
    """True when torch.distributed is compiled in and a process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    """Number of processes in the default group, or 1 without an initialised process group."""
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    """This process's rank in the default group, or 0 without an initialised process group."""
    return dist.get_rank() if is_distributed() else 0


_CHECKED_ROWS: set[tuple[int, int]] = set()  # (rows, world size) already found equal on every rank


def _check_equal_rows(x: Tensor, size: int) -> None:
    """Raise on every rank when the ranks hold different numbers of rows (a collective call).

    A row count is checked once: the check reads the counts on the host (a synchronisation), and training
    batches keep one size (drop_last), so a per-step check would stall every step for nothing.
    """
    if (x.shape[0], size) in _CHECKED_ROWS:
        return
    rows = torch.tensor([x.shape[0]], dtype=torch.long, device=x.device)
    all_rows = [torch.zeros_like(rows) for _ in range(size)]
    dist.all_gather(all_rows, rows)
    counts = [int(t.item()) for t in all_rows]
    if len(set(counts)) != 1:
        raise UserError(
            f"gather_with_grad needs the same batch size on every process, got {counts} rows per rank; "
            "use drop_last=True in the data loader (or equal per-rank batches)"
        )
    _CHECKED_ROWS.add((x.shape[0], size))


class _GatherWithGrad(torch.autograd.Function):
    """all_gather in the forward pass; all-reduce (sum) and keep this rank's slice in the backward pass."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        size = dist.get_world_size()
        ctx.rank = dist.get_rank()
        ctx.rows = x.shape[0]
        parts = [torch.empty_like(x) for _ in range(size)]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        total = grad.contiguous().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        start = ctx.rank * ctx.rows
        return total[start : start + ctx.rows]


def gather_with_grad(x: Tensor) -> Tensor:
    """Concatenate ``x`` from all ranks along dim 0 in rank order, differentiably.

    Rows ``r*B : (r+1)*B`` of the result are rank r's ``x``. The backward pass sums the incoming
    gradient over ranks and returns this rank's rows (see the module docstring for why that, combined
    with DDP's gradient averaging, yields the gradient of the global mean loss). Without an
    initialised process group, or with a single process, ``x`` is returned unchanged.

    Raises:
        UserError: if the ranks hold different numbers of rows.
    """
    size = world_size()
    if size == 1:
        return x
    _check_equal_rows(x, size)
    out: Tensor = _GatherWithGrad.apply(x)
    return out
