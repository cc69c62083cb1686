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

    def parameter_counts(self) -> dict[str, int]:
        """Parameters of the backbone and of the head, all and trainable (a frozen autoencoder embedding in the
        head is not trainable), as the run's log and environment.yaml record them.

        >>> model = SimCLRModel(nn.Linear(4, 3), nn.Linear(3, 2), 3, 2)
        >>> model.head.weight.requires_grad_(False)  # doctest: +ELLIPSIS
        Parameter...
        >>> model.parameter_counts()  # doctest: +NORMALIZE_WHITESPACE
        {'backbone_parameters': 15, 'backbone_trainable_parameters': 15,
         'head_parameters': 8, 'head_trainable_parameters': 2}
        """
        counts: dict[str, int] = {}
        for name, part in (("backbone", self.backbone), ("head", self.head)):
            counts[f"{name}_parameters"] = sum(p.numel() for p in part.parameters())
            counts[f"{name}_trainable_parameters"] = sum(p.numel() for p in part.parameters() if p.requires_grad)
        return counts
