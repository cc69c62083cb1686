"""Backbones, projection heads and the SimCLR network."""

from simclr.models.autoencoder import (
    MLPAutoencoder,
    load_autoencoder,
    save_autoencoder,
)
from simclr.models.backbones import (
    BACKBONE_NAMES,
    INITIAL_WEIGHTS,
    STEMS,
    BackboneSpec,
    build_backbone,
    choose_stem,
    imagenet_cache_file,
    imagenet_weights,
    load_imagenet_backbone,
    resolve_stem,
)
from simclr.models.heads import ACTIVATIONS, HEAD_NAMES, build_activation, build_ae_head, build_head
from simclr.models.simclr_model import SimCLRModel, build_model, build_projection_head

__all__ = [
    "ACTIVATIONS",
    "BACKBONE_NAMES",
    "HEAD_NAMES",
    "INITIAL_WEIGHTS",
    "STEMS",
    "BackboneSpec",
    "MLPAutoencoder",
    "SimCLRModel",
    "build_activation",
    "build_ae_head",
    "build_backbone",
    "build_head",
    "build_model",
    "build_projection_head",
    "choose_stem",
    "imagenet_cache_file",
    "imagenet_weights",
    "load_imagenet_backbone",
    "load_autoencoder",
    "resolve_stem",
    "save_autoencoder",
]
