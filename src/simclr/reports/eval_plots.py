"""The pictures ``simclr evaluate`` adds to a run: curves, confusion matrix, embedding map, views, and the
accuracy of the backbones a run kept.

Each is drawn from what evaluation already computed (cached test features, the linear probe's
confusion matrix) so pictures and numbers always describe the same weights.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from simclr.evaluation.options import EvaluateCommandOptions
from simclr.evaluation.protocols.checkpoint_scan import CheckpointScan
from simclr.evaluation.session import EvalSession
from simclr.reports.plots import (
    AUGMENTED_VIEWS,
    EMBEDDING_FILES,
    LABEL_EFFICIENCY,
    LEARNING_CURVES,
    ROBUSTNESS,
    TRAINING_CURVES,
    MissingMapPackage,
    confusion_matrix_file,
    plot_checkpoint_scan,
    plot_confusion_matrix,
    plot_embedding_map,
    plot_learning_curves,
    plot_score_curves,
    plot_training_curves,
    plot_view_grid,
)
from simclr.resolve import view_config
from simclr.views.factory import build_views
from simclr.views.spirograph import GENERATIVE_NAMES

log = logging.getLogger("simclr")
VIEW_GRID_IMAGES = 8


def augmented_view_examples(
    session: EvalSession, count: int = VIEW_GRID_IMAGES, seed: int = 0
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``count`` training images and two of their training views, un-normalised to [0, 1]."""
    store = session.splits["train"]
    index = torch.randperm(len(store), generator=torch.Generator().manual_seed(seed))[:count].sort().values
    info, size = session.info, session.image_size
    views = build_views(size, view_config(session.config, info, size), n_views=2, rerender=info.regression)
    gen = torch.Generator().manual_seed(seed)
    examples = store.subset(index).load()
    with torch.no_grad():
        source = examples.images
        if views.input_key == "factors" and examples.factors is not None:
            source = examples.factors
        made = views(source, gen)
    # both view makers normalise with (x - mean) / std; SimCLRViews holds (1, 3, 1, 1) buffers, Spirograph floats
    mean = torch.as_tensor(views.mean, dtype=torch.float32).cpu().reshape(-1, 1, 1)
    std = torch.as_tensor(views.std, dtype=torch.float32).cpu().reshape(-1, 1, 1)
    shown = [(view.float().cpu() * std + mean).clamp(0, 1).contiguous() for view in made]
    return examples.images, shown


def write_eval_plots(
    session: EvalSession,
    results: Mapping[str, Any],
    options: EvaluateCommandOptions | None = None,
    *,
    projection: torch.nn.Module | None = None,
    max_points: int = 2000,
) -> list[Path]:
    """Draw every picture that applies to this run into its evaluation's plots folder; returns the files.
    ``options`` choose the embedding map (method, neighbourhood, supervision); with ``projection`` (the run's
    head) the map shows the head's output instead of the backbone features."""
    options = options or EvaluateCommandOptions()
    out_dir = session.ref.eval.plots
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    curves = plot_training_curves(session.ref.run.metrics, out_dir / TRAINING_CURVES)
    if curves is not None:
        written.append(curves)
    for key in ("linear", "knn"):
        if key in results:
            written += _confusion_matrix(out_dir, key, results[key])
    written += _embedding_map(session, options, out_dir / EMBEDDING_FILES[options.method], projection, max_points)
    originals, views = augmented_view_examples(session, seed=session.options.seed)
    written.append(plot_view_grid(originals, views, out_dir / AUGMENTED_VIEWS))
    written += _study_plots(results, out_dir)
    return written


