"""The view maker a run's config describes, shared by pretraining and test-time augmentation."""

from __future__ import annotations

from torch import nn

from simclr.config import PretrainConfig
from simclr.data.registry import DatasetInfo
from simclr.data.spirograph import SpirographViews
from simclr.views.config import ViewConfig
from simclr.views.pipeline import SimCLRViews


def view_config_for(config: PretrainConfig, info: DatasetInfo, image_size: int) -> ViewConfig:
    """The SimCLR augmentation of Chen et al. 2020 (Appendix A) with the run's overrides; jitter
    strength and blur default by image size (0.5 and no blur for CIFAR-size images)."""
    view_config = ViewConfig(
        size=image_size,
        crop_scale=(config.crop_min_scale, config.crop_max_scale),
        flip_p=config.flip_p,
        jitter_strength=config.jitter_strength if config.jitter_strength is not None else info.jitter_strength,
        brightness=config.brightness,
        contrast=config.contrast,
        saturation=config.saturation,
        hue=config.hue,
        jitter_p=config.jitter_p,
        grayscale_p=config.grayscale_p,
        blur_p=config.blur_p if config.blur_p is not None else (0.5 if info.blur else 0.0),
        mean=info.mean,
        std=info.std,
    )
    view_config.validate()
    return view_config


def invariance_parameter_names(info: DatasetInfo) -> tuple[str, ...]:
    """Names of the view parameters :func:`build_views`'s view maker differentiates through (the
    gradient penalty's columns): Spirograph's 6 nuisances, else colour jitter's 4."""
    return SpirographViews.invariance_parameter_names if info.regression else SimCLRViews.invariance_parameter_names


def build_views(
    config: PretrainConfig, info: DatasetInfo, image_size: int, n_views: int | None = None
) -> tuple[nn.Module, str]:
    """The view maker and the batch key it reads: Spirograph re-renders with new nuisance parameters
    (Foster et al. 2020), every other dataset gets the SimCLR augmentations."""
    views = n_views if n_views is not None else config.n_views
    if info.regression:
        return SpirographViews(n_views=views, size=image_size), "factors"
    return SimCLRViews(view_config_for(config, info, image_size), n_views=views), "images"
