"""Views cut per image, for data streamed from disk: the CPU half of the SimCLR augmentation.

Images too large or too many to hold in memory are decoded one at a time in the loader's worker
processes. Each view's random resized crop is cut there from the decoded image at its stored
resolution and resized to the training size, so nothing is lost to a pre-cropped copy; the rest of the
augmentation (flip, colour jitter, grayscale, blur, normalisation) stays batched on the device
(:class:`~simclr.views.pipeline.StreamedViews`). The crop boxes come from the same distribution as the
in-memory path's (:func:`~simclr.views.params.sample_crop_boxes`) and are resampled by the same
operator (:func:`~simclr.views.ops.resized_crop`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from simclr.views import ops
from simclr.views.config import ViewConfig
from simclr.views.params import sample_crop_boxes

__all__ = ["center_view", "crop_views", "view_generator_for_sample"]


def view_generator_for_sample(seed: int, epoch: int, sample: int) -> torch.Generator:
    """The random source of one sample's crops in one epoch: a function of (seed, epoch, sample) only, so
    a resumed or re-sharded run cuts the same crops, whichever process or worker reads the sample."""
    generator = torch.Generator()
    generator.manual_seed((seed * 1_000_003 + epoch * 7_919_993 + sample * 10_007 + 29) % (2**63 - 1))
    return generator


def crop_views(image: Tensor, n_views: int, config: ViewConfig, generator: torch.Generator) -> Tensor:
    """``n_views`` random resized crops of one ``(3, H, W)`` uint8 image: ``(n_views, 3, size, size)`` uint8."""
    boxes = sample_crop_boxes(n_views, (int(image.shape[-2]), int(image.shape[-1])), config, generator)
    source = image.unsqueeze(0).to(torch.float32)
    crops = ops.resized_crop(source, boxes.to(torch.float32), config.size, torch.zeros(n_views, dtype=torch.long))
    return crops.round_().clamp_(0, 255).to(torch.uint8)


def center_view(image: Tensor, size: int) -> Tensor:
    """The evaluation view of one ``(3, H, W)`` uint8 image: the shorter side resized to ``size`` and the
    centre square kept (what the in-memory stores hold), ``(3, size, size)`` uint8."""
    height, width = int(image.shape[-2]), int(image.shape[-1])
    side = min(height, width)
    box = torch.tensor([[(height - side) / 2 / height, (width - side) / 2 / width, side / height, side / width]])
    source = image.unsqueeze(0).to(torch.float32)
    view = ops.resized_crop(source, box, size, torch.zeros(1, dtype=torch.long))[0]
    return view.round_().clamp_(0, 255).to(torch.uint8)
