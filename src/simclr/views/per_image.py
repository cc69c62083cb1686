"""Views cut per image, for data streamed from disk: the CPU half of the SimCLR augmentation.

Images too large or too many to hold in memory are decoded one at a time in the loader's worker
processes. Each view's random resized crop is cut there from the decoded image at its stored
resolution and resized to the training size in one antialiased resampling (Pillow's ``resize`` with a
sub-pixel ``box``: several times faster per view than the device operator run on the CPU), so nothing is
lost to a pre-cropped copy; the rest of the augmentation (flip, colour jitter, grayscale, blur,
normalisation) stays batched on the device (:class:`~simclr.views.pipeline.StreamedViews`). The crop
boxes come from the same distribution as the in-memory path's (:func:`~simclr.views.params.sample_crop_boxes`).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from simclr.views.config import ViewConfig
from simclr.views.params import sample_crop_boxes

__all__ = ["center_view", "crop_views", "view_generator_for_sample"]


def view_generator_for_sample(seed: int, epoch: int, sample: int) -> torch.Generator:
    """The random source of one sample's crops in one epoch: a function of (seed, epoch, sample) only, so
    a resumed or re-sharded run cuts the same crops, whichever process or worker reads the sample."""
    generator = torch.Generator()
    generator.manual_seed((seed * 1_000_003 + epoch * 7_919_993 + sample * 10_007 + 29) % (2**63 - 1))
    return generator


def _resized(image: Image.Image, box: tuple[float, float, float, float], size: int) -> np.ndarray:
    """The ``(left, top, right, bottom)`` box of ``image`` resampled to ``size x size``, ``(S, S, 3)`` uint8."""
    return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR, box=box), dtype=np.uint8)


def crop_views(image: Image.Image, n_views: int, config: ViewConfig, generator: torch.Generator) -> Tensor:
    """``n_views`` random resized crops of one RGB image: ``(n_views, 3, size, size)`` uint8."""
    width, height = image.size
    boxes = sample_crop_boxes(n_views, (height, width), config, generator).tolist()
    views = np.empty((n_views, config.size, config.size, 3), dtype=np.uint8)
    for i, (top, left, h, w) in enumerate(boxes):
        views[i] = _resized(image, (left * width, top * height, (left + w) * width, (top + h) * height), config.size)
    return torch.from_numpy(views).permute(0, 3, 1, 2)  # channels-last memory: the batch is stacked anyway


def center_view(image: Image.Image, size: int) -> Tensor:
    """The evaluation view of one RGB image: the centre square, resized to ``size`` (what the in-memory
    stores hold: shorter side to ``size``, then the centre crop), ``(3, size, size)`` uint8."""
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) / 2, (height - side) / 2
    return torch.from_numpy(_resized(image, (left, top, left + side, top + side), size).copy()).permute(2, 0, 1)
