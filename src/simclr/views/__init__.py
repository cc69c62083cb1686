"""Batched SimCLR views (Chen et al. 2020, arXiv:2002.05709, Appendix A) on the training device.

:class:`~simclr.views.config.ViewConfig` describes the view distribution,
:func:`~simclr.views.params.sample_view_params` draws explicit per-image parameters, :mod:`simclr.views.ops`
renders them with whole-batch tensor ops, and :class:`~simclr.views.pipeline.SimCLRViews` makes ``n`` views
of a batch in one pass; :class:`~simclr.views.transform.SimCLRTransform` makes the views of one image for a
per-image ``Dataset`` pipeline, and :mod:`simclr.views.spirograph` re-renders Spirograph's pictures.
"""
