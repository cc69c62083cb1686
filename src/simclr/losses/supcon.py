"""Supervised contrastive loss (SupCon, Khosla et al. 2020, arXiv:2004.11362), the ``--loss supcon`` of
pretraining: every view of every image of the anchor's class is a positive, not only the anchor's own views.

The form is the paper's L_out (Eq. 2), the one it recommends: for each anchor the log-probability of every
positive is taken against all other candidates, and the anchor's loss is the mean over its positives. An
image without a label (-1: a partly labelled folder, ``--subset FILE:unlabelled``) has only its own views as
positives, so a batch of unlabelled images gives exactly NT-Xent (:mod:`simclr.losses.ntxent`, which uses the
same L_out form for more than two views). With several processes the labels are gathered with the
embeddings, so the positives and negatives are those of the global batch.
"""

from __future__ import annotations

import torch
from torch import Tensor

from simclr.errors import UserError
from simclr.losses.distributed import gather_with_grad
from simclr.losses.ntxent import NTXentLoss, ntxent_logits

__all__ = ["SupConLoss"]


class SupConLoss(NTXentLoss):
    """SupCon's L_out over V >= 2 views, with positives and negatives gathered across processes.

    Definition, for V views of B images on each of W processes (all embeddings L2-normalised), with the
    candidates and ``s_ak`` of :class:`~simclr.losses.ntxent.NTXentLoss`:

    * positives ``P(a)``: every candidate ``k != a`` that is a view of the anchor's image, or of an image
      with the anchor's label when that label is >= 0;
    * ``loss_a = mean_{p in P(a)} -(s_ap - logsumexp_{k != a} s_ak)``;
    * the loss is the mean of ``loss_a`` over the V*B local anchors (with DDP's gradient averaging, the
      gradient of the mean over all W*B images, as for NT-Xent).

    The contrastive accuracy it reports ranks an anchor's own other views against the images of other
    classes (the other images of its class are no rivals).

    Example:
        >>> import torch
        >>> z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> loss = SupConLoss(temperature=0.5)
        >>> same_class, unlabelled = torch.tensor([0, 0]), torch.tensor([-1, -1])
        >>> bool(loss(z, z, labels=same_class) > loss(z, z, labels=unlabelled))  # the orthogonal one is a positive
        True
    """

    def __init__(self, temperature: float = 0.5, gather_distributed: bool = True) -> None:
        super().__init__(temperature, gather_distributed)

    def _loss(
        self, views: list[Tensor], labels: Tensor | None, queued: tuple[Tensor, Tensor] | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The loss, the logits the accuracy ranks (other same-class columns -inf) and the anchors' own views'
        columns (V*B, V-1)."""
        if queued is not None:
            raise UserError("SupCon takes no negative queue (its images have no labels); drop --queue-size")
        n_views, batch = len(views), views[0].shape[0]
        local, candidates, offset = self.local_and_candidates(views)
        logits, own_views = ntxent_logits(local, candidates, offset, n_views, self.temperature)
        positives = positive_mask(checked_labels(labels, batch, local.device), candidates.shape[0], offset, n_views)
        log_probability = logits - torch.logsumexp(logits, dim=1, keepdim=True)
        # the anchor's own column is -inf and no positive: it is filled with 0 before the sum
        per_anchor = -log_probability.masked_fill(~positives, 0.0).sum(dim=1) / positives.sum(dim=1)
        own_view_mask = torch.zeros_like(positives).scatter_(1, own_views, True)
        ranked = logits.masked_fill(positives & ~own_view_mask, float("-inf"))
        return per_anchor.mean(), ranked, own_views


def checked_labels(labels: Tensor | None, batch: int, device: torch.device) -> Tensor:
    """The batch's labels as int64 on ``device``, after checking there is one per image."""
    if labels is None:
        raise UserError(
            "SupCon needs the images' labels; give batches with a 'labels' entry (simclr's loaders do) or use "
            "--loss ntxent"
        )
    if labels.shape != (batch,):
        raise ValueError(f"SupCon needs one label per image, {batch}, got labels of shape {tuple(labels.shape)}")
    return labels.to(device=device, dtype=torch.int64)


def positive_mask(labels: Tensor, candidate_count: int, offset: int, n_views: int) -> Tensor:
    """``(V*B, C)`` bool: True where candidate k is a positive of local anchor a (a view of the same image, or
    of an image of the same known class), never on the anchor's own column.

    Layout (:func:`~simclr.losses.ntxent.ntxent_logits`): local row ``a = v*B + i`` is image i's view v and
    candidate ``offset + a``; candidate ``c`` is view ``(c mod V*B) // B`` of global image
    ``(c // V*B) * B + c mod B``, the rank-major order of the gathered labels.
    """
    batch = labels.shape[0]
    local_count = n_views * batch
    all_labels = gather_with_grad(labels) if candidate_count > local_count else labels  # integers: no gradient
    rows = torch.arange(local_count, device=labels.device)
    columns = torch.arange(candidate_count, device=labels.device)
    row_image = offset // n_views + rows % batch
    column_image = (columns // local_count) * batch + columns % batch
    row_label, column_label = all_labels[row_image], all_labels[column_image]
    same_image = row_image[:, None] == column_image[None, :]
    same_class = (row_label[:, None] == column_label[None, :]) & (row_label[:, None] >= 0)
    is_self = (offset + rows)[:, None] == columns[None, :]
    return (same_image | same_class) & ~is_self
