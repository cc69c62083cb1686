"""Contrastive losses: NT-Xent (SimCLR, Chen et al. 2020, arXiv:2002.05709) in :mod:`simclr.losses.ntxent`,
gathering across processes in :mod:`simclr.losses.distributed`, and the gradient-penalty invariance term
(Foster et al. 2020) in :mod:`simclr.losses.invariance`."""
