"""Optimisation: LARS (You et al. 2017, arXiv:1708.03888) in :mod:`simclr.optim.lars`, optimisers and their
parameter groups in :mod:`simclr.optim.build`, and SimCLR's schedules in :mod:`simclr.optim.schedules`."""
