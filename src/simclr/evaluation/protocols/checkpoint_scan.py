"""Evaluate the backbones a run kept during pretraining (``simclr evaluate RUN --checkpoint ...``).

``best`` or ``epoch-N`` points an evaluation at one kept backbone; ``all`` runs kNN (and the linear probe
when asked) on every kept backbone of a labelled run, or the factor regression of a Spirograph run, and writes
one table row per backbone and a plot of the scores against the epochs trained (InvCLR's checkpoint scans).
What a scanned backbone's evaluation saves (its linear classifier) goes to that backbone's own folder, as with
``--checkpoint epoch-N``: the final backbone's results and classifiers are never overwritten.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from simclr.atomic import write_text_atomic
from simclr.errors import UserError
from simclr.evaluation.loading import RunRef
from simclr.evaluation.options import EvalSessionOptions, LinearEvalOptions
from simclr.evaluation.protocols.knn import run_knn
from simclr.evaluation.protocols.linear import run_linear_eval
from simclr.evaluation.protocols.regression import run_regression
from simclr.evaluation.session import EvalSession
from simclr.progress import Progress, with_task_prefix

log = logging.getLogger("simclr")

SCAN_ALL = "all"


def kept_backbone_ref(ref: RunRef, name: str) -> RunRef:
    """The run seen through one kept backbone (``best``, ``epoch-N``), writing to its own evaluation folder
    unless ``--eval-dir`` moved the results; an unknown name is a UserError listing the kept ones."""
    path = ref.run.named_backbone(name)
    eval_dir = ref.eval.for_checkpoint(name) if ref.writes_to_run else ref.eval
    return dataclasses.replace(ref, backbone_path=path, eval=eval_dir)


# the scores a scan row can hold, with how a plot names them
SCORES = {"knn_top1": "kNN top-1", "linear_top1": "linear top-1", "regression_r2": "regression R^2"}


@dataclass(frozen=True)
class CheckpointScan:
    """One row per kept backbone (``epochs``, ``file``, then ``knn_top1`` and, when asked, ``linear_top1``; or
    ``regression_r2`` and ``regression_mse`` for Spirograph), in the order of the epochs trained, and the CSV
    ``table`` they were written to."""

    rows: list[dict[str, object]]
    table: Path

    @property
    def epochs(self) -> list[int]:
        return [int(row["epochs"]) for row in self.rows]  # type: ignore[call-overload]

    def scores_by_method(self) -> dict[str, Sequence[float]]:
        """``{"kNN top-1": [per backbone], "linear top-1": [...]}`` (or ``{"regression R^2": [...]}``) for the
        methods that ran: fractions, higher is better."""
        return {label: [float(row[key]) for row in self.rows] for key, label in SCORES.items() if key in self.rows[0]}  # type: ignore[arg-type]


def _top1(entry: dict[str, object]) -> float:
    """Top-1 of a result entry: its metrics block, or the first per-k block of a kNN entry."""
    metrics = entry["metrics"]
    assert isinstance(metrics, dict)
    block = metrics if "top1" in metrics else next(iter(metrics.values()))
    return float(block["top1"])


def scan_kept_backbones(
    ref: RunRef, options: EvalSessionOptions, linear: bool = False, progress: Progress | None = None
) -> CheckpointScan:
    """kNN (and ``linear``) top-1 of every kept backbone, written as a CSV table in the evaluation folder
    (:mod:`simclr.reports.eval_plots` draws it). ``progress`` is told how many backbones are done, and each
    one's stages under its epoch's name."""
    kept = ref.run.kept_backbones()
    if not kept:
        raise UserError(
            f"{ref.run.path} kept no backbones; pretrain with --keep-every-epochs N or --save-top-k K first"
        )
    rows: list[dict[str, object]] = []
    for done, (epochs, path) in enumerate(kept.items()):
        log.info("%s: kept backbone after %d epochs ...", ref.run.name, epochs)
        if progress is not None:
            progress("kept backbones", done, len(kept))
        session = EvalSession(
            dataclasses.replace(ref, backbone_path=path, eval=ref.eval.for_checkpoint(f"epoch-{epochs}")),
            options,
            progress=with_task_prefix(progress, f"epoch {epochs}"),
        )
        rows.append({"epochs": epochs, "file": path.name, **_scores(session, linear)})
    if progress is not None:
        progress("kept backbones", len(kept), len(kept))
    ref.eval.path.mkdir(parents=True, exist_ok=True)
    write_text_atomic(ref.eval.checkpoint_scan, _csv_text(rows))
    return CheckpointScan(rows, ref.eval.checkpoint_scan)


def _scores(session: EvalSession, linear: bool) -> dict[str, object]:
    """A scanned backbone's scores: the factor regression of a Spirograph run; else kNN (and the linear probe)."""
    if session.splits["train"].factors is not None:
        with session.stage("regression"):
            metrics = run_regression(session)["metrics"]
        return {"regression_r2": metrics["r2"], "regression_mse": metrics["mse"]}
    with session.stage("knn"):
        scores: dict[str, object] = {"knn_top1": _top1(run_knn(session))}
    if linear:
        with session.stage("linear"):
            scores["linear_top1"] = _top1(run_linear_eval(session, LinearEvalOptions()))
    return scores


def _csv_text(rows: list[dict[str, object]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
