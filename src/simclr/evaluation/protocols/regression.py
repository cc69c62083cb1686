"""Spirograph's downstream task: linear regression of the 4 generative factors from frozen features.

Foster et al. 2020's code (``lbfgs_linear_clf_spirograph.py``) encodes train and test images
*re-rendered with freshly drawn nuisance parameters*, then fits ``nn.Linear(D, 4)`` by L-BFGS on MSE
plus an L2 penalty and reports the test MSE averaged over the 4 factors. Here the L2 weight is chosen
on a validation split of train (their code fixes it at 1e-8), and R^2 is reported next to the MSE so
factors of different ranges can be compared.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from simclr.data.sampling import split_train_val
from simclr.errors import UserError
from simclr.evaluation.metrics import regression_metrics
from simclr.evaluation.options import DEFAULT_L2_GRID, DEFAULT_MAX_ITER, RegressOptions
from simclr.evaluation.protocols.lbfgs import LinearFit, fit_with_chosen_l2, lbfgs_protocol
from simclr.evaluation.recording import base_protocol
from simclr.evaluation.results import make_entry
from simclr.evaluation.session import EvalSession
from simclr.views.spirograph import GENERATIVE_NAMES


@dataclass
class RegressionResult:
    metrics: dict[str, Any]
    chosen_l2: float
    val_mse_by_l2: dict[float, float]
    n_fit: int
    n_val: int
    fit: LinearFit = field(repr=False)  # the refit read-out, to score other test features with


def _negative_mse(predictions: Tensor, targets: Tensor) -> float:
    return -float(((predictions - targets) ** 2).mean())


def linear_regression(
    train_features: Tensor,
    train_targets: Tensor,
    test_features: Tensor,
    test_targets: Tensor,
    *,
    target_names: Sequence[str],
    grid: Sequence[float] = DEFAULT_L2_GRID,
    val_fraction: float = 0.1,
    standardize: bool = True,
    max_iter: int = DEFAULT_MAX_ITER,
    seed: int = 0,
) -> RegressionResult:
    """Choose L2 by validation MSE on a random split of train, refit on all of train, test once."""
    unlabelled = torch.full((train_features.shape[0],), -1, dtype=torch.int64)
    fit_idx, val_idx = split_train_val(unlabelled, val_fraction, seed)
    final, search = fit_with_chosen_l2(
        train_features,
        train_targets,
        fit_idx,
        val_idx,
        loss="mse",
        grid=grid,
        score=_negative_mse,
        standardize=standardize,
        max_iter=max_iter,
    )
    with torch.no_grad():
        predictions = final(test_features)
    return RegressionResult(
        metrics=regression_metrics(predictions, test_targets, target_names),
        chosen_l2=search.chosen_l2,
        val_mse_by_l2={l2: -score for l2, score in search.scores.items()},
        n_fit=int(fit_idx.numel()),
        n_val=int(val_idx.numel()),
        fit=final,
    )


def run_regression(session: EvalSession, options: RegressOptions | None = None) -> dict[str, Any]:
    """Factor regression of a Spirograph run on freshly rendered views; ``passes`` > 1 averages the
    features of that many renders. Returns its entry of the results."""
    options = options or RegressOptions()
    passes, grid, val_fraction = options.passes, options.l2_grid, options.val_fraction
    standardize, max_iter = options.standardize, options.max_iter
    if session.splits["train"].factors is None:
        raise UserError(
            f"{session.config.dataset} has no generative factors to regress; 'simclr regress' is for spirograph runs, "
            "use 'simclr linear-eval' for labelled datasets"
        )
    start = time.perf_counter()
    train = session.features("train", tta=passes, fresh_nuisance=True)
    test = session.features("test", tta=passes, fresh_nuisance=True)
    assert train.factors is not None and test.factors is not None  # Spirograph splits carry their factors
    result = linear_regression(
        train.features,
        train.factors,
        test.features,
        test.factors,
        target_names=GENERATIVE_NAMES,
        grid=grid,
        val_fraction=val_fraction,
        standardize=standardize,
        max_iter=max_iter,
        seed=session.options.seed,
    )
    protocol = {
        **base_protocol(session),
        "regressor": "linear",
        "objective": "mean over images of the summed squared error + l2 * ||W||^2 (bias not penalised)",
        "targets": list(GENERATIVE_NAMES),
        "features": "backbone output on images re-rendered with fresh nuisance parameters "
        f"({passes} render(s) averaged)",
        **lbfgs_protocol(
            grid,
            result.chosen_l2,
            ("val_mse_by_l2", result.val_mse_by_l2),
            max_iter=max_iter,
            standardize=standardize,
            selection=f"lowest validation MSE on a random {val_fraction:g} split of train; refit on all of train",
            n_fit=result.n_fit,
            n_val=result.n_val,
        ),
    }
    return make_entry("regression", protocol, result.metrics, time.perf_counter() - start)
