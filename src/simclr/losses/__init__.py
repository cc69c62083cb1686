"""Contrastive losses: NT-Xent (SimCLR, Chen et al. 2020, arXiv:2002.05709) and distributed helpers."""

from simclr.losses.distributed import gather_with_grad, rank, world_size
from simclr.losses.ntxent import NTXentLoss

__all__ = ["NTXentLoss", "gather_with_grad", "rank", "world_size"]
