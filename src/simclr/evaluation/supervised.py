"""The supervised baseline of the CIFAR-10 ResNet-18 study (docs/SOURCES.md): the run's architecture
trained with labels instead of SimCLR.

``weights="none"`` trains the same backbone (same stem) from random initialisation, every layer
trainable, with the fine-tuning loop and the same label subset: what the labels alone achieve.
``weights="imagenet"`` starts from torchvision's ImageNet weights (that study uses an ImageNet
resnet18): the ImageNet stem, images upsampled on the device to ``image_size`` (224 by default, as
that study resizes CIFAR-10) and normalised with the ImageNet statistics the weights were trained with.
The weights come from torchvision's own loader (``WeightsEnum.get_state_dict``, i.e.
``torch.hub.load_state_dict_from_url``), which reads ``$TORCH_HOME/hub/checkpoints/<file>`` when it
is there; offline, the error names that file and the URL to fetch it from.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import torch
import torchvision
from torch import nn

from simclr.errors import UserError
from simclr.evaluation.finetune import InputPipeline, split_labelled, train_and_test
from simclr.evaluation.label_subsets import label_subset_protocol
from simclr.evaluation.options import SupervisedOptions
from simclr.models import build_backbone, resolve_stem

if TYPE_CHECKING:
    from torchvision.models import WeightsEnum

    from simclr.evaluation.session import EvalSession

__all__ = ["SUPERVISED_WEIGHTS", "imagenet_cache_file", "imagenet_weights", "load_imagenet_backbone", "run_supervised"]

SUPERVISED_WEIGHTS: tuple[str, ...] = ("none", "imagenet")
DEFAULT_IMAGENET_SIZE = 224


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


def run_supervised(session: EvalSession, options: SupervisedOptions | None = None) -> tuple[str, dict[str, Any]]:
    """Train the supervised baseline; returns its result key (``supervised`` or ``supervised_imagenet``)
    and entry. The image size defaults to the run's size (``none``) or 224 (``imagenet``); the stored images
    are resized to it on the device. A random backbone trains at the head's learning rate, ImageNet weights
    at a tenth of it, unless ``backbone_lr_scale`` says otherwise."""
    options = options or SupervisedOptions()
    weights, image_size = options.weights, options.image_size
    if weights not in SUPERVISED_WEIGHTS:
        raise UserError(f"unknown --weights {weights!r}; use one of {', '.join(SUPERVISED_WEIGHTS)}")
    if image_size is not None and image_size < 1:
        raise UserError(f"--image-size must be >= 1, got {image_size}")
    config = replace(
        options,
        seed=session.options.seed,
        eval_batch_size=session.options.batch_size,
        backbone_lr_scale=options.backbone_lr_scale
        if options.backbone_lr_scale is not None
        else (1.0 if weights == "none" else 0.1),
    )
    config.validate()
    session.require_classes("the supervised baseline")
    name = session.backbone.metadata.backbone or session.config.backbone
    if weights == "none":
        stem = session.backbone.metadata.stem or resolve_stem(session.config.stem, session.image_size)
        torch.manual_seed(config.seed)
        module, feature_dim = build_backbone(name, stem)  # type: ignore[arg-type]
        size = image_size or session.image_size
        mean, std = session.info.mean, session.info.std
        initial = f"none (torchvision random initialisation, seed {config.seed})"
        key = "supervised"
    else:
        module, feature_dim, loaded = load_imagenet_backbone(name)
        stem = "imagenet"
        size = image_size or DEFAULT_IMAGENET_SIZE
        preset = loaded.transforms()
        mean, std = tuple(preset.mean), tuple(preset.std)
        initial = f"imagenet ({type(loaded).__name__}.{loaded.name}, {loaded.url})"
        key = "supervised_imagenet"
    split = split_labelled(
        session.stores["train"].labels,
        fraction=config.label_fraction,
        per_class=config.labels_per_class,
        val_fraction=config.val_fraction,
        seed=config.seed,
    )
    entry = train_and_test(
        session,
        method=key,
        backbone=module,
        feature_dim=feature_dim,
        head=config.head_spec(),
        freeze_backbone=config.freeze_backbone,
        pipeline=InputPipeline(size, mean, std, (config.crop_min_scale, 1.0)),  # type: ignore[arg-type]
        split=split,
        config=config,
        architecture=(name, stem),
        protocol={
            **label_subset_protocol(config.label_fraction, config.labels_per_class),
            "weights": weights,
            "initial_weights": initial,
            "architecture": name,
            "stem": stem,
            "image_size": size,
            "stored_image_size": session.image_size,
            "note": "backbone_sha256 names the SimCLR run this baseline is compared with; its weights are not used",
        },
    )
    return key, entry
