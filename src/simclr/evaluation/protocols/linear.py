"""Linear evaluation of frozen features: multinomial logistic regression by full-batch L-BFGS.

The protocol of Chen et al. 2020 (arXiv:2002.05709, sec. B.5, following Kornblith et al. 2019):
L2-regularised multinomial logistic regression on frozen, un-augmented features, the regularisation
chosen on a validation split held out from the training set, then refit on the whole training set
and scored once on the test split.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from simclr.data.sampling import split_train_val
from simclr.evaluation.classifiers.classifier_heads import Classifier, StandardizedLinear
from simclr.evaluation.classifiers.saved_classifier import save_trained_classifier
from simclr.evaluation.features import eval_mode
from simclr.evaluation.metrics import classification_metrics
from simclr.evaluation.options import DEFAULT_L2_GRID, DEFAULT_MAX_ITER, LinearEvalOptions
from simclr.evaluation.protocols.lbfgs import LinearFit, Solver, fit_with_chosen_l2, lbfgs_protocol
from simclr.evaluation.protocols.minibatch_linear import MinibatchSettings, fit_linear_minibatch, full_batch_bytes
from simclr.evaluation.recording import base_protocol
from simclr.evaluation.results import make_entry
from simclr.evaluation.session import EvalSession
from simclr.settings import format_size

log = logging.getLogger("simclr")


@dataclass
class ProbeResult:
    """Test metrics of the refit classifier plus what was chosen on validation."""

    metrics: dict[str, Any]
    chosen_l2: float
    val_top1_by_l2: dict[float, float]
    n_fit: int
    n_val: int
    scores: Tensor = field(repr=False)
    head: StandardizedLinear = field(repr=False)


def _top1(logits: Tensor, labels: Tensor) -> float:
    return float((logits.argmax(1) == labels).float().mean())


def linear_probe(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    test_labels: Tensor,
    *,
    num_classes: int,
    class_names: Sequence[str] | None = None,
    grid: Sequence[float] = DEFAULT_L2_GRID,
    val_fraction: float = 0.1,
    standardize: bool = True,
    max_iter: int = DEFAULT_MAX_ITER,
    seed: int = 0,
    minibatch: MinibatchSettings | None = None,
    focal_gamma: float = 0.0,
) -> ProbeResult:
    """Choose L2 on a stratified validation split of train, refit on all of train, test once; by full-batch
    L-BFGS, or with ``minibatch`` by mini-batch SGD on the same objective (features too big for L-BFGS).
    ``focal_gamma`` > 0 fits the focal loss instead of cross-entropy."""
    fit_idx, val_idx = split_train_val(train_labels, val_fraction, seed)
    solve: Solver | None = None
    if minibatch is not None:
        every_row = torch.arange(train_features.shape[0])

        def solve(rows: Tensor | None, l2: float, init: LinearFit | None) -> LinearFit:
            return fit_linear_minibatch(
                train_features,
                train_labels,
                every_row if rows is None else rows,
                loss="ce",
                l2=l2,
                standardize=standardize,
                settings=minibatch,
                num_outputs=num_classes,
                init=init,
                focal_gamma=focal_gamma,
            )

    final, search = fit_with_chosen_l2(
        train_features,
        train_labels,
        fit_idx,
        val_idx,
        loss="ce",
        grid=grid,
        score=_top1,
        standardize=standardize,
        max_iter=max_iter,
        num_outputs=num_classes,
        solve=solve,
        focal_gamma=focal_gamma,
    )
    with torch.no_grad():
        scores = final(test_features)
    return ProbeResult(
        metrics=classification_metrics(scores, test_labels, class_names),
        chosen_l2=search.chosen_l2,
        val_top1_by_l2=search.scores,
        n_fit=int(fit_idx.numel()),
        n_val=int(val_idx.numel()),
        scores=scores,
        head=StandardizedLinear.of(final.weight, final.bias, final.mean, final.std),
    )


def _minibatch_if_too_big(features: Tensor, budget: int, seed: int) -> MinibatchSettings | None:
    """Mini-batch SGD settings when a full-batch fit of ``features`` would exceed ``budget`` bytes, with a
    one-line note saying so; None when L-BFGS fits."""
    rows, dim = features.shape
    needed = full_batch_bytes(rows, dim)
    if needed <= budget:
        return None
    settings = MinibatchSettings(seed=seed)
    log.info(
        "linear: a full-batch L-BFGS fit of %d x %d features needs %s, over the memory budget of %s; "
        "fitting the same objective by %s instead",
        rows,
        dim,
        format_size(needed),
        format_size(budget),
        settings.describe(),
    )
    return settings


def run_linear_eval(session: EvalSession, options: LinearEvalOptions | None = None) -> dict[str, Any]:
    """Linear probe of a run; returns its entry of the results. ``tta`` > 1 averages the features of that
    many augmented views (Foster et al. 2020's feature averaging) for both train and test."""
    options = options or LinearEvalOptions()
    tta, grid, val_fraction = options.tta, options.l2_grid, options.val_fraction
    standardize, max_iter = options.standardize, options.max_iter
    session.splits.require_classes("linear evaluation")
    start = time.perf_counter()
    train = session.features("train", tta=tta)
    test = session.features("test", tta=tta)
    train_split = session.splits["train"]
    minibatch = _minibatch_if_too_big(train.features, session.splits.memory_budget, session.options.seed)
    result = linear_probe(
        train.features,
        train.labels,
        test.features,
        test.labels,
        num_classes=train_split.num_classes,
        class_names=train_split.class_names,
        grid=grid,
        val_fraction=val_fraction,
        standardize=standardize,
        max_iter=max_iter,
        seed=session.options.seed,
        minibatch=minibatch,
        focal_gamma=options.gamma,
    )
    protocol = {
        **base_protocol(session),
        "classifier": "multinomial logistic regression",
        "objective": f"mean {options.describe_loss()} + l2 * ||W||^2 (bias not penalised)",
        "tta": tta,
        "features": "backbone output, eval mode, "
        + (f"mean of {tta} augmented views" if tta > 1 else "no augmentation"),
        **lbfgs_protocol(
            grid,
            result.chosen_l2,
            ("val_top1_by_l2", result.val_top1_by_l2),
            max_iter=max_iter,
            standardize=standardize,
            selection=f"best validation top-1 on a stratified {val_fraction:g} split of train; refit on all of train",
            n_fit=result.n_fit,
            n_val=result.n_val,
            **({"optimizer": minibatch.describe()} if minibatch is not None else {}),
        ),
    }
    info = session.info
    # wrapping the frozen backbone puts it in eval mode; the caller's mode is restored (it may be training)
    with eval_mode(session.backbone.module) as backbone:
        save_trained_classifier(
            session,
            "linear_tta" if tta > 1 else "linear",
            Classifier(backbone, result.head, freeze_backbone=True),
            {"kind": "standardized_linear"},
            image_size=session.image_size,
            mean=info.mean,
            std=info.std,
            feature_dim=session.backbone.feature_dim,
        )
    return make_entry("linear", protocol, result.metrics, time.perf_counter() - start)