def _embedding_map(
    session: EvalSession,
    options: EvaluateCommandOptions,
    out: Path,
    projection: torch.nn.Module | None,
    max_points: int,
) -> list[Path]:
    """The map of the test embeddings (of the head's output with ``projection``); none, with one log line
    naming the extra that adds it, when the map's package is not installed: the numbers are written by now,
    and the report goes on without the map."""
    test = session.features("test")
    mapped = test.features
    if projection is not None:
        with torch.no_grad():
            mapped = projection(test.features)
    regression = test.factors is not None
    try:
        drawn = plot_embedding_map(
            mapped,
            out,
            labels=None if regression else test.labels.numpy(),
            class_names=None if regression else session.splits["test"].class_names,
            values=test.factors[:, 0].numpy() if test.factors is not None else None,
            value_name=f"{GENERATIVE_NAMES[0]} (generative factor)" if regression else None,
            method=options.method,
            seed=session.options.seed,
            max_points=max_points,
            perplexity=options.perplexity,
            neighbors=options.neighbors,
            supervised=options.supervised_map,
        )
    except MissingMapPackage as exc:
        log.warning("no embedding map in the report: %s", exc)
        return []
    return [drawn]


def _study_plots(results: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """The curves of the label-efficiency and robustness studies, when they ran."""
    written = []
    efficiency = results.get("label_efficiency")
    if efficiency is not None:
        rows = efficiency["metrics"]["by_fraction"]
        written.append(
            plot_score_curves(
                {"linear probe": [(row["label_fraction"], 100 * row["top1"]) for row in rows]},
                out_dir / LABEL_EFFICIENCY,
                title="Label efficiency: test top-1 against the fraction of training labels",
                xlabel="fraction of the training labels (log scale)",
                ylabel="test top-1 (%)",
                log_x=True,
            )
        )
    robustness = results.get("robustness")
    if robustness is not None:
        metrics = robustness["metrics"]
        scale, unit = (1.0, "factor MSE") if metrics["metric"] == "mse" else (100.0, "test top-1 (%)")
        clean = scale * metrics[f"clean_{metrics['metric']}"]
        series: dict[str, list[tuple[float, float]]] = {}
        for row in metrics["shifted"]:
            series.setdefault(row["shift"], [(0.0, clean)]).append((row["strength"], scale * row["score"]))
        written.append(
            plot_score_curves(
                series,
                out_dir / ROBUSTNESS,
                title="Robustness: the clean read-out on shifted test data",
                xlabel="shift strength (0: clean)",
                ylabel=unit,
                reference=clean,
            )
        )
    return written


def _confusion_matrix(out_dir: Path, key: str, entry: Mapping[str, Any]) -> list[Path]:
    """The confusion matrix of a classifier's result (kNN: of its first k); none when the result has none."""
    metrics = entry["metrics"]
    blocks = [("", metrics)] if "confusion_matrix" in metrics else []
    blocks += [
        (name, value) for name, value in metrics.items() if isinstance(value, Mapping) and "confusion_matrix" in value
    ]
    if not blocks:
        return []
    name, block = blocks[0]
    title = " ".join(part for part in (_PROTOCOL_NAMES.get(key, key), name) if part)
    matrix = plot_confusion_matrix(
        block["confusion_matrix"],
        block["class_names"],
        out_dir / confusion_matrix_file(key),
        title=f"{title}: confusion matrix (test split)",
    )
    return [matrix]


_PROTOCOL_NAMES = {"linear": "Linear probe", "knn": "kNN", "finetune": "Fine-tuning", "supervised": "Supervised"}


def write_classifier_plots(session: EvalSession, key: str, entry: Mapping[str, Any]) -> list[Path]:
    """What a trained classifier (``finetune``, ``supervised``, ``linear_sgd``, ...) adds to the run's plots
    folder, where the report finds it: its confusion matrix and its per-epoch curves."""
    out_dir = session.ref.eval.plots
    written = _confusion_matrix(out_dir, key, entry)
    history = entry["metrics"].get("history") or []
    if history:
        out = out_dir / LEARNING_CURVES.format(method=key)
        written.append(plot_learning_curves(history, out, title=f"{key}: loss and top-1 per epoch"))
    return written


def write_checkpoint_scan_plot(scan: CheckpointScan, out: Path) -> Path:
    """The scores of every kept backbone against the epochs it trained (``simclr evaluate --checkpoint all``)."""
    return plot_checkpoint_scan(scan.epochs, scan.scores_by_method(), out)
