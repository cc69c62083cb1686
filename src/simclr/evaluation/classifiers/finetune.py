"""Fine-tuning (SimCLR, Chen et al. 2020, arXiv:2002.05709, sec. 7 and B.6): a trainable copy of the run's
pretrained backbone plus a new head, trained on a stratified subset of the labels with random-crop + flip
augmentation only, by the loop of :mod:`simclr.evaluation.classifiers.fitting`.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

from simclr.evaluation.classifiers.classifier_heads import HeadSpec
from simclr.evaluation.classifiers.fitting import train_and_test
from simclr.evaluation.classifiers.inputs import InputPipeline
from simclr.evaluation.classifiers.training_labels import split_for_options
from simclr.evaluation.options import FinetuneOptions
from simclr.evaluation.session import EvalSession

__all__ = ["run_finetune"]


def run_finetune(session: EvalSession, options: FinetuneOptions | None = None) -> dict[str, Any]:
    """Fine-tune a copy of the run's backbone with a new head on a label subset; the ``finetune``
    entry of the results. The session's own backbone is never modified."""
    given = options or FinetuneOptions()
    config = replace(given, seed=session.options.seed, eval_batch_size=session.options.batch_size)
    config.validate()
    session.splits.require_classes("fine-tuning")
    loaded = session.backbone
    split, labels_used = split_for_options(session, config)
    info = session.info
    return train_and_test(
        session,
        method="finetune",
        backbone=copy.deepcopy(loaded.module),
        feature_dim=loaded.feature_dim,
        head=HeadSpec.of(config),
        freeze_backbone=config.freeze_backbone,
        pipeline=InputPipeline(session.image_size, info.mean, info.std, (config.crop_min_scale, 1.0)),
        split=split,
        config=config,
        protocol={
            **labels_used,
            "image_size": session.image_size,
        },
    )
