"""The view maker of a run: what pretraining, test-time augmentation and the plots draw views with."""

from __future__ import annotations

from typing import ClassVar, Protocol

import torch
from torch import Tensor

from simclr.errors import UserError
from simclr.views.config import ViewConfig
from simclr.views.pipeline import SimCLRViews, StreamedViews
from simclr.views.spirograph import SpirographViews


class ViewMaker(Protocol):
    """Makes ``n_views`` random views of a batch on its device, from one entry of the batch (followed, with
    multi-crop, by :class:`~simclr.views.pipeline.SimCLRViews`'s ``local_views`` smaller ones).

    Implemented by :class:`~simclr.views.pipeline.SimCLRViews` (the SimCLR augmentations of stored images)
    and :class:`~simclr.views.spirograph.SpirographViews` (re-renders with new nuisance parameters).
    """

    input_key: ClassVar[str]
    """The batch entry the views are made from (``images`` or ``factors``)."""
    invariance_parameter_names: ClassVar[tuple[str, ...]]
    """The view parameters the gradient penalty differentiates through, in column order."""
    n_views: int

    @property
    def mean(self) -> Tensor | float:
        """The normalisation ``(x - mean) / std`` the views come out with."""
        ...

    @property
    def std(self) -> Tensor | float: ...

    def __call__(self, source: Tensor, generator: torch.Generator, partners: Tensor | None = None) -> list[Tensor]:
        """``n_views`` views of ``source``; with ``partners`` (``--positives class``), the views after the first
        are of the partners."""
        ...

    def views_with_grad(self, source: Tensor, generator: torch.Generator) -> tuple[list[Tensor], Tensor]:
        """The views of ``__call__`` plus the first view's parameters as a leaf that requires grad."""
        ...

    def redraw_invariance_params(
        self, batch: int, draws: int, generator: torch.Generator, device: torch.device
    ) -> Tensor:
        """``(draws, batch, P)`` fresh values of the :attr:`invariance_parameter_names`."""
        ...


def invariance_parameter_names(rerender: bool) -> tuple[str, ...]:
    """The gradient penalty's columns: the 6 nuisances of a dataset whose views are re-renders (Spirograph),
    else colour jitter's 4."""
    return SpirographViews.invariance_parameter_names if rerender else SimCLRViews.invariance_parameter_names


def build_views(
    image_size: int,
    view_config: ViewConfig,
    n_views: int,
    *,
    rerender: bool = False,
    streamed: bool = False,
    local_config: ViewConfig | None = None,
    local_views: int = 0,
) -> ViewMaker:
    """A dataset whose views are re-renders (``rerender``: Spirograph) re-renders its factors with new nuisance
    parameters at ``image_size`` (Foster et al. 2020); every other dataset gets the SimCLR augmentations of
    ``view_config``, cropped here or, for ``streamed`` data, by the loader workers (the rest is done here
    either way). ``local_views`` small views of ``local_config`` (multi-crop) follow the ``n_views`` global ones;
    they are cropped here from the stored images, which re-rendered and streamed data do not keep."""
    if local_views and (rerender or streamed):
        what = "re-renders its views (Spirograph)" if rerender else "is streamed (views cut by the loader workers)"
        raise UserError(f"--local-crops crops the images held in memory, and this dataset {what}; drop --local-crops")
    if rerender:
        return SpirographViews(n_views=n_views, size=image_size)
    if streamed:
        return StreamedViews(view_config, n_views=n_views)
    return SimCLRViews(view_config, n_views=n_views, local_config=local_config, local_views=local_views)
