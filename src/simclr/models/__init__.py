"""Backbones, projection heads and the SimCLR network."""

from simclr.models.backbones import (
    BACKBONE_NAMES,
    STEMS,
    BackboneSpec,
    build_backbone,
    choose_stem,
    resolve_stem,
)
from simclr.models.heads import HEAD_NAMES, build_head
from simclr.models.simclr_model import SimCLRModel

__all__ = [
    "BACKBONE_NAMES",
    "HEAD_NAMES",
    "STEMS",
    "BackboneSpec",
    "SimCLRModel",
    "build_backbone",
    "build_head",
    "choose_stem",
    "resolve_stem",
]
