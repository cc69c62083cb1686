"""The supervised baseline of the CIFAR-10 ResNet-18 study (docs/SOURCES.md): the run's architecture
trained with labels instead of SimCLR.

``weights="none"`` trains the same backbone (same stem) from random initialisation, every layer
trainable, with the fine-tuning loop and the same label subset: what the labels alone achieve.
``weights="imagenet"`` starts from torchvision's ImageNet weights (that study uses an ImageNet
resnet18): the ImageNet stem, images upsampled on the device to ``image_size`` (224 by default, as
that study resizes CIFAR-10) and normalised with the ImageNet statistics the weights were trained with.
The weights are read as pretraining's ``--weights imagenet`` reads them
(:func:`simclr.models.backbones.load_imagenet_backbone`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from simclr.errors import UserError
from simclr.evaluation.classifiers.classifier_heads import HeadSpec
from simclr.evaluation.classifiers.fitting import train_and_test
from simclr.evaluation.classifiers.inputs import InputPipeline
from simclr.evaluation.classifiers.training_labels import split_for_options
from simclr.evaluation.options import SupervisedOptions
from simclr.evaluation.session import EvalSession
from simclr.models.backbones import (
    INITIAL_WEIGHTS,
    build_backbone,
    load_imagenet_backbone,
)

__all__ = ["SUPERVISED_WEIGHTS", "run_supervised"]

SUPERVISED_WEIGHTS: tuple[str, ...] = INITIAL_WEIGHTS  # as pretraining's --weights
DEFAULT_IMAGENET_SIZE = 224


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
    session.splits.require_classes("the supervised baseline")
    name, run_stem = session.backbone.architecture(session.config)
    if weights == "none":
        stem = run_stem
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
    split, labels_used = split_for_options(session, config)
    entry = train_and_test(
        session,
        method=key,
        backbone=module,
        feature_dim=feature_dim,
        head=HeadSpec.of(config),
        freeze_backbone=config.freeze_backbone,
        pipeline=InputPipeline(size, mean, std, (config.crop_min_scale, 1.0)),  # type: ignore[arg-type]
        split=split,
        config=config,
        architecture=(name, stem),
        protocol={
            **labels_used,
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
