"""What a pretraining config's automatic settings become for the data at hand.

A config leaves some settings to the dataset, the image size or the optimiser (``None``, ``auto``); the
functions here turn them into what a run uses: the view distribution (:func:`view_config`, and
:func:`local_view_config` for multi-crop's small views), the normalised
dataset constants (:func:`normalized_info`), the backbone's stem (:func:`backbone_stem`), the learning rate
and weight decay (:func:`resolved_lr`, :func:`resolved_weight_decay`), the view parameters the gradient
penalty differentiates through (the ``gp_*`` functions) and where the data comes from (:func:`data_source`).
Pretraining, evaluation and the reports call them, so they all agree.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from torch.utils.data import Dataset

from simclr.autoencoder_config import AutoencoderConfig
from simclr.config import PretrainConfig, listed_names
from simclr.data.catalog import DatasetInfo, catalog_entry
from simclr.data.source import DataSource
from simclr.models.backbones import Stem, is_torchvision_backbone, resolve_stem
from simclr.optim.build import OPTIMIZER_DEFAULTS
from simclr.views.config import ViewConfig
from simclr.views.factory import invariance_parameter_names

__all__ = [
    "backbone_stem",
    "data_source",
    "gp_excluded_columns",
    "gp_excluded_names",
    "gp_parameter_names",
    "gp_penalised_names",
    "local_view_config",
    "normalized_info",
    "resolved_lr",
    "resolved_weight_decay",
    "view_config",
]


def view_config(config: PretrainConfig, info: DatasetInfo, image_size: int) -> ViewConfig:
    """The SimCLR augmentation of Chen et al. 2020 (Appendix A) with the run's overrides; jitter strength and
    blur default by image size (0.5 and no blur for CIFAR-size images)."""
    views = ViewConfig(
        size=image_size,
        crop_scale=(config.crop_min_scale, config.crop_max_scale),
        flip_p=config.flip_p,
        vflip_p=config.vflip_p,
        rotation_p=config.rotation_p,
        rotation_degrees=config.rotation_degrees,
        rotation_quarter_turns=config.rotation_quarter_turns,
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
    views.validate()
    return views


def local_view_config(config: PretrainConfig, info: DatasetInfo, image_size: int) -> ViewConfig | None:
    """Multi-crop's local crops (Caron et al. 2020, SwAV): the run's view distribution at ``--local-crop-size``
    (default: half the image side) with the crop area in ``--local-crop-scale``; None without local crops."""
    if not config.local_crops:
        return None
    low, high = config.local_crop_scale
    size = config.local_crop_size if config.local_crop_size is not None else max(1, image_size // 2)
    local = dataclasses.replace(view_config(config, info, image_size), size=size, crop_scale=(low, high))
    local.validate()
    return local


def normalized_info(config: PretrainConfig, info: DatasetInfo) -> DatasetInfo:
    """``info`` with the run's normalisation: the dataset's usual mean and std, none (``--no-normalize``), or
    what ``--standardize`` measured on the training split (every user of ``info.mean`` then agrees)."""
    if not config.normalize:
        return dataclasses.replace(info, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    if config.normalization_mean is not None and config.normalization_std is not None:
        mean, std = config.normalization_mean, config.normalization_std
        return dataclasses.replace(info, mean=(mean[0], mean[1], mean[2]), std=(std[0], std[1], std[2]))
    return info


def backbone_stem(config: PretrainConfig, image_size: int) -> Stem | None:
    """The backbone's stem at ``image_size``: ``--stem``, where ``auto`` picks by size, except that ImageNet
    weights come with the ImageNet stem they were trained with; None for a timm model or a module of one's
    own, whose first layers are their own."""
    if not is_torchvision_backbone(config.backbone):
        return None
    return resolve_stem("imagenet" if config.weights == "imagenet" else config.stem, image_size)


def resolved_lr(config: PretrainConfig) -> tuple[float, str]:
    """Base learning rate and scaling rule after applying the optimiser's defaults."""
    defaults = OPTIMIZER_DEFAULTS[config.optimizer]
    return (config.lr if config.lr is not None else defaults.lr, config.lr_scaling or defaults.scaling)


def resolved_weight_decay(config: PretrainConfig) -> float:
    """The weight decay after applying the optimiser's default."""
    if config.weight_decay is not None:
        return config.weight_decay
    return OPTIMIZER_DEFAULTS[config.optimizer].weight_decay


def gp_parameter_names(config: PretrainConfig) -> tuple[str, ...]:
    """The view parameters the penalty differentiates through: Spirograph's 6 nuisances, else colour jitter's 4."""
    return invariance_parameter_names(catalog_entry(config.dataset).regression)


def gp_excluded_names(config: PretrainConfig) -> list[str]:
    """The names listed in ``gp_exclude`` (comma-separated, blanks ignored), as given."""
    return listed_names(config.gp_exclude)


def gp_excluded_columns(config: PretrainConfig) -> tuple[int, ...]:
    """Columns of the view parameters named by ``gp_exclude`` (validated by :meth:`PretrainConfig.validate`)."""
    names = gp_parameter_names(config)
    return tuple(sorted({names.index(name) for name in gp_excluded_names(config) if name in names}))


def gp_penalised_names(config: PretrainConfig) -> tuple[str, ...]:
    """The view parameters left in the penalty once ``gp_exclude`` is applied."""
    excluded = set(gp_excluded_names(config))
    return tuple(name for name in gp_parameter_names(config) if name not in excluded)


def data_source(config: PretrainConfig | AutoencoderConfig, dataset: Dataset[Any] | None = None) -> DataSource:
    """The data a pretraining or autoencoder config names (``dataset``: the Dataset its ``python`` stands for)."""
    return DataSource.from_reading(
        config.dataset, config, spirograph_sizes=(config.train_size, config.test_size), python_dataset=dataset
    )
