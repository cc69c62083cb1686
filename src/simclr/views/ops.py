"""Batched image operations with one explicit parameter per image.

Every function maps a (B, 3, H, W) float batch in [0, 1] to a batch of the same kind, with a
separate parameter for every image (SimCLR, Chen et al. 2020, arXiv:2002.05709, Appendix A, draws
the augmentation independently per image). All work is done with whole-batch tensor ops on the
device of the input; there is no Python loop over images. The photometric ops are differentiable
w.r.t. their factors, which the gradient-penalty method of Foster et al. ("Improving Transformation
Invariance in Contrastive Representation Learning") needs for the colour-jitter parameters.

Factors may be given as (B,) tensors or as Python numbers (one value for the whole batch, mostly
useful in tests); they are cast to the image dtype.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import roi_align

__all__ = [
    "LUMA_WEIGHTS",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "color_jitter",
    "gaussian_blur",
    "horizontal_flip",
    "random_grayscale",
    "resized_crop",
    "rgb_to_grayscale",
]

LUMA_WEIGHTS: tuple[float, float, float] = (0.299, 0.587, 0.114)
"""ITU-R BT.601 luma weights (torchvision uses 0.2989 for red, so its gray differs by <= 1e-4)."""

# RGB -> YIQ (NTSC 1953); Y is the BT.601 luma above. The inverse is computed once in float64.
_RGB_TO_YIQ = torch.tensor(
    [
        list(LUMA_WEIGHTS),
        [0.595716, -0.274453, -0.321263],
        [0.211456, -0.522591, 0.311135],
    ],
    dtype=torch.float64,
)
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)


def _per_image(value: Tensor | float, images: Tensor) -> Tensor:
    """A (B,) tensor or number as a (B or 1, 1, 1, 1) tensor of the image dtype and device."""
    t = torch.as_tensor(value, device=images.device).to(images.dtype)
    return t.reshape(-1, 1, 1, 1)


def _mask(mask: Tensor, images: Tensor) -> Tensor:
    return torch.as_tensor(mask, device=images.device).to(torch.bool).reshape(-1, 1, 1, 1)


def _luma(images: Tensor) -> Tensor:
    """(B, 1, H, W) BT.601 luma of an RGB batch."""
    r, g, b = images[:, 0:1], images[:, 1:2], images[:, 2:3]
    return LUMA_WEIGHTS[0] * r + LUMA_WEIGHTS[1] * g + LUMA_WEIGHTS[2] * b


def _blend(images: Tensor, other: Tensor, factor: Tensor) -> Tensor:
    """``factor * images + (1 - factor) * other`` clamped to [0, 1] (torchvision's formula)."""
    return (factor * images + (1.0 - factor) * other).clamp(0.0, 1.0)


# --------------------------------------------------------------------------- geometry
def resized_crop(images: Tensor, boxes: Tensor, size: int, source_index: Tensor | None = None) -> Tensor:
    """Crop each box out of its source image and resample it to ``size x size`` bilinearly.

    ``boxes`` is (K, 4) (top, left, height, width) as fractions of the source image, the random
    resized crop of SimCLR's Appendix A. Row ``k`` is cut from ``images[source_index[k]]``
    (default: ``images[k]``), so several views of the same batch are made without copying it.

    Implemented with :func:`torchvision.ops.roi_align` (``aligned=True``, adaptive sampling): when
    the box is at most ``size`` pixels each output pixel is one bilinear sample at its centre
    (equal to bilinear ``interpolate`` with ``align_corners=False``; a full box at the source size
    is the exact identity), and when a box is larger than the output each output pixel averages
    ``ceil(box / size)`` samples per axis, an area filter that limits aliasing on downscaling.
    Samples are taken from the source image itself, so near the box edge they may blend in the
    pixels just outside the box; ``torchvision.transforms.functional.resized_crop`` cuts the box
    out first and replicates its edge instead (the two agree away from a thin frame).
    """
    if images.ndim != 4:
        raise ValueError(f"images must be (B, C, H, W), got shape {tuple(images.shape)}")
    height, width = images.shape[-2:]
    k = boxes.shape[0]
    if source_index is None:
        if k != images.shape[0]:
            raise ValueError(f"{k} boxes for {images.shape[0]} images; pass source_index")
        source_index = torch.arange(k, device=images.device)
    b = boxes.to(device=images.device, dtype=images.dtype)
    top, left = b[:, 0] * height, b[:, 1] * width
    rois = torch.stack(
        [
            source_index.to(device=images.device, dtype=images.dtype),
            left,
            top,
            left + b[:, 3] * width,
            top + b[:, 2] * height,
        ],
        dim=1,
    )
    return roi_align(images, rois, output_size=(size, size), spatial_scale=1.0, sampling_ratio=-1, aligned=True)


def horizontal_flip(images: Tensor, mask: Tensor) -> Tensor:
    """Mirror left-right the images where ``mask`` (B,) is true; the others are returned as is."""
    return torch.where(_mask(mask, images), images.flip(-1), images)


def vertical_flip(images: Tensor, mask: Tensor) -> Tensor:
    """Mirror top-bottom the images where ``mask`` (B,) is true; the others are returned as is."""
    return torch.where(_mask(mask, images), images.flip(-2), images)


def rotate(images: Tensor, degrees: Tensor) -> Tensor:
    """Rotate every image counter-clockwise about its centre by its angle ``degrees`` (B,), keeping its size.

    Multiples of 90 degrees on square images are exact pixel permutations (``rot90``); other angles are
    resampled bilinearly in one batched ``grid_sample``, and what falls outside the source is black.
    Images with angle 0 are returned as they are.
    """
    quarter = torch.remainder(degrees, 90.0) == 0
    out = images
    if images.shape[-1] == images.shape[-2]:
        turns = torch.remainder(torch.round(degrees / 90.0), 4).to(torch.int64)
        for k in (1, 2, 3):
            out = torch.where(_mask(quarter & (turns == k), images), torch.rot90(images, k, dims=(-2, -1)), out)
    else:
        quarter = torch.zeros_like(quarter)
    free = ~quarter
    radians = torch.deg2rad(degrees.to(images.dtype))
    cos, sin = torch.cos(radians), torch.sin(radians)
    zero = torch.zeros_like(cos)
    # grid_sample reads the source at theta @ (x, y, 1) of each output pixel: rotating the image by +a turns the
    # sampling grid by -a (y grows downwards, so counter-clockwise on screen is the negative angle here)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    turned = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return torch.where(_mask(free, images), turned, out)


# --------------------------------------------------------------------------- photometric
def adjust_brightness(images: Tensor, factor: Tensor | float) -> Tensor:
    """Multiply every image by its factor (0 gives black, 1 the identity), clamped to [0, 1]."""
    return (images * _per_image(factor, images)).clamp(0.0, 1.0)


def adjust_contrast(images: Tensor, factor: Tensor | float) -> Tensor:
    """Blend every image with the mean of its grayscale (0 gives flat gray, 1 the identity)."""
    weights = torch.tensor(LUMA_WEIGHTS, dtype=images.dtype, device=images.device)
    mean = (images.mean(dim=(-2, -1)) @ weights).reshape(-1, 1, 1, 1)
    return _blend(images, mean, _per_image(factor, images))


def adjust_saturation(images: Tensor, factor: Tensor | float) -> Tensor:
    """Blend every image with its own grayscale (0 gives grayscale, 1 the identity)."""
    return _blend(images, _luma(images), _per_image(factor, images))


def _apply_color_matrix(images: Tensor, matrix: Tensor) -> Tensor:
    """``out[b, i] = sum_j matrix[b, i, j] * images[b, j]`` for a (B, 3, 3) matrix."""
    bsz, c, h, w = images.shape
    if images.is_contiguous(memory_format=torch.channels_last) and not images.is_contiguous():
        pixels = images.permute(0, 2, 3, 1).reshape(bsz, h * w, c)  # a view, no copy
        out = torch.bmm(pixels, matrix.transpose(1, 2))
        return out.reshape(bsz, h, w, c).permute(0, 3, 1, 2)
    out = torch.bmm(matrix, images.reshape(bsz, c, h * w))
    return out.reshape(bsz, c, h, w)


def adjust_hue(images: Tensor, shift: Tensor | float) -> Tensor:
    """Rotate the chroma of every image by ``shift`` turns in YIQ space, clamped to [0, 1].

    The colour is split into luma Y and chroma (I, Q); the chroma is rotated by ``2 pi shift`` and
    converted back, so the luma is unchanged (before clamping), ``shift = 0`` is exactly the
    identity, ``shift`` and ``shift + 1`` are the same, and the map is a smooth (linear) function
    of the pixels and of ``shift``: differentiable everywhere, unlike the HSV hue of
    ``torchvision.transforms.functional.adjust_hue`` used by SimCLR, which has kinks at gray
    pixels and hue wrap-around. The sign is chosen to move hue the same way as torchvision
    (positive: red towards yellow) and the displacement has a similar size, but the results are
    not equal: HSV hue is a different, piecewise-linear hue circle, and an HSV shift changes the
    luma, which the YIQ rotation keeps fixed.
    """
    theta = 2.0 * math.pi * torch.as_tensor(shift, device=images.device).to(images.dtype)
    theta = theta.reshape(-1).expand(images.shape[0])
    cos_m1 = torch.cos(theta) - 1.0  # exactly 0 at shift 0, so the identity is exact
    sin = torch.sin(theta)
    zero = torch.zeros_like(theta)
    # Clockwise rotation of (I, Q), written as (rotation - identity) so that the update vanishes
    # exactly at shift 0.
    delta = torch.stack(
        [
            torch.stack([zero, zero, zero], dim=-1),
            torch.stack([zero, cos_m1, sin], dim=-1),
            torch.stack([zero, -sin, cos_m1], dim=-1),
        ],
        dim=-2,
    )  # (B, 3, 3) in YIQ coordinates
    to_yiq = _RGB_TO_YIQ.to(device=images.device, dtype=images.dtype)
    to_rgb = _YIQ_TO_RGB.to(device=images.device, dtype=images.dtype)
    matrix = to_rgb @ delta @ to_yiq  # (B, 3, 3) change in RGB
    return (images + _apply_color_matrix(images, matrix)).clamp(0.0, 1.0)


def rgb_to_grayscale(images: Tensor) -> Tensor:
    """BT.601 luma (0.299 R + 0.587 G + 0.114 B) repeated in 3 channels, as SimCLR's grayscale."""
    return _luma(images).expand(-1, 3, -1, -1).contiguous()


def random_grayscale(images: Tensor, mask: Tensor) -> Tensor:
    """Grayscale (3 equal channels) where ``mask`` (B,) is true, the input elsewhere."""
    return torch.where(_mask(mask, images), _luma(images), images)


def color_jitter(images: Tensor, jitter: Tensor, mask: Tensor | None = None) -> Tensor:
    """SimCLR colour jitter with explicit per-image factors, applied where ``mask`` is true.

    ``jitter`` is (B, 4): brightness, contrast and saturation factors and the hue shift in turns.
    The four ops run in this fixed order, each clamping to [0, 1] (torchvision's ColorJitter, as
    used by SimCLR, shuffles the order per call; a fixed order keeps the view a plain function
    of its parameters). Images outside ``mask`` are passed through with ``torch.where``, so
    gradients w.r.t. ``jitter`` flow for the jittered images and are zero for the others.
    """
    if jitter.ndim != 2 or jitter.shape[1] != 4:
        raise ValueError(f"jitter must be (B, 4), got shape {tuple(jitter.shape)}")
    out = adjust_brightness(images, jitter[:, 0])
    out = adjust_contrast(out, jitter[:, 1])
    out = adjust_saturation(out, jitter[:, 2])
    out = adjust_hue(out, jitter[:, 3])
    if mask is None:
        return out
    return torch.where(_mask(mask, images), out, images)


def gaussian_blur(images: Tensor, sigma: Tensor | float, kernel_size: int) -> Tensor:
    """Blur every image with its own Gaussian ``sigma`` (pixels), reflect padding, clamped.

    SimCLR (Appendix A) blurs ImageNet views with a kernel 10% of the image side and sigma in
    [0.1, 2.0]. The kernel is separable; both passes run as one grouped convolution over the
    whole batch (one group per image channel), so the per-image sigma needs no Python loop.
    """
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be an odd integer >= 1, got {kernel_size}")
    bsz, c, h, w = images.shape
    if kernel_size == 1:
        return images.clone()
    half = kernel_size // 2
    sig = torch.as_tensor(sigma, device=images.device).to(images.dtype).reshape(-1, 1)
    x = torch.arange(kernel_size, device=images.device, dtype=images.dtype) - half
    kernel = torch.exp(-0.5 * (x / sig) ** 2)
    kernel = (kernel / kernel.sum(dim=1, keepdim=True)).expand(bsz, kernel_size)
    weight = kernel.repeat_interleave(c, dim=0)  # (B*C, k): one filter per image channel
    padded = F.pad(images, (half, half, half, half), mode="reflect")
    out = padded.reshape(1, bsz * c, h + 2 * half, w + 2 * half)
    out = F.conv2d(out, weight.reshape(bsz * c, 1, kernel_size, 1), groups=bsz * c)
    out = F.conv2d(out, weight.reshape(bsz * c, 1, 1, kernel_size), groups=bsz * c)
    return out.reshape(bsz, c, h, w).clamp(0.0, 1.0)
