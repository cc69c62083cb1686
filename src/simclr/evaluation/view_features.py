"""Frozen features of freshly augmented views, for test-time augmentation, Spirograph's regression
protocol and the invariance measures: one random view per image per pass, with its parameters.

Images get the run's SimCLR augmentation (or any :class:`~simclr.views.ViewConfig`) and report the
view's 4 colour-jitter parameters; Spirograph images are re-rendered with new nuisance parameters
(Foster et al. 2020) and report those 6.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from simclr.data.store import ImageStore
from simclr.evaluation.features import encode_batches
from simclr.views.config import ViewConfig
from simclr.views.params import ViewParams, sample_view_params
from simclr.views.pipeline import SimCLRViews
from simclr.views.spirograph import SpirographViews, sample_nuisance


@dataclass(frozen=True)
class ViewDraw:
    """One view's random parameters for every image of a store: ``params`` ``(N, k)`` are the ones the
    invariance measures talk about (nuisance or colour jitter); ``full`` the whole image-view draw."""

    params: Tensor
    full: ViewParams | None


class ViewEncoder:
    """Encodes one fresh view of every image of a store with a frozen backbone (eval mode, no grad).

    ``view_config`` None means Spirograph: views are re-renders of the store's generative factors.
    """

    def __init__(
        self,
        backbone: nn.Module,
        *,
        image_size: int,
        device: torch.device,
        autocast_dtype: torch.dtype | None,
        batch_size: int,
        view_config: ViewConfig | None,
    ) -> None:
        self.backbone = backbone
        self.device = device
        self.autocast_dtype = autocast_dtype
        self.batch_size = batch_size
        self.renderer = SpirographViews(n_views=1, size=image_size) if view_config is None else None
        self.views = SimCLRViews(view_config, n_views=2) if view_config is not None else None

    @property
    def parameter_names(self) -> tuple[str, ...]:
        views = self.renderer if self.renderer is not None else self.views
        assert views is not None
        return views.invariance_parameter_names

    def draw(self, store: ImageStore, generator: torch.Generator) -> ViewDraw:
        """Random view parameters for every image of ``store`` (one view each)."""
        if self.renderer is not None:
            if store.factors is None:
                raise ValueError("Spirograph views need a store with generative factors")
            nuisance = sample_nuisance(len(store), generator)
            return ViewDraw(params=nuisance, full=None)
        assert self.views is not None
        drawn = sample_view_params(
            len(store), (store.images.shape[-2], store.images.shape[-1]), self.views.config, generator
        )
        return ViewDraw(params=drawn.jitter, full=drawn)

    def render(self, store: ImageStore, draw: ViewDraw, start: int, stop: int, params: Tensor | None = None) -> Tensor:
        """Views of images ``start:stop`` on the encoder's device, with ``draw.params`` as their nuisance /
        jitter parameters, or ``params`` ``(stop - start, k)`` instead (it may require grad: the views are
        differentiable in it). For images everything else (crop, flip, grayscale, blur) comes from ``draw.full``."""
        chosen = draw.params[start:stop] if params is None else params
        if self.renderer is not None:
            assert store.factors is not None
            return self.renderer.render_with(store.factors[start:stop].to(chosen.device), chosen).to(self.device)
        assert self.views is not None and draw.full is not None
        full = replace(draw.full.narrow(start, stop - start), jitter=chosen)
        return self.views.apply(store.images[start:stop].to(self.device), full)

    def redraw(self, batch: int, draws: int, generator: torch.Generator) -> Tensor:
        """``(draws, batch, k)`` fresh parameters of the same distribution (the penalty's re-draws)."""
        views = self.renderer if self.renderer is not None else self.views
        assert views is not None
        return views.redraw_invariance_params(batch, draws, generator, torch.device("cpu"))

    def encode(
        self, store: ImageStore, generator: torch.Generator, on_batch: Callable[[int], None] | None = None
    ) -> tuple[Tensor, Tensor]:
        """Features ``(N, D)`` of one new view per image and that view's parameters ``(N, k)``; ``on_batch``
        as in :func:`~simclr.evaluation.features.encode_inputs`."""
        draw = self.draw(store, generator)
        return self.encode_draw(store, draw, on_batch), draw.params.float().cpu()

    def encode_draw(self, store: ImageStore, draw: ViewDraw, on_batch: Callable[[int], None] | None = None) -> Tensor:
        """Features ``(N, D)`` of the views that ``draw`` describes."""
        return encode_batches(
            self.backbone,
            len(store),
            lambda start, stop: self.render(store, draw, start, stop),
            batch_size=self.batch_size,
            device=self.device,
            autocast_dtype=self.autocast_dtype,
            on_batch=on_batch,
        )

    def averaged(
        self,
        store: ImageStore,
        generator: torch.Generator,
        passes: int,
        on_batch: Callable[[int], None] | None = None,
    ) -> Tensor:
        """The mean of ``passes`` views' features per image (Foster et al. 2020's feature averaging);
        ``on_batch`` counts the views of every pass."""
        total = self.encode(store, generator, on_batch)[0]
        for _ in range(passes - 1):
            total += self.encode(store, generator, on_batch)[0]
        return total / passes
