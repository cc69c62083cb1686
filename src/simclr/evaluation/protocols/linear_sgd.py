"""The linear probe trained by SGD on augmented images (Foster et al. 2020's ``gradient_linear_clf.py``), for
sets too large for the full-batch L-BFGS probe of :mod:`simclr.evaluation.protocols.linear`.

The backbone stays frozen in eval mode; only a linear head trains, by the classifier loop of
:mod:`simclr.evaluation.classifiers.fitting` with crop + flip augmentation made on the device.
"""

from __future__ import annotations

import copy
from typing import Any

from simclr.evaluation.classifiers.classifier_heads import HeadSpec
from simclr.evaluation.classifiers.fitting import train_and_test
from simclr.evaluation.classifiers.inputs import DEFAULT_CROP_SCALE, InputPipeline
from simclr.evaluation.classifiers.training_labels import split_labelled
from simclr.evaluation.options import ClassifierTrainingOptions, LinearEvalOptions
from simclr.evaluation.session import EvalSession

__all__ = ["train_linear_sgd"]

LINEAR_SGD_BATCH_SIZE = 512
LINEAR_SGD_WEIGHT_DECAY = 1e-6
LINEAR_SGD_MOMENTUM = 0.9


def train_linear_sgd(
    session: EvalSession, options: LinearEvalOptions | None = None, *, batch_size: int = LINEAR_SGD_BATCH_SIZE
) -> dict[str, Any]:
    """Foster et al. 2020's ``gradient_linear_clf.py`` protocol: a linear classifier on the frozen backbone,
    trained by SGD (lr 0.1, momentum 0.9, optional Nesterov, weight decay 1e-6, batch 512, 90 epochs)
    with a per-step cosine schedule on crop + flip augmented images, whose features are computed
    under ``no_grad`` in eval mode every batch (the backbone never changes, not even its BatchNorm
    statistics). The test split is scored with the **last** epoch's classifier: Foster et al.'s code
    reports the best test accuracy over epochs, which selects on test. The ``val_fraction`` part of train is only
    monitored (``history``), never used to select; ``0`` trains on all of train. ``standardize`` puts
    a BatchNorm without affine parameters before the linear layer (see
    :mod:`simclr.evaluation.classifiers.classifier_heads`). Returns the ``linear_sgd`` entry; records nothing.
    """
    options = options or LinearEvalOptions(method="sgd")
    standardize, val_fraction = options.standardize, options.val_fraction
    session.splits.require_classes("SGD linear evaluation")
    config = ClassifierTrainingOptions(
        epochs=options.epochs,
        batch_size=batch_size,
        optimizer="sgd",
        lr=options.lr,
        backbone_lr_scale=0.0,
        weight_decay=LINEAR_SGD_WEIGHT_DECAY,
        momentum=LINEAR_SGD_MOMENTUM,
        nesterov=options.nesterov,
        patience=0,
        keep_best=False,
        loss=options.loss,
        focal_gamma=options.focal_gamma,
        eval_batch_size=session.options.batch_size,
        seed=session.options.seed,
    )
    config.validate()
    loaded = session.backbone
    split = split_labelled(session.splits["train"].labels, val_fraction=val_fraction, seed=config.seed)
    info = session.info
    return train_and_test(
        session,
        method="linear_sgd",
        backbone=copy.deepcopy(loaded.module),
        feature_dim=loaded.feature_dim,
        head=HeadSpec(kind="linear", standardize=standardize),
        freeze_backbone=True,
        pipeline=InputPipeline(session.image_size, info.mean, info.std, DEFAULT_CROP_SCALE),
        split=split,
        config=config,
        protocol={
            "classifier": "linear, frozen backbone in eval mode (features under no_grad every batch)",
            "standardize": standardize,
            "val_use": "monitoring only (history); the test score is the last epoch's" if split.val.numel() else "none",
            "image_size": session.image_size,
        },
    )
