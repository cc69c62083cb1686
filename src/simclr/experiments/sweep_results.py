"""What a sweep knows about its cells: whether one is finished, its numbers, and the results table.

A cell is finished when its run directory has ``backbone.safetensors`` and ``sweep-cell.json`` (the marker,
written last, atomically, with the cell's numbers). The table (``results.csv`` and ``results.md`` in the
sweep's folder) has one row per cell and the metric columns that any cell has.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from simclr.atomic import write_text_atomic
from simclr.errors import UserError
from simclr.evaluation.results import read_metrics
from simclr.experiments.sweep_grid import Cell, format_value
from simclr.models.backbone_file import read_backbone_metadata
from simclr.rundir import RunDir

RESULTS_CSV = "results.csv"
RESULTS_MD = "results.md"


@dataclass
class CellOutcome:
    """What a cell ended as; ``error`` is None for a finished cell."""

    cell: Cell
    status: str
    error: str | None = None
    results: dict[str, Any] = field(default_factory=dict)


def is_finished(run_dir: Path) -> bool:
    return RunDir(run_dir).backbone.is_file() and RunDir(run_dir).sweep_marker.is_file()


def read_marker(run_dir: Path) -> dict[str, Any] | None:
    path = RunDir(run_dir).sweep_marker
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def _backbone_step(path: Path) -> int | None:
    """The backbone's ``global_step``, read from its metadata without loading torch; None when unreadable."""
    try:
        return read_backbone_metadata(path).global_step
    except UserError:
        return None


def _final_loss(metrics_csv: Path) -> float | None:
    try:
        with metrics_csv.open() as handle:
            losses = [row["train_loss"] for row in csv.DictReader(handle) if row.get("train_loss")]
    except (OSError, KeyError):
        return None
    return float(losses[-1]) if losses else None


def cell_results(run_dir: Path) -> dict[str, Any]:
    """The numbers of the results table: step, final loss and the headline evaluation metrics present."""
    results: dict[str, Any] = {
        "global_step": _backbone_step(RunDir(run_dir).backbone),
        "final_loss": _final_loss(RunDir(run_dir).metrics),
    }
    try:
        doc = read_metrics(RunDir(run_dir).eval)
    except UserError:
        doc = None
    entries = doc["results"] if doc else {}
    picks = {
        "linear_top1": ("linear", "top1"),
        "knn_k200_top1": ("knn", "k200", "top1"),
        "regression_mse": ("regression", "mse"),
        "regression_r2": ("regression", "r2"),
    }
    for column, (method, *path) in picks.items():
        value: Any = entries.get(method, {}).get("metrics")
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None:
            results[column] = value
    return results


def write_marker(run_dir: Path, cell: Cell, results: Mapping[str, Any]) -> None:
    doc = {
        "cell_id": cell.cell_id,
        "grid_values": cell.grid_values,
        "results": dict(results),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_text_atomic(RunDir(run_dir).sweep_marker, json.dumps(doc, indent=2, default=str) + "\n")


_NUMBER_COLUMNS = (
    "global_step",
    "final_loss",
    "linear_top1",
    "knn_k200_top1",
    "regression_mse",
    "regression_r2",
)


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.3e}"
    return format_value(value)


def write_tables(sweep_dir: Path, grid_keys: Sequence[str], outcomes: Iterable[CellOutcome]) -> None:
    """``results.csv`` and ``results.md``: one row per cell, the metric columns that any cell has."""
    outcomes = list(outcomes)
    present = [name for name in _NUMBER_COLUMNS if any(name in item.results for item in outcomes)]
    columns = ["cell_id", *grid_keys, "status", *present]
    rows = [
        [
            item.cell.cell_id,
            *(item.cell.grid_values.get(key) for key in grid_keys),
            item.status,
            *(item.results.get(name) for name in present),
        ]
        for item in outcomes
    ]
    sweep_dir.mkdir(parents=True, exist_ok=True)
    table = io.StringIO(newline="")
    writer = csv.writer(table)
    writer.writerow(columns)
    writer.writerows([["" if value is None else format_value(value) for value in row] for row in rows])
    write_text_atomic(sweep_dir / RESULTS_CSV, table.getvalue())
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell_text(value) for value in row) + " |" for row in rows]
    write_text_atomic(sweep_dir / RESULTS_MD, "\n".join(lines) + "\n")
