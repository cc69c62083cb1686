"""What a trained classifier is fed: uint8 images on the device made into normalised float inputs, augmented
for training (random resized crop and flip, as SimCLR fine-tunes) or whole for scoring and prediction.

Images stay uint8 in memory and are augmented as a batch on the training device (:mod:`simclr.views`), so the
same pipeline serves fine-tuning, the supervised baseline, the SGD linear probe and ``simclr predict``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from simclr.data.streaming import SplitImages
from simclr.evaluation.features import encode_inputs, normalize_images
from simclr.views.config import ViewConfig
from simclr.views.ops import resized_crop
from simclr.views.params import sample_view_params
from simclr.views.pipeline import SimCLRViews

DEFAULT_CROP_SCALE: tuple[float, float] = (0.08, 1.0)
"""Inception-style random resized crop, as SimCLR fine-tunes (Appendix B.6) and Foster et al.'s SGD probe trains."""


class InputPipeline:
    """uint8 batches on the device -> normalised float inputs of side ``size``, channels_last.

    Training inputs get a random resized crop and a horizontal flip per image (no colour distortion:
    SimCLR fine-tunes with crop + flip only, Appendix B.6); evaluation inputs are the whole image,
    resized to ``size`` when the stored images have another size (e.g. 32px CIFAR upsampled to 224px
    for ImageNet weights, as the CIFAR-10 ResNet-18 study resizes CIFAR-10).
    """

    def __init__(
        self,
        size: int,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
        crop_scale: tuple[float, float] = DEFAULT_CROP_SCALE,
    ) -> None:
        self.size = size
        self.mean, self.std = mean, std
        self.config = ViewConfig(
            size=size, crop_scale=crop_scale, jitter_p=0.0, grayscale_p=0.0, blur_p=0.0, mean=mean, std=std
        )
        # SimCLRViews insists on >= 2 views; only its one-view-per-image ``apply`` is used here.
        self._views = SimCLRViews(self.config, n_views=2)

    def augmented(self, images: Tensor, generator: torch.Generator) -> Tensor:
        params = sample_view_params(
            images.shape[0], (images.shape[-2], images.shape[-1]), self.config, generator, device=images.device
        )
        return self._views.apply(images, params)

    def plain(self, images: Tensor) -> Tensor:
        x = normalize_images(images, self.mean, self.std)
        if x.shape[-2:] != (self.size, self.size):
            whole = torch.tensor([[0.0, 0.0, 1.0, 1.0]], device=x.device).expand(x.shape[0], 4)
            x = resized_crop(x, whole, self.size)
        return x.contiguous(memory_format=torch.channels_last)

    def describe(self) -> dict[str, str]:
        lo, hi = self.config.crop_scale
        return {
            "augmentation": f"random resized crop to {self.size}px (area {lo:g}-{hi:g}, aspect 3/4-4/3) "
            "+ horizontal flip (p 0.5); no colour jitter, grayscale or blur",
            "eval_transform": f"whole image resized to {self.size}px (identity at the stored size), normalised",
            "normalization": f"mean {list(self.mean)}, std {list(self.std)}",
        }


def predict_logits(
    model: nn.Module,
    pipeline: InputPipeline,
    images: Tensor | SplitImages,
    *,
    batch_size: int = 512,
    device: torch.device,
    autocast_dtype: torch.dtype | None = None,
) -> Tensor:
    """Logits (float32, CPU) of un-augmented images (a tensor, or a split held or streamed), in eval mode;
    the mode is restored afterwards."""
    batches = (
        images.batches(batch_size)
        if not isinstance(images, Tensor)
        else (images[start : start + batch_size] for start in range(0, images.shape[0], batch_size))
    )
    inputs = (pipeline.plain(batch.to(device, non_blocking=True)) for batch in batches)
    return encode_inputs(model, inputs, device=device, autocast_dtype=autocast_dtype)
