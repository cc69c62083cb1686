"""``RUN_DIR/eval/metrics.json``: every number with the protocol that produced it.

Layout (``schema_version`` 1)::

    {
      "schema_version": 1,
      "run_dir": "runs/cifar10-...",
      "dataset": {"name": "cifar10", "image_size": 32, "num_classes": 10},
      "backbone": {"name": "resnet18", "stem": "cifar", "feature_dim": 512, "global_step": 585,
                   "epoch": 2, "sha256": "...", "weights": "pretrained"},
      "results": {
        "linear": {"method": "linear", "protocol": {...}, "metrics": {"top1": 0.61, ...},
                   "created": "2026-11-23T10:00:00+00:00", "seconds": 12.3},
        "knn": {...}, "regression": {...}, "finetune": {...}, "supervised": {...}
      }
    }

Every ``protocol`` holds at least ``backbone_sha256``, ``seed`` and the split sizes, so two results are
comparable at a glance; re-running a method replaces its entry, other entries are kept. Writes are
atomic (:mod:`simclr.atomic`): an interrupted evaluation never leaves a half-written file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from simclr.atomic import write_text_atomic
from simclr.errors import UserError
from simclr.rundir import EVAL_METRICS_FILE, EvalDir

SCHEMA_VERSION = 1
REQUIRED_PROTOCOL_KEYS = ("backbone_sha256", "seed")


def _json_safe(value: Any) -> Any:
    """NaN/inf are not JSON; they become null rather than an unparsable file."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def metrics_path(eval_dir: EvalDir | Path) -> Path:
    return eval_dir.metrics if isinstance(eval_dir, EvalDir) else EvalDir(Path(eval_dir)).metrics


def read_metrics(eval_dir: EvalDir | Path) -> dict[str, Any] | None:
    """The current ``metrics.json`` of ``eval_dir``, or None when there is none yet."""
    path = metrics_path(eval_dir)
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not valid JSON ({exc}); delete it and evaluate again") from None
    validate_metrics(doc, path)
    return doc


def validate_metrics(doc: Any, where: Path | str = EVAL_METRICS_FILE) -> None:
    """Raise UserError unless ``doc`` follows the layout documented in this module."""

    def fail(problem: str) -> None:
        raise UserError(f"{where}: {problem}; delete it and evaluate again")

    if not isinstance(doc, dict):
        fail("top level is not an object")
    if doc.get("schema_version") != SCHEMA_VERSION:
        fail(f"schema_version is {doc.get('schema_version')!r}, expected {SCHEMA_VERSION}")
    for key in ("dataset", "backbone", "results"):
        if not isinstance(doc.get(key), dict):
            fail(f"'{key}' is missing or not an object")
    for name, entry in doc["results"].items():
        if not isinstance(entry, dict):
            fail(f"result {name!r} is not an object")
        for key in ("method", "protocol", "metrics", "created"):
            if key not in entry:
                fail(f"result {name!r} has no {key!r}")
        for key in REQUIRED_PROTOCOL_KEYS:
            if key not in entry["protocol"]:
                fail(f"result {name!r} protocol has no {key!r}")


def make_entry(method: str, protocol: Mapping[str, Any], metrics: Mapping[str, Any], seconds: float) -> dict[str, Any]:
    missing = [key for key in REQUIRED_PROTOCOL_KEYS if key not in protocol]
    if missing:
        raise ValueError(f"protocol of {method} lacks {missing}")
    return {
        "method": method,
        "protocol": dict(protocol),
        "metrics": dict(metrics),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(float(seconds), 3),
    }


def record_result(
    eval_dir: EvalDir | Path,
    key: str,
    entry: Mapping[str, Any],
    *,
    run_dir: Path,
    dataset: Mapping[str, Any],
    backbone: Mapping[str, Any],
) -> Path:
    """Add or replace ``results[key]`` in ``eval_dir/metrics.json`` (created when missing), atomically."""
    path = metrics_path(eval_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = read_metrics(eval_dir) or {"schema_version": SCHEMA_VERSION, "results": {}}
    doc["run_dir"] = str(run_dir)
    doc["dataset"] = dict(dataset)
    doc["backbone"] = dict(backbone)
    doc["results"][key] = dict(entry)
    text = json.dumps(_json_safe(doc), indent=2, sort_keys=False) + "\n"
    write_text_atomic(path, text, what="results file", fix="then run the same command again")
    return path


def headline(key: str, entry: Mapping[str, Any]) -> str:
    """One line of the numbers that matter for a result, for terminals and logs."""
    metrics = entry.get("metrics", {})
    parts = []
    blocks = [(name, block) for name, block in metrics.items() if isinstance(block, Mapping) and "top1" in block]
    if "top1" in metrics:
        blocks.insert(0, ("", metrics))
    for name, block in blocks:
        label = f"{key} {name}".strip()
        text = f"{label} top-1 {100 * block['top1']:.2f}%"
        if block.get("top5") is not None:
            text += f", top-5 {100 * block['top5']:.2f}%"
        if block.get("macro_f1") is not None:
            text += f", macro-F1 {100 * block['macro_f1']:.2f}%"
        parts.append(text)
    if "mse" in metrics:
        parts.append(f"{key} MSE {metrics['mse']:.5f}, R^2 {metrics['r2']:.4f}")
    if "conditional_variance" in metrics:
        text = f"{key}: conditional variance {metrics['conditional_variance']:.5f}"
        if "conditional_variance_fraction" in metrics:
            text += f" ({100 * metrics['conditional_variance_fraction']:.2f}% of the total)"
        if "gradient_penalty" in metrics:
            text += f", gradient penalty {metrics['gradient_penalty']:.4g}"
        regression = metrics.get("augmentation_regression") or {}
        if "r2" in regression:
            text += f", augmentation predictable with R^2 {regression['r2']:.4f} (lower = more invariant)"
        parts.append(text)
    if "by_fraction" in metrics:
        curve = ", ".join(f"{row['label_fraction']:g}: {100 * row['top1']:.2f}%" for row in metrics["by_fraction"])
        parts.append(f"{key} top-1 by label fraction {curve}")
    if "shifted" in metrics:
        name, scale = metrics["metric"], (1.0 if metrics["metric"] == "mse" else 100.0)
        worst = max(metrics["shifted"], key=lambda row: abs(row["change"]), default=None)
        text = f"{key}: clean {name} {scale * metrics[f'clean_{name}']:.4g}"
        if worst is not None:
            text += f", largest change {scale * worst['change']:+.4g} ({worst['shift']} {worst['strength']:+g})"
        parts.append(text)
    return "; ".join(parts) if parts else f"{key}: no metrics"
