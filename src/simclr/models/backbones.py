"""ResNet backbones with a stem that fits the image size.

SimCLR (Chen et al. 2020, arXiv:2002.05709, Appendix B.9) replaces the ImageNet stem (7x7 conv, stride 2,
max-pool) by a 3x3 stride-1 conv without max-pool for 32px CIFAR images; Foster et al. (2020) add an STL
stem (3x3 stride-1 conv followed by max-pool) for 96px images. Using the ImageNet stem on 32px images throws
away 4x of the resolution before the first block and is the most common reason CIFAR numbers are not
reproduced (lightly issue #1419), so the stem is chosen from the image size unless the user overrides it.

``--weights imagenet`` (seed 000's runs all start so) loads torchvision's ImageNet weights into a backbone
with the ImageNet stem, through torchvision's own loader (``WeightsEnum.get_state_dict``, i.e.
``torch.hub.load_state_dict_from_url``), which reads ``$TORCH_HOME/hub/checkpoints/<file>`` when it is there;
offline, the error names that file and the URL to fetch it from.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlparse

import torch
import torchvision
from torch import nn

from simclr.errors import UserError

if TYPE_CHECKING:
    from torchvision.models import WeightsEnum

Stem = Literal["cifar", "stl", "imagenet"]
STEMS: tuple[str, ...] = ("auto", "cifar", "stl", "imagenet")
INITIAL_WEIGHTS: tuple[str, ...] = ("none", "imagenet")  # what --weights offers

BACKBONE_NAMES: tuple[str, ...] = (
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "resnext101_32x8d",
    "resnext101_64x4d",
    "wide_resnet50_2",
    "wide_resnet101_2",
)


@dataclass(frozen=True)
class BackboneSpec:
    """What downstream code needs to rebuild a backbone: its torchvision name and stem."""

    name: str
    stem: Stem


def choose_stem(image_size: int) -> Stem:
    """The stem for an image side: CIFAR stem up to 64px, STL stem up to 112px, ImageNet stem above."""
    if image_size <= 64:
        return "cifar"
    if image_size <= 112:
        return "stl"
    return "imagenet"


def resolve_stem(stem: str, image_size: int) -> Stem:
    """Turn ``auto`` into a concrete stem and reject unknown names."""
    if stem == "auto":
        return choose_stem(image_size)
    if stem not in STEMS:
        raise UserError(f"unknown stem {stem!r}; use one of {', '.join(STEMS)}")
    return stem  # type: ignore[return-value]


def _replace_stem(model: nn.Module, stem: Stem) -> None:
    if stem == "imagenet":
        return
    old_conv = model.conv1
    assert isinstance(old_conv, nn.Conv2d)
    conv = nn.Conv2d(3, old_conv.out_channels, kernel_size=3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    model.conv1 = conv
    if stem == "cifar":
        model.maxpool = nn.Identity()


def build_backbone(name: str, stem: Stem) -> tuple[nn.Module, int]:
    """A randomly initialised torchvision ResNet without its classifier.

    Returns the module (mapping ``(B, 3, H, W)`` to ``(B, feature_dim)``) and ``feature_dim``.

    >>> import torch
    >>> backbone, dim = build_backbone("resnet18", "cifar")
    >>> backbone(torch.zeros(2, 3, 32, 32)).shape, dim
    (torch.Size([2, 512]), 512)
    """
    if name not in BACKBONE_NAMES:
        raise UserError(f"unknown backbone {name!r}; use one of {', '.join(BACKBONE_NAMES)}")
    model = getattr(torchvision.models, name)(weights=None)
    feature_dim = model.fc.in_features
    model.fc = nn.Identity()
    _replace_stem(model, stem)
    return model, feature_dim


def imagenet_weights(name: str) -> WeightsEnum:
    """torchvision's default ImageNet weights of backbone ``name`` (e.g. ``ResNet18_Weights.IMAGENET1K_V1``)."""
    try:
        return torchvision.models.get_model_weights(name).DEFAULT  # type: ignore[attr-defined,no-any-return]
    except (KeyError, ValueError):
        raise UserError(f"torchvision has no ImageNet weights for {name!r}; use --weights none") from None


def imagenet_cache_file(weights: WeightsEnum) -> str:
    """Where ``torch.hub`` looks for (and downloads) ``weights``: ``<hub dir>/checkpoints/<file name of the URL>``."""
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(urlparse(weights.url).path))


def load_imagenet_backbone(name: str) -> tuple[nn.Module, int, WeightsEnum]:
    """``(module without fc, feature_dim, weights)`` with torchvision's ImageNet weights loaded.

    Uses the cached file when present (no network); otherwise torchvision downloads it. A failed
    download or an unreadable file becomes a one-line :class:`UserError` with the path and the URL.
    """
    weights = imagenet_weights(name)
    try:
        state = weights.get_state_dict(progress=False)
    except (OSError, RuntimeError, EOFError, ValueError) as exc:  # URLError is an OSError
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise UserError(
            f"cannot load the ImageNet weights of {name} ({reason}); without internet, download "
            f"{weights.url} and save it as {imagenet_cache_file(weights)}"
        ) from None
    module, feature_dim = build_backbone(name, "imagenet")
    module.load_state_dict({key: value for key, value in state.items() if not key.startswith("fc.")})
    return module, feature_dim, weights
