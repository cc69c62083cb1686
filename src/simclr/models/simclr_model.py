"""The SimCLR network: backbone f(.) followed by projection head g(.), built from a run's config."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from simclr.models.backbones import (
    build_backbone,
    is_torchvision_backbone,
    load_imagenet_backbone,
    measure_feature_dim,
    resolve_stem,
)
from simclr.models.heads import build_head

if TYPE_CHECKING:
    from simclr.config import PretrainConfig


class SimCLRModel(nn.Module):
    """``h = f(x)`` is the representation kept for downstream use, ``z = g(h)`` feeds the loss."""

    def __init__(self, backbone: nn.Module, head: nn.Module, feature_dim: int, projection_dim: int):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.feature_dim = feature_dim
        self.projection_dim = projection_dim

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        features = self.backbone(images)
        return features, self.head(features)

    @torch.no_grad()
    def features(self, images: Tensor) -> Tensor:
        """Backbone features only (what linear probes and kNN use)."""
        return self.backbone(images)


def build_projection_head(config: PretrainConfig, feature_dim: int) -> tuple[nn.Module, int]:
    """The projection head a run's config describes, over ``feature_dim`` backbone features; with its
    output size. Pretraining and ``simclr embed --layer projection`` build it here, so they agree."""
    return build_head(
        config.head,
        feature_dim,
        out_dim=config.head_out_dim,
        hidden_dim=config.head_hidden_dim,
        num_layers=config.head_layers,
        batch_norm=config.head_batch_norm,
        ae_checkpoint=config.ae_checkpoint,
        freeze_input=config.freeze_head_input,
        activation=config.head_activation,
    )


def build_model(config: PretrainConfig, image_size: int, backbone: nn.Module | None = None) -> SimCLRModel:
    """The configured backbone (a torchvision ResNet with the stem for this image size, or a timm model), or
    ``backbone``, a module of the caller's own (used as it is, not copied), followed by the projection head."""
    if backbone is not None:
        feature_dim = measure_feature_dim(backbone, image_size)
    elif config.weights == "imagenet":
        backbone, feature_dim, _ = load_imagenet_backbone(config.backbone)
    else:
        # simclr.resolve.backbone_stem without the ImageNet-weights case handled above (models sit below config)
        stem = resolve_stem(config.stem, image_size) if is_torchvision_backbone(config.backbone) else None
        backbone, feature_dim = build_backbone(config.backbone, stem)
    head, out_dim = build_projection_head(config, feature_dim)
    return SimCLRModel(backbone, head, feature_dim, out_dim)
