"""Robustness (InvCLR's study): how the linear read-out of frozen features degrades under distribution shift.

One classifier (or, on Spirograph, one factor regression) is fitted on the clean training features; it then
scores the clean test split and every shift at each strength. Images are shifted by
:data:`~simclr.evaluation.protocols.shifts.IMAGE_SHIFTS`; Spirograph's test factors are re-rendered with nuisance
parameters shifted by :data:`~simclr.evaluation.protocols.shifts.NUISANCE_SHIFTS` (Foster et al. 2020).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from simclr.evaluation.features import extract_features
from simclr.evaluation.metrics import regression_metrics
from simclr.evaluation.protocols.linear import linear_probe
from simclr.evaluation.protocols.regression import linear_regression
from simclr.evaluation.protocols.shifts import IMAGE_SHIFTS, NUISANCE_SHIFTS, Shift, shifted_batches
from simclr.evaluation.recording import base_protocol
from simclr.evaluation.results import make_entry
from simclr.evaluation.session import EvalSession
from simclr.evaluation.view_features import ViewDraw

log = logging.getLogger("simclr")

# the test features of one shift at one strength
ShiftedFeatures = Callable[[Shift, float], Tensor]
OnBatch = Callable[[int], None] | None


def run_robustness(session: EvalSession) -> dict[str, Any]:
    """Clean and shifted test scores of a run: top-1 for classes, factor MSE for Spirograph."""
    start = time.perf_counter()
    regression = session.splits["train"].factors is not None
    if not regression:
        session.splits.require_classes("the robustness study")
    shifts = NUISANCE_SHIFTS if regression else IMAGE_SHIFTS
    shifted_sets = sum(len(shift.strengths) for shift in shifts.values())
    on_batch = session.counter("test (shifted)", shifted_sets * len(session.splits["test"]))
    if regression:
        score, clean_features, shifted_features = _factor_regression(session, on_batch)
        metric = "mse"
        read_out = "factor regression (L-BFGS, L2 chosen on validation)"
        images = (
            "the test factors rendered with one seeded nuisance draw (clean), then with that draw shifted; "
            "the training features come from fresh renders of the training factors"
        )
    else:
        score, clean_features, shifted_features = _linear_probe(session, on_batch)
        metric = "top1"
        read_out = "linear probe (L-BFGS, L2 chosen on validation)"
        images = "test images shifted in [0, 1], re-quantised to uint8, then encoded as the clean ones"

    clean = score(clean_features)
    rows = []
    for shift in shifts.values():
        for strength in shift.strengths:
            value = score(shifted_features(shift, strength))
            rows.append({"shift": shift.name, "strength": strength, "score": value, "change": value - clean})
            log.info("robustness: %s %+g: %.4f (clean %.4f)", shift.name, strength, value, clean)
    protocol = {
        **base_protocol(session),
        "read_out": read_out,
        "fitted_on": "clean training features; the same read-out scores every shifted test set",
        "score": metric,
        "shifts": {shift.name: shift.description for shift in shifts.values()},
        "images": images,
    }
    metrics = {f"clean_{metric}": clean, "metric": metric, "shifted": rows}
    return make_entry("robustness", protocol, metrics, time.perf_counter() - start)


def _linear_probe(session: EvalSession, on_batch: OnBatch) -> tuple[Callable[[Tensor], float], Tensor, ShiftedFeatures]:
    """The probe's top-1, the clean test features, and the features of shifted test images (counted by
    ``on_batch``)."""
    train, test = session.features("train"), session.features("test")
    store = session.splits["train"]
    probe = linear_probe(
        train.features, train.labels, test.features, test.labels,
        num_classes=store.num_classes, class_names=store.class_names, seed=session.options.seed,
    )  # fmt: skip

    def score(test_features: Tensor) -> float:
        with torch.no_grad():
            return float((probe.head(test_features).argmax(1) == test.labels).double().mean())

    def shifted(shift: Shift, strength: float) -> Tensor:
        batch_size = session.options.batch_size
        batches = shifted_batches(session.splits["test"].batches(batch_size), shift, strength, session.options.seed)
        info = session.info
        return extract_features(
            session.backbone.module, batches, info.mean, info.std,
            batch_size=batch_size, device=session.device, autocast_dtype=session.autocast_dtype, on_batch=on_batch,
        )  # fmt: skip

    return score, test.features, shifted


def _factor_regression(
    session: EvalSession, on_batch: OnBatch
) -> tuple[Callable[[Tensor], float], Tensor, ShiftedFeatures]:
    """The regression's factor MSE, the clean test features, and the features of renders with shifted nuisance
    (counted by ``on_batch``).

    The clean test set is rendered with one seeded nuisance draw and every shift moves that same draw, so
    strength 0 of any shift gives exactly the clean features."""
    train = session.features("train", tta=1, fresh_nuisance=True)  # the regression protocol's training features
    test = session.splits["test"].load()  # Spirograph splits are rendered in memory
    assert train.factors is not None and test.factors is not None
    encoder = session.view_encoder()
    drawn = encoder.draw(test, torch.Generator().manual_seed(session.options.seed)).params

    def rendered(shift: Shift, strength: float) -> Tensor:
        nuisance = shift.apply(drawn, strength, torch.Generator())
        return encoder.encode_draw(test, ViewDraw(params=nuisance, full=None), on_batch)

    clean = encoder.encode_draw(test, ViewDraw(params=drawn, full=None))
    names = [f"factor_{i}" for i in range(train.factors.shape[1])]
    targets = test.factors
    fitted = linear_regression(
        train.features, train.factors, clean, targets, target_names=names, seed=session.options.seed
    )

    def score(test_features: Tensor) -> float:
        with torch.no_grad():
            return float(regression_metrics(fitted.fit(test_features), targets, names)["mse"])

    return score, clean, rendered
