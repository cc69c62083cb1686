"""Robustness (seed 003's study): how the linear read-out of frozen features degrades as the test images shift.

One classifier (or, on Spirograph, one factor regression) is fitted on the clean training features; it then
scores the test split clean and under every shift of :data:`simclr.evaluation.shifts.SHIFTS` at each strength.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from simclr.evaluation.features import extract_features
from simclr.evaluation.linear import linear_probe
from simclr.evaluation.metrics import regression_metrics
from simclr.evaluation.regression import linear_regression
from simclr.evaluation.session import EvalSession
from simclr.evaluation.shifts import SHIFTS, Shift, shifted_batches

log = logging.getLogger("simclr")


def run_robustness(session: EvalSession) -> dict[str, Any]:
    """Clean and shifted test scores of a run: top-1 for classes, factor MSE for Spirograph."""
    from simclr.evaluation.results import make_entry

    start = time.perf_counter()
    train, test = session.features("train"), session.features("test")
    regression = train.factors is not None
    if not regression:
        session.require_classes("the robustness study")

    # one read-out, fitted once on the clean training features, scores the clean and every shifted test set
    if regression:
        assert train.factors is not None and test.factors is not None
        names = [f"factor_{i}" for i in range(train.factors.shape[1])]
        targets = test.factors
        fitted = linear_regression(
            train.features, train.factors, test.features, targets, target_names=names, seed=session.options.seed
        )

        def score(test_features: Tensor) -> float:
            with torch.no_grad():
                return float(regression_metrics(fitted.fit(test_features), targets, names)["mse"])
    else:
        store = session.stores["train"]
        probe = linear_probe(
            train.features, train.labels, test.features, test.labels,
            num_classes=store.num_classes, class_names=store.class_names, seed=session.options.seed,
        )  # fmt: skip

        def score(test_features: Tensor) -> float:
            with torch.no_grad():
                return float((probe.head(test_features).argmax(1) == test.labels).double().mean())

    clean = score(test.features)
    rows = []
    shifted_sets = sum(len(shift.strengths) for shift in SHIFTS.values())
    on_batch = session.counter("test (shifted)", shifted_sets * len(session.stores["test"]))
    for shift in SHIFTS.values():
        for strength in shift.strengths:
            value = score(_shifted_features(session, shift, strength, on_batch))
            rows.append({"shift": shift.name, "strength": strength, "score": value, "change": value - clean})
            log.info("robustness: %s %+g: %.4f (clean %.4f)", shift.name, strength, value, clean)
    metric = "mse" if regression else "top1"
    protocol = {
        **session.base_protocol(),
        "read_out": "factor regression (L-BFGS, L2 chosen on validation)"
        if regression
        else "linear probe (L-BFGS, L2 chosen on validation)",
        "fitted_on": "clean training features; the same read-out scores every shifted test set",
        "score": metric,
        "shifts": {shift.name: shift.description for shift in SHIFTS.values()},
        "images": "test images shifted in [0, 1], re-quantised to uint8, then encoded as the clean ones",
    }
    metrics = {f"clean_{metric}": clean, "metric": metric, "shifted": rows}
    return make_entry("robustness", protocol, metrics, time.perf_counter() - start)


def _shifted_features(
    session: EvalSession, shift: Shift, strength: float, on_batch: Callable[[int], None] | None
) -> Tensor:
    batch_size = session.options.batch_size
    batches = shifted_batches(session.stores["test"].batches(batch_size), shift, strength, session.options.seed)
    info = session.info
    return extract_features(
        session.backbone.module,
        batches,
        info.mean,
        info.std,
        batch_size=batch_size,
        device=session.device,
        autocast_dtype=session.autocast_dtype,
        on_batch=on_batch,
    )
