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

    Args:
        temperature: T in the definition; must be > 0. SimCLR uses 0.5 for CIFAR, 0.1 for ImageNet.
        gather_distributed: draw negatives from all processes (SimCLR's global batch) when a process
            group is initialised; with ``False`` every process uses only its local batch.

    Example:
        >>> import torch
        >>> loss_fn = NTXentLoss(temperature=0.5)
        >>> z = torch.ones(4, 3)
        >>> round(loss_fn(z, z).item(), 6)  # all embeddings identical: log(2N - 1)
        1.94591
    """

    def __init__(self, temperature: float = 0.5, gather_distributed: bool = True) -> None:
        super().__init__()
        if not temperature > 0:
            raise UserError(f"NT-Xent temperature must be > 0, got {temperature}; use e.g. 0.1 or 0.5")
        self.temperature = float(temperature)
        self.gather_distributed = gather_distributed

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, gather_distributed={self.gather_distributed}"

    def forward(self, *views: Tensor) -> Tensor:
        """Loss of the embeddings ``views[0], ..., views[V-1]``, each (B, D), row i being image i."""
        loss, _, _ = self._logits_and_loss(views)
        return loss

    def loss_and_accuracy(self, *views: Tensor, ks: tuple[int, ...] = (1, 5)) -> tuple[Tensor, Tensor]:
        """The loss and :func:`contrastive_accuracy` at each k of ``ks`` (a float tensor on the views'
        device, no gradient), from the same logits: the accuracy costs one comparison, not a second pass.

        Example:
            >>> import torch
            >>> z = torch.eye(4)
            >>> loss, accuracy = NTXentLoss(0.5).loss_and_accuracy(z, z, ks=(1,))
            >>> accuracy.tolist()  # each view's positive is its only identical candidate
            [1.0]
        """
        loss, logits, positive_columns = self._logits_and_loss(views)
        accuracy = contrastive_accuracy(logits.detach(), positive_columns, ks)
        return loss, torch.stack([accuracy[k] for k in ks])

    def _logits_and_loss(self, views: tuple[Tensor, ...]) -> tuple[Tensor, Tensor, Tensor]:
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
            return self._loss([v.to(dtype) for v in views])

    def _loss(self, views: list[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """The loss, the self-masked logits (V*B, V*B*W) and each row's positive columns (V*B, V-1)."""
        n_views, batch = len(views), views[0].shape[0]
        local_count = n_views * batch
        # View-major layout: row v*B + i is view v of image i.
        local = F.normalize(torch.cat(views, dim=0), dim=1)
        offset = 0
        candidates = local
        if self.gather_distributed and world_size() > 1:
            # Rank-major layout: rank r's block starts at r*V*B, so local row a is candidate offset + a
            # and the global index of local image i is rank*B + i within every view.
            candidates = gather_with_grad(local)
            offset = rank() * local_count
        logits, positive_columns = ntxent_logits(local, candidates, offset, n_views, self.temperature)
        log_denominator = torch.logsumexp(logits, dim=1)  # max-subtracted internally
        positive_logits = logits.gather(1, positive_columns)  # (V*B, V-1)

        per_anchor = log_denominator - positive_logits.mean(dim=1)
        return per_anchor.mean(), logits, positive_columns


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
