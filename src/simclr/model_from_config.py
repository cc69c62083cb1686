"""The network a pretraining config describes: its backbone and projection head, as a run builds them.

The models layer builds networks from plain values and knows neither the config classes nor the run
directory; this module reads a :class:`~simclr.config.PretrainConfig` into those values, and finds the
autoencoder that ``--ae-checkpoint`` names (a file, or the directory of a ``simclr train-ae`` run).
Pretraining and ``simclr embed --layer projection`` build through it, so they agree.
"""

from __future__ import annotations

from torch import nn

from simclr.config import PretrainConfig
from simclr.models.backbones import (
    TIMM_PREFIX,
    build_backbone,
    build_timm_backbone,
    load_imagenet_backbone,
    measure_feature_dim,
)
from simclr.models.heads import build_head
from simclr.models.simclr_model import SimCLRModel
from simclr.resolve import backbone_stem
from simclr.rundir import autoencoder_file

__all__ = ["build_model", "build_projection_head"]


def build_projection_head(config: PretrainConfig, feature_dim: int) -> tuple[nn.Module, int]:
    """The projection head a run's config describes, over ``feature_dim`` backbone features; with its
    output size."""
    # only the ae head reads the autoencoder: a sweep's mlp cells may name one that is not trained yet
    ae_file = None
    if config.head == "ae" and config.ae_checkpoint is not None:
        ae_file = autoencoder_file(config.ae_checkpoint)
    return build_head(
        config.head,
        feature_dim,
        out_dim=config.head_out_dim,
        hidden_dim=config.head_hidden_dim,
        num_layers=config.head_layers,
        batch_norm=config.head_batch_norm,
        ae_checkpoint=ae_file,
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
    elif config.weights == "timm":
        backbone, feature_dim = build_timm_backbone(config.backbone.removeprefix(TIMM_PREFIX), image_size, True)
    else:
        backbone, feature_dim = build_backbone(config.backbone, backbone_stem(config, image_size), image_size)
    head, out_dim = build_projection_head(config, feature_dim)
    return SimCLRModel(backbone, head, feature_dim, out_dim)
