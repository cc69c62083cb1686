"""The standard protocol of a dataset, as ``simclr evaluate`` runs it.

Labelled datasets: the L-BFGS linear probe and weighted kNN (k = 200 and 20) on frozen features.
Spirograph: linear regression of the generative factors on freshly rendered views (Foster et al. 2020).
"""

from __future__ import annotations

from typing import Any

from simclr.evaluation.options import LinearEvalOptions, RegressOptions
from simclr.evaluation.protocols.knn import run_knn
from simclr.evaluation.protocols.linear import run_linear_eval
from simclr.evaluation.protocols.regression import run_regression
from simclr.evaluation.recording import record
from simclr.evaluation.session import EvalSession


def run_standard_protocol(session: EvalSession, *, tta: int = 0) -> dict[str, dict[str, Any]]:
    """Run and record every standard method for the session's dataset; returns ``{key: entry}``."""
    results: dict[str, dict[str, Any]] = {}
    if session.splits["train"].factors is not None:
        plan: list[tuple[str, Any]] = [
            ("regression", lambda: run_regression(session, RegressOptions(passes=max(1, tta))))
        ]
    else:
        plan = [
            ("linear", lambda: run_linear_eval(session, LinearEvalOptions(tta=tta))),
            ("knn", lambda: run_knn(session)),
        ]
    for key, method in plan:
        with session.stage(key):
            entry = method()
        record(session, key, entry)
        results[key] = entry
    return results
