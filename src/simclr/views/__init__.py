"""Batched SimCLR views (Chen et al. 2020, arXiv:2002.05709, Appendix A) on the training device.

:class:`ViewConfig` describes the view distribution, :func:`sample_view_params` draws explicit
per-image parameters (:class:`ViewParams`), :mod:`simclr.views.ops` renders them with whole-batch
tensor ops, and :class:`SimCLRViews` makes ``n`` views of a batch in one pass; :class:`SimCLRTransform`
makes the views of one image for a per-image ``Dataset`` pipeline.
"""

from simclr.views.config import ViewConfig
from simclr.views.params import ViewParams, sample_view_params
from simclr.views.pipeline import SimCLRViews
from simclr.views.transform import SimCLRTransform

__all__ = ["SimCLRTransform", "SimCLRViews", "ViewConfig", "ViewParams", "sample_view_params"]
