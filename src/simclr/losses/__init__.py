"""Contrastive losses: NT-Xent (SimCLR, Chen et al. 2020, arXiv:2002.05709), distributed helpers and the
gradient-penalty invariance term (Foster et al. 2020)."""

from simclr.losses.distributed import gather_with_grad, rank, world_size
from simclr.losses.invariance import gradient_penalty
from simclr.losses.ntxent import NTXentLoss, contrastive_accuracy

__all__ = ["NTXentLoss", "contrastive_accuracy", "gather_with_grad", "gradient_penalty", "rank", "world_size"]
