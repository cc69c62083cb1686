"""NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR, for two or more views.

SimCLR (Chen et al. 2020, arXiv:2002.05709, Eq. 1) pulls the two views of an image together and
pushes every other embedding in the batch away. With more than two views we use the "L_out" form of
SupCon (Khosla et al. 2020, arXiv:2004.11362, Eq. 2): the log-probability of each positive is
computed against all candidates and the per-anchor loss is the *mean* over its positives. For two
views both definitions coincide with Eq. 1 averaged over the 2N anchors (lightly's ``NTXentLoss``
value; the official TensorFlow code reports twice this number).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from simclr.errors import UserError
from simclr.losses.distributed import gather_with_grad, rank, world_size
from simclr.losses.queue import NegativeQueue

__all__ = ["NTXentLoss", "contrastive_accuracy", "ntxent_logits"]


class NTXentLoss(nn.Module):
    """NT-Xent over V >= 2 views, with negatives gathered across processes.

    Definition, for V views of B images on each of W processes (all embeddings L2-normalised):

    * candidates: all V*B*W embeddings (only the local V*B when ``gather_distributed`` is off or W=1);
    * for a local anchor ``a`` (view v of image i), ``s_ak = z_a . z_k / T`` for every candidate
      ``k != a`` (the anchor itself is excluded from the denominator);
    * positives ``P(a)``: the other V-1 views of the same image (global image index ``rank*B + i``);
    * ``loss_a = mean_{p in P(a)} -(s_ap - logsumexp_{k != a} s_ak)`` (SupCon L_out);
    * the loss is the mean of ``loss_a`` over the V*B local anchors.

    Why these choices:

    * normalisation and the softmax always run in float32 (float64 inputs stay float64), even
      under autocast: with T = 0.1 the logits span [-10, 10] and bf16 would round the loss;
    * the log-sum-exp subtracts the row maximum, so T = 0.01 (logits up to 100) cannot overflow;
    * the mean over local anchors combined with :func:`~simclr.losses.distributed.gather_with_grad`
      and DDP's gradient averaging gives exactly the gradient of the mean over all W*B images, so a
      W-process run takes the same step as one process with batch W*B (same learning rate).

    With a queue (``queue_size`` K > 0, :class:`~simclr.losses.queue.NegativeQueue`) the candidates also hold
    the K embeddings remembered from earlier steps (negatives of every anchor, without gradient), and each step
    then pushes the first view of every image of the global batch.

    Args:
        temperature: T in the definition; must be > 0. SimCLR uses 0.5 for CIFAR, 0.1 for ImageNet.
        gather_distributed: draw negatives from all processes (SimCLR's global batch) when a process
            group is initialised; with ``False`` every process uses only its local batch.
        queue_size: embeddings of earlier steps kept as extra negatives (0: none, SimCLR).

    Example:
        >>> import torch
        >>> loss_fn = NTXentLoss(temperature=0.5)
        >>> z = torch.ones(4, 3)
        >>> round(loss_fn(z, z).item(), 6)  # all embeddings identical: log(2N - 1)
        1.94591
    """

    def __init__(self, temperature: float = 0.5, gather_distributed: bool = True, queue_size: int = 0) -> None:
        super().__init__()
        if not temperature > 0:
            raise UserError(f"NT-Xent temperature must be > 0, got {temperature}; use e.g. 0.1 or 0.5")
        self.temperature = float(temperature)
        self.gather_distributed = gather_distributed
        self.queue = NegativeQueue(queue_size) if queue_size > 0 else None

    def extra_repr(self) -> str:
        queue = f", queue_size={self.queue.size}" if self.queue is not None else ""
        return f"temperature={self.temperature}, gather_distributed={self.gather_distributed}{queue}"

    def forward(self, *views: Tensor, labels: Tensor | None = None) -> Tensor:
        """Loss of the embeddings ``views[0], ..., views[V-1]``, each (B, D), row i being image i.

        ``labels`` (B,) are the images' classes: NT-Xent's positives are the views of one image, so it does not
        read them (:class:`~simclr.losses.supcon.SupConLoss` does); every training loss takes the same call.
        """
        loss, _ = self.loss_and_accuracy(*views, labels=labels, ks=())
        return loss

    def loss_and_accuracy(
        self, *views: Tensor, labels: Tensor | None = None, ks: tuple[int, ...] = (1, 5)
    ) -> tuple[Tensor, Tensor]:
        """The loss and :func:`contrastive_accuracy` at each k of ``ks`` (a float tensor on the views'
        device, no gradient), from the same logits: the accuracy costs one comparison, not a second pass.
        With a queue, the global batch's first views join it afterwards.

        Example:
            >>> import torch
            >>> z = torch.eye(4)
            >>> loss, accuracy = NTXentLoss(0.5).loss_and_accuracy(z, z, ks=(1,))
            >>> accuracy.tolist()  # each view's positive is its only identical candidate
            [1.0]
        """
        queued = self.queue.negatives(views[0]) if self.queue is not None and views else None
        loss, accuracy, first_views = self.score(views, labels, ks, queued)
        if self.queue is not None:
            self.queue.push_gathered(first_views)
        return loss, accuracy

    def score(
        self,
        views: tuple[Tensor, ...],
        labels: Tensor | None,
        ks: tuple[int, ...],
        queued: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The loss, the accuracy at each k of ``ks`` and the L2-normalised first views (B, D), detached.

        ``queued``: extra negatives and the mask of the valid ones (:meth:`NegativeQueue.negatives`). This is
        the pure part of :meth:`loss_and_accuracy` (it changes no state), which ``--compile`` compiles.
        """
        loss, logits, positive_columns = self._logits_and_loss(views, labels, queued)
        accuracy = contrastive_accuracy(logits.detach(), positive_columns, ks) if ks else {}
        values = torch.stack([accuracy[k] for k in ks]) if ks else loss.new_zeros(0)
        first_views = F.normalize(views[0].detach().to(loss.dtype), dim=1)
        return loss, values, first_views

    def _logits_and_loss(
        self, views: tuple[Tensor, ...], labels: Tensor | None, queued: tuple[Tensor, Tensor] | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        if len(views) < 2:
            raise UserError(f"NT-Xent needs at least 2 views of each image, got {len(views)}; pass 2 or more views")
        shape = views[0].shape
        if len(shape) != 2 or shape[0] < 1:
            raise ValueError(f"NT-Xent views must be (batch, dim) with batch >= 1, got shape {tuple(shape)}")
        for index, view in enumerate(views):
            if view.shape != shape:
                raise ValueError(
                    f"NT-Xent views must all have the same shape; view 0 is {tuple(shape)} "
                    f"but view {index} is {tuple(view.shape)}"
                )
        dtype = torch.float64 if any(v.dtype == torch.float64 for v in views) else torch.float32
        with torch.autocast(device_type=views[0].device.type, enabled=False):
            return self._loss([v.to(dtype) for v in views], labels, queued)

    def _loss(
        self, views: list[Tensor], labels: Tensor | None, queued: tuple[Tensor, Tensor] | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The loss, the self-masked logits (V*B, V*B*W [+ K]) and each row's positive columns (V*B, V-1)."""
        n_views = len(views)
        local, candidates, offset = self.local_and_candidates(views)
        logits, positive_columns = ntxent_logits(local, candidates, offset, n_views, self.temperature)
        if queued is not None:
            logits = with_queued_negatives(logits, local, queued, self.temperature)
        log_denominator = torch.logsumexp(logits, dim=1)  # max-subtracted internally
        positive_logits = logits.gather(1, positive_columns)  # (V*B, V-1)

        per_anchor = log_denominator - positive_logits.mean(dim=1)
        return per_anchor.mean(), logits, positive_columns

    def local_and_candidates(self, views: list[Tensor]) -> tuple[Tensor, Tensor, int]:
        """This process's L2-normalised embeddings (V*B, D), view-major (row ``v*B + i`` is view v of image
        i); the candidates (these, or those of every process in rank order, with their gradients); and where
        this process's rows start among the candidates."""
        local = F.normalize(torch.cat(views, dim=0), dim=1)
        if not (self.gather_distributed and world_size() > 1):
            return local, local, 0
        # Rank-major layout: rank r's block starts at r*V*B, so local row a is candidate offset + a
        # and the global index of local image i is rank*B + i within every view.
        return local, gather_with_grad(local), rank() * local.shape[0]


def with_queued_negatives(logits: Tensor, local: Tensor, queued: tuple[Tensor, Tensor], temperature: float) -> Tensor:
    """``logits`` (V*B, C) with the columns of the queued embeddings appended (after every batch column, so the
    batch's columns keep their indices); the queue's empty slots are -inf: no candidate."""
    negatives, valid = queued
    queue_logits = local @ negatives.detach().to(local.dtype).T / temperature
    queue_logits = queue_logits.masked_fill(~valid[None, :], float("-inf"))
    return torch.cat([logits, queue_logits], dim=1)


def ntxent_logits(
    local: Tensor, candidates: Tensor, offset: int, n_views: int, temperature: float
) -> tuple[Tensor, Tensor]:
    """The similarity logits of NT-Xent and where each anchor's positives are.

    ``local`` holds the V*B L2-normalised embeddings of this process, view-major (row ``v*B + i`` is view v
    of image i); ``candidates`` all embeddings (``local`` itself on one process), local row ``a`` being
    candidate ``offset + a``. Returns the ``(V*B, C)`` logits ``z_a . z_k / T`` with each anchor's own
    column set to -inf (it is no candidate), and the ``(V*B, V-1)`` columns of its positives.
    """
    local_count = local.shape[0]
    batch = local_count // n_views
    logits = local @ candidates.T / temperature
    rows = torch.arange(local_count, device=logits.device)
    self_mask = torch.zeros_like(logits, dtype=torch.bool)
    self_mask[rows, offset + rows] = True
    logits = logits.masked_fill(self_mask, float("-inf"))
    # Positives of row v*B + i: rows u*B + i for the V-1 views u = v+1, ..., v+V-1 (mod V).
    view_of_row = rows // batch
    image_of_row = rows % batch
    shifts = torch.arange(1, n_views, device=logits.device)
    positive_views = (view_of_row[:, None] + shifts[None, :]) % n_views
    return logits, offset + positive_views * batch + image_of_row[:, None]


def contrastive_accuracy(logits: Tensor, positives: Tensor, ks: tuple[int, ...] = (1, 5)) -> dict[int, Tensor]:
    """Top-k contrastive accuracy: how often a positive ranks among the k highest logits of its anchor.

    ``logits`` are an anchor's similarities to all candidates (its own column -inf, as
    :func:`ntxent_logits` gives them), ``positives`` the ``(N, P)`` (or ``(N,)``) columns of its positives.
    A positive competes with the anchor's negatives only (with more than two views, the other positives are
    no rivals), and ties count in its favour. Returns ``{k: fraction of (anchor, positive) pairs}`` as
    0-dim tensors on the logits' device, so a caller reads them when it logs, not per step.

    Example:
        >>> import torch
        >>> logits = torch.tensor([[float("-inf"), 0.9, 0.1], [0.2, float("-inf"), 0.8]])
        >>> acc = contrastive_accuracy(logits, torch.tensor([1, 0]), ks=(1, 2))
        >>> [round(float(acc[k]), 2) for k in (1, 2)]
        [0.5, 1.0]
    """
    columns = positives if positives.dim() == 2 else positives[:, None]
    positive_logits = logits.gather(1, columns)  # (N, P)
    is_positive = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, columns, True)
    negatives = logits.masked_fill(is_positive, float("-inf"))
    # rank of each positive = the number of negatives scoring strictly above it
    ranks = (negatives[:, None, :] > positive_logits[:, :, None]).sum(dim=2)
    return {k: (ranks < k).float().mean() for k in ks}
