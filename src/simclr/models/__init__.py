"""Backbones, projection heads and the SimCLR network."""

from simclr.models.autoencoder import (
    MLPAutoencoder,
    load_autoencoder,
    save_autoencoder,
)
from simclr.models.backbones import (
    BACKBONE_NAMES,
    CUSTOM_PREFIX,
    INITIAL_WEIGHTS,
    STEMS,
    TIMM_PREFIX,
    BackboneSpec,
    build_backbone,
    build_timm_backbone,
    choose_stem,
    custom_backbone_name,
    imagenet_cache_file,
    imagenet_weights,
    is_torchvision_backbone,
    load_imagenet_backbone,
    measure_feature_dim,
    resolve_stem,
)
from simclr.models.heads import ACTIVATIONS, HEAD_NAMES, build_activation, build_ae_head, build_head
from simclr.models.simclr_model import SimCLRModel, build_model, build_projection_head

__all__ = [
    "ACTIVATIONS",
    "BACKBONE_NAMES",
    "CUSTOM_PREFIX",
    "HEAD_NAMES",
    "INITIAL_WEIGHTS",
    "STEMS",
    "TIMM_PREFIX",
    "BackboneSpec",
    "MLPAutoencoder",
    "SimCLRModel",
    "build_activation",
    "build_ae_head",
    "build_backbone",
    "build_timm_backbone",
    "build_head",
    "build_model",
    "build_projection_head",
    "choose_stem",
    "custom_backbone_name",
    "imagenet_cache_file",
    "imagenet_weights",
    "is_torchvision_backbone",
    "load_imagenet_backbone",
    "load_autoencoder",
    "measure_feature_dim",
    "resolve_stem",
    "save_autoencoder",
]
