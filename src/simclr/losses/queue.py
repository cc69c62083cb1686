"""A queue of past embeddings used as extra negatives (``--queue-size``): MoCo's dictionary of keys (He et al.
2020, arXiv:1911.05722, Section 3.2), lightly's ``memory_bank_size``.

NT-Xent's negatives are the other images of the batch, so their number grows with the batch and with it the
memory. The queue keeps the projected embeddings of the last K images (one view each, detached and
L2-normalised, of every process) and offers them to every anchor as negatives besides the batch's own:
K more negatives for the price of K rows of memory and one more (V*B, K) matrix product, with no gradient
through them. They were computed by the network of a few steps ago, which is why MoCo keeps a slowly moving
key encoder; SimCLR's network moves faster, so a queue much longer than a few hundred steps' worth of images
holds stale negatives.

The queue is first in, first out and starts empty; a step's embeddings join it after that step's loss, so the
batch never meets itself twice. Its rows, write position and fill level are plain tensors that a checkpoint
holds (:meth:`NegativeQueue.state_dict`), so a resumed run continues with the queue the interrupted one had.
"""

from __future__ import annotations

import logging
import math

import torch
from torch import Tensor

from simclr.errors import UserError
from simclr.losses.distributed import gather_with_grad, rank

__all__ = ["NegativeQueue"]

log = logging.getLogger("simclr")


class NegativeQueue:
    """The last ``size`` embeddings pushed, first in first out.

    The rows live in a fixed ``(size, D)`` tensor: the first push (or the first :meth:`negatives`) allocates it,
    and slots not yet filled are flagged invalid instead of being left out, so the loss sees one shape from the
    first step on (``--compile`` traces it once). :attr:`pointer` (the next row written) and :attr:`filled`
    (rows holding an embedding) are host integers: pushing reads nothing back from the device.

    Example:
        >>> import torch
        >>> queue = NegativeQueue(3)
        >>> queue.push(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        >>> queue.push(torch.tensor([[-1.0, 0.0], [0.0, -1.0]]))
        >>> queue.contents().tolist()  # the oldest row was dropped
        [[0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise UserError(f"a negative queue holds at least one embedding, got size {size}; pass --queue-size >= 1")
        self.size = int(size)
        self.embeddings: Tensor | None = None  # (size, D), allocated by the first push or read
        self.pointer = 0
        self.filled = 0
        self._announced = False

    def negatives(self, like: Tensor) -> tuple[Tensor, Tensor]:
        """The ``(size, D)`` rows, on ``like``'s device in float32 (float64 when ``like`` is), and a ``(size,)``
        bool mask of the rows that hold an embedding (``like``: the batch's ``(B, D)`` embeddings, of the
        queue's D)."""
        self._allocate(like)
        assert self.embeddings is not None
        valid = torch.arange(self.size, device=self.embeddings.device) < self.filled
        return self.embeddings, valid

    def push(self, rows: Tensor) -> None:
        """Append ``rows`` (n, D), detached; the oldest rows make room. With n > size only the last size rows
        stay."""
        self._announce(rows.shape[0])
        self._allocate(rows)
        assert self.embeddings is not None
        kept = rows.detach()[-self.size :].to(self.embeddings.dtype)
        count = kept.shape[0]
        slots = (self.pointer + torch.arange(count, device=self.embeddings.device)) % self.size
        # a new tensor, not written in place: the step's loss saved the old rows for its backward pass
        self.embeddings = self.embeddings.index_copy(0, slots, kept)
        self.pointer = (self.pointer + count) % self.size
        self.filled = min(self.filled + count, self.size)

    def push_gathered(self, rows: Tensor) -> None:
        """Append the ``rows`` of every process, in rank order (the same rows on every process, so every
        process keeps the same queue, and the checkpoint of rank 0 holds it for all)."""
        self.push(gather_with_grad(rows.detach()))

    def contents(self) -> Tensor:
        """The embeddings held, oldest first: ``(filled, D)``."""
        if self.embeddings is None:
            return torch.empty(0, 0)
        if self.filled < self.size:
            return self.embeddings[: self.filled]
        return torch.roll(self.embeddings, -self.pointer, dims=0)

    def state_dict(self) -> dict[str, Tensor]:
        """The rows, the write position and the fill level, as plain CPU tensors (a weights-only load reads
        them)."""
        rows = self.embeddings.detach().cpu() if self.embeddings is not None else torch.empty(0, 0)
        return {
            "embeddings": rows,
            "pointer": torch.tensor(self.pointer, dtype=torch.int64),
            "filled": torch.tensor(self.filled, dtype=torch.int64),
        }

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Continue from a saved queue. A queue of the same size is restored row for row (a resumed run then
        computes what the uninterrupted one did); one saved at another size (``--resume-with-changes
        --queue-size``) hands over its newest rows, oldest first."""
        rows, pointer, filled = state["embeddings"], int(state["pointer"]), int(state["filled"])
        if not 0 <= filled <= rows.shape[0] or not 0 <= pointer < max(rows.shape[0], 1):
            raise UserError(
                f"the checkpoint's negative queue is damaged (pointer {pointer}, {filled} filled of {rows.shape[0]} "
                "rows); resume from another checkpoint or start a new run"
            )
        self.embeddings, self.pointer, self.filled, self._announced = None, 0, 0, False
        if filled == 0:
            return
        if rows.shape[0] == self.size:
            self.embeddings, self.pointer, self.filled = rows.clone(), pointer, filled
            return
        saved = NegativeQueue(rows.shape[0])
        saved.embeddings, saved.pointer, saved.filled = rows, pointer, filled
        self.push(saved.contents())

    def _allocate(self, like: Tensor) -> None:
        """Allocate the rows for ``like``'s width, or move them to its device and dtype (after a resume, the
        checkpoint's rows come on the CPU)."""
        dim = like.shape[1]
        # kept in the precision the loss computes in (float32, float64 stays): not the bf16 of autocast's outputs
        dtype = torch.float64 if like.dtype == torch.float64 else torch.float32
        if self.embeddings is None:
            self.embeddings = torch.zeros(self.size, dim, dtype=dtype, device=like.device)
        elif self.embeddings.shape[1] != dim:
            raise UserError(
                f"the negative queue holds embeddings of size {self.embeddings.shape[1]}, but the network now "
                f"projects to {dim}; resume without changing the head, or start a new run"
            )
        elif self.embeddings.device != like.device or self.embeddings.dtype != dtype:
            self.embeddings = self.embeddings.to(device=like.device, dtype=dtype)

    def _announce(self, per_step: int) -> None:
        """Say once (on the first process) how long the queue takes to fill: its first steps have fewer
        negatives than the rest."""
        if self._announced:
            return
        self._announced = True
        if rank() == 0:
            steps = math.ceil((self.size - self.filled) / max(per_step, 1))
            held = "empty" if self.filled == 0 else f"holding {self.filled}"
            when = "full" if steps == 0 else f"{held} at the start, full after {steps} step{'s' if steps > 1 else ''}"
            log.info("negative queue of %d embeddings (%d a step): %s", self.size, per_step, when)
