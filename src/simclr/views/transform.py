"""The SimCLR views of one image, for an ordinary torchvision ``Dataset`` / ``DataLoader`` pipeline.

simclr makes views as a batch on the training device (:class:`~simclr.views.pipeline.SimCLRViews`); code
written for per-image transforms (lightly's ``SimCLRTransform``, a torchvision ``transform=``) wants a
callable that turns one image into its views. :class:`SimCLRTransform` is that callable, built on the same
batched ops with a batch of one, so both paths draw from the same view distribution.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from simclr.errors import UserError
from simclr.views.config import ViewConfig
from simclr.views.pipeline import SimCLRViews
from simclr.views.rgb import to_rgb_array

__all__ = ["SimCLRTransform"]


def image_to_uint8(image: Image.Image | np.ndarray | Tensor) -> Tensor:
    """One image as a ``(3, H, W)`` tensor: a PIL image of any mode, an ``(H, W, 3)`` uint8 array, or a
    ``(3, H, W)`` / ``(H, W)`` tensor (uint8, or float in [0, 1], kept as it is)."""
    if isinstance(image, Image.Image):
        return torch.from_numpy(to_rgb_array(image).copy()).permute(2, 0, 1)
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3:
            raise UserError(f"an image array must be (H, W, 3), got shape {image.shape}")
        return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    if isinstance(image, Tensor):
        if image.ndim == 2:
            image = image.unsqueeze(0)
        if image.ndim == 3 and image.shape[0] == 1:
            image = image.expand(3, -1, -1)
        if image.ndim != 3 or image.shape[0] != 3:
            raise UserError(f"an image tensor must be (3, H, W) or (H, W), got shape {tuple(image.shape)}")
        return image
    raise UserError(f"cannot make views of a {type(image).__name__}; pass a PIL image, an array or a tensor")


class SimCLRTransform:
    """A per-image transform: one image in, a list of ``n_views`` augmented, normalised ``(3, size, size)``
    float tensors out (SimCLR, Chen et al. 2020, arXiv:2002.05709, Appendix A).

    Randomness comes from torch's global generator, which a ``DataLoader`` seeds differently in every worker,
    so ``torch.manual_seed`` makes the views reproducible as with any torchvision transform.

    >>> import torch
    >>> transform = SimCLRTransform(size=32)
    >>> image = torch.randint(0, 256, (3, 40, 48), dtype=torch.uint8)
    >>> [view.shape for view in transform(image)]
    [torch.Size([3, 32, 32]), torch.Size([3, 32, 32])]
    """

    def __init__(self, size: int | None = None, n_views: int = 2, config: ViewConfig | None = None) -> None:
        if config is None:
            if size is None:
                raise UserError("SimCLRTransform needs the view size (size=32) or a ViewConfig (config=...)")
            config = ViewConfig(size=size)
        self.views = SimCLRViews(config, n_views=n_views)

    @property
    def config(self) -> ViewConfig:
        return self.views.config

    def __call__(self, image: Image.Image | np.ndarray | Tensor) -> list[Tensor]:
        seed = int(torch.randint(0, 2**62, (1,)))
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            views = self.views(image_to_uint8(image).unsqueeze(0), generator)
        # a DataLoader stacks views of several images: plain contiguous tensors, not channels_last batches
        return [view[0].contiguous() for view in views]

    def __repr__(self) -> str:
        return f"SimCLRTransform(n_views={self.views.n_views}, config={self.config})"
