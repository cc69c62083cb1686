"""simclr: SimCLR contrastive pretraining and evaluation (Chen et al., 2020, arXiv:2002.05709)."""

__version__ = "0.1.0"
