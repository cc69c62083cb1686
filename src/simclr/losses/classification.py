"""The loss of the classifiers evaluation trains: cross-entropy, or the focal loss of the sthalles/SimCLR
fork's probe."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

__all__ = ["classification_loss"]


def classification_loss(logits: Tensor, targets: Tensor, focal_gamma: float = 0.0) -> Tensor:
    """Mean cross-entropy, or with ``focal_gamma`` > 0 the focal loss ``-(1 - p_t)^gamma log p_t`` (Lin et al. 2017),
    which down-weights the images the classifier already gets right. The sthalles/SimCLR fork's extra factor alpha =
    0.25 only rescales the data term, which the L2 weight chosen on validation absorbs, so it is left out.

    >>> import torch
    >>> logits, targets = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1])
    >>> bool(classification_loss(logits, targets, 2.0) < classification_loss(logits, targets))
    True
    """
    if focal_gamma == 0.0:
        return F.cross_entropy(logits, targets)
    log_p = F.log_softmax(logits, dim=1).gather(1, targets.reshape(-1, 1)).squeeze(1)
    return -((1.0 - log_p.exp()).pow(focal_gamma) * log_p).mean()
