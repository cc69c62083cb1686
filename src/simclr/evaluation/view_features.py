"""Frozen features of freshly augmented views, for test-time augmentation, Spirograph's regression
protocol and the invariance measures: one random view per image per pass, with its parameters.

Images get the run's SimCLR augmentation (or any :class:`~simclr.views.ViewConfig`) and report the
view's 4 colour-jitter parameters; Spirograph images are re-rendered with new nuisance parameters
(Foster et al. 2020) and report those 6.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from simclr.data.spirograph import NUISANCE_NAMES, SpirographViews, sample_nuisance
from simclr.data.store import ImageStore
from simclr.evaluation.features import encode_batches
from simclr.views import SimCLRViews, ViewConfig, sample_view_params

JITTER_NAMES = ("brightness", "contrast", "saturation", "hue")


class ViewEncoder:
    """Encodes one fresh view of every image of a store with a frozen backbone (eval mode, no grad).

    ``view_config`` None means Spirograph: views are re-renders of the store's generative factors.
    """

    def __init__(self, backbone: nn.Module, *, image_size: int, device: torch.device, autocast_dtype: torch.dtype | None,
                 batch_size: int, view_config: ViewConfig | None) -> None:
        self.backbone = backbone
        self.device = device
        self.autocast_dtype = autocast_dtype
        self.batch_size = batch_size
        self.renderer = SpirographViews(n_views=1, size=image_size) if view_config is None else None
        self.views = SimCLRViews(view_config, n_views=2) if view_config is not None else None

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return NUISANCE_NAMES if self.renderer is not None else JITTER_NAMES

    def encode(self, store: ImageStore, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Features ``(N, D)`` of one new view per image and that view's parameters ``(N, k)``."""
        count = len(store)
        if self.renderer is not None:
            if store.factors is None:
                raise ValueError("Spirograph views need a store with generative factors")
            renderer, factors = self.renderer, store.factors
            params = sample_nuisance(count, generator)

            def make(start: int, stop: int) -> Tensor:
                return renderer.render_with(factors[start:stop], params[start:stop])
        else:
            assert self.views is not None
            views, device = self.views, self.device
            drawn = sample_view_params(count, (store.images.shape[-2], store.images.shape[-1]), views.config, generator)
            params = drawn.jitter

            def make(start: int, stop: int) -> Tensor:
                return views.apply(store.images[start:stop].to(device), drawn.narrow(start, stop - start))
        features = encode_batches(self.backbone, count, make, batch_size=self.batch_size, device=self.device,
                                  autocast_dtype=self.autocast_dtype)
        return features, params.float().cpu()

    def averaged(self, store: ImageStore, generator: torch.Generator, passes: int) -> Tensor:
        """The mean of ``passes`` views' features per image (seed 003's feature averaging)."""
        total = self.encode(store, generator)[0]
        for _ in range(passes - 1):
            total += self.encode(store, generator)[0]
        return total / passes
