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
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from simclr.views.config import ViewConfig
from simclr.views.params import sample_crop_boxes

__all__ = ["center_view", "crop_views", "crop_views_on_device", "view_generator_for_sample"]


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


def crop_views_on_device(images: list[Tensor], boxes: Tensor, size: int) -> Tensor:
    """The views of images decoded on the device (``--decode device``): image ``i``'s ``boxes[i]``
    (``(n_views, 4)`` fractions ``top, left, h, w``, drawn in the loader exactly as :func:`crop_views` draws
    them) cut from its ``(3, H, W)`` uint8 tensor at full resolution and resized to ``size`` with
    antialiased bilinear resampling, ``(B, n_views, 3, size, size)`` uint8 on the images' device. The box
    edges are rounded to whole pixels (Pillow samples sub-pixel boxes); the views' distribution is the same.
    """
    device = images[0].device if images else boxes.device  # the boxes stay on the host: read, never computed on
    out = torch.empty((len(images), boxes.shape[1], 3, size, size), dtype=torch.uint8, device=device)
    for i, image in enumerate(images):
        height, width = image.shape[-2:]
        for v, (top, left, h, w) in enumerate(boxes[i].tolist()):
            y0, x0 = min(int(round(top * height)), height - 1), min(int(round(left * width)), width - 1)
            y1, x1 = max(int(round((top + h) * height)), y0 + 1), max(int(round((left + w) * width)), x0 + 1)
            crop = image[None, :, y0:y1, x0:x1].float()
            resized = F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
            out[i, v] = resized[0].round_().clamp_(0, 255).to(torch.uint8)
    return out
