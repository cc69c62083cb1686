"""The SimCLR network: backbone f(.) followed by projection head g(.).

The network is built from plain parts (:mod:`simclr.models.backbones`, :mod:`simclr.models.heads`); the
network a pretraining config describes is built by :func:`simclr.model_from_config.build_model`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


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
