"""One self-contained HTML report for one or several run directories.

The report is a single file: pictures are inlined as base64 ``data:`` URIs, styles and the one small
script are inline, and a Content-Security-Policy forbids every other resource. It can be mailed,
attached to an issue or opened from an archive years later and still shows everything, with no server
and no network.

Every number is printed beside the protocol that produced it (split sizes, seed, backbone hash, the
classifier's settings), read from ``RUN_DIR/eval/metrics.json`` (see :mod:`simclr.evaluation.results`),
so two runs are never compared without seeing how each was measured.

This module reads the runs and lays out their sections and the comparison; the page's frame (head, styles,
script) is :mod:`simclr.reports.html_page`, and numbers and tables are :mod:`simclr.reports.html_tables`.
"""

from __future__ import annotations

import base64
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simclr.atomic import write_text_atomic
from simclr.errors import UserError
from simclr.evaluation.results import read_metrics
from simclr.reports.html_page import PAGE_END, page_start
from simclr.reports.html_tables import (
    escape,
    format_metric,
    format_value,
    is_number,
    key_value_table,
    metrics_html,
    table,
)
from simclr.reports.plots import (
    AUGMENTED_VIEWS,
    CONFUSION_MATRIX,
    CONFUSION_MATRIX_OF,
    EMBEDDING_TSNE,
    EMBEDDING_UMAP,
    LABEL_EFFICIENCY,
    LEARNING_CURVES,
    ROBUSTNESS,
    TRAINING_CURVES,
    confusion_matrix_file,
    plot_training_curves,
)
from simclr.rundir import CONFIG_FILE, EVAL_METRICS_FILE, METRICS_FILE, RunDir
from simclr.settings import read_yaml

COMPARISON_REPORT_FILE = "simclr-report.html"  # several runs: the report belongs to none of them

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PLOT_CAPTIONS = {
    TRAINING_CURVES: f"Pretraining curves (from {METRICS_FILE})",
    CONFUSION_MATRIX: "Linear probe: confusion matrix on the test split",
    EMBEDDING_TSNE: "t-SNE map of the test embeddings",
    EMBEDDING_UMAP: "UMAP map of the test embeddings",
    AUGMENTED_VIEWS: "Augmented views used for pretraining",
    LABEL_EFFICIENCY: "Label efficiency: linear probe top-1 against the fraction of training labels",
    ROBUSTNESS: "Robustness: the clean linear read-out on shifted test images "
    "(Spirograph: the test factors rendered with shifted nuisance parameters)",
    **{
        CONFUSION_MATRIX_OF.format(method=method): f"{name}: confusion matrix on the test split"
        for method, name in (
            ("knn", "kNN"),
            ("finetune", "Fine-tuning"),
            ("supervised", "Supervised baseline"),
            ("linear_sgd", "SGD linear probe"),
        )
    },
    **{
        LEARNING_CURVES.format(method=method): f"{name}: loss and top-1 per epoch (train and validation)"
        for method, name in (
            ("finetune", "Fine-tuning"),
            ("supervised", "Supervised baseline"),
            ("linear_sgd", "SGD linear probe"),
        )
    },
}
_METHOD_ORDER = ("linear", "knn", "regression", "finetune", "supervised")
_METHOD_NAMES = {
    "linear": "linear probe",
    "knn": "kNN",
    "regression": "linear regression",
    "finetune": "fine-tune",
    "supervised": "supervised",
}


def check_run_dir(run_dir: Path) -> Path:
    """``run_dir`` when it is a simclr run directory, else a UserError that says what to pass instead."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir} is not a directory; pass the run directory written by simclr pretrain")
    if not RunDir(run_dir).holds_run():
        raise UserError(f"{run_dir} has no {CONFIG_FILE}; pass the run directory written by simclr pretrain")
    return run_dir


def default_report_path(run_dirs: Sequence[Path]) -> Path:
    """A single run keeps its report with its results; a comparison of runs belongs to none of them."""
    if len(run_dirs) == 1:
        return RunDir(Path(run_dirs[0])).eval.report
    return Path(COMPARISON_REPORT_FILE)


def write_report(run_dirs: Sequence[Path], out: Path) -> Path:
    """Write the report of ``run_dirs`` to ``out`` atomically and return ``out``.

    The whole page is built before anything is written, so a bad run directory or a corrupt
    ``metrics.json`` (both UserErrors) leaves no file behind, and a reader never sees half a report.
    """
    page = render_report(run_dirs)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, page)
    return out


def render_report(run_dirs: Sequence[Path]) -> str:
    """The report page as a string (what :func:`write_report` writes)."""
    if not run_dirs:
        raise UserError("no run directory given; pass at least one RUN_DIR")
    runs = [_load_run(check_run_dir(Path(path)), index) for index, path in enumerate(run_dirs)]
    title = f"simclr report: {runs[0].name}" if len(runs) == 1 else f"simclr report: {len(runs)} runs"
    parts = [page_start(title)]
    if len(runs) > 1:
        parts.append(_comparison(runs))
    parts.extend(_run_section(run) for run in runs)
    parts.append(PAGE_END)
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------------
# Reading a run


@dataclass
class _Run:
    path: Path
    anchor: str
    config: dict[str, Any]
    metrics: dict[str, Any] | None
    plots: list[tuple[str, bytes]] = field(default_factory=list)
    plot_files: frozenset[str] = frozenset()  # names of the pictures found in the run's plots folder

    @property
    def name(self) -> str:
        return self.path.resolve().name or str(self.path)


def _load_run(run_dir: Path, index: int) -> _Run:
    run = RunDir(run_dir)
    folder = run.eval.plots
    return _Run(
        path=run_dir,
        anchor=f"run-{index + 1}",
        config=read_yaml(run.config),
        metrics=read_metrics(run.eval),
        plots=_collect_plots(run),
        plot_files=frozenset(path.name for path in folder.glob("*.png")) if folder.is_dir() else frozenset(),
    )


def _plot_order(path: Path) -> tuple[int, str]:
    known = list(_PLOT_CAPTIONS)
    return (known.index(path.name) if path.name in known else len(known), path.name)


def _collect_plots(run: RunDir) -> list[tuple[str, bytes]]:
    """``(caption, png bytes)`` of every PNG in the run's plots folder, known ones first; curves drawn if absent."""
    plots: list[tuple[str, bytes]] = []
    folder = run.eval.plots
    files = sorted(folder.glob("*.png"), key=_plot_order) if folder.is_dir() else []
    for path in files:
        data = path.read_bytes()
        if data.startswith(_PNG_SIGNATURE):
            plots.append((_PLOT_CAPTIONS.get(path.name, path.stem.replace("_", " ")), data))
    if not any(path.name == TRAINING_CURVES for path in files):
        curves = _draw_training_curves(run.metrics)
        if curves is not None:
            plots.insert(0, (_PLOT_CAPTIONS[TRAINING_CURVES] + ", drawn by simclr report", curves))
    return plots


def _draw_training_curves(metrics_csv: Path) -> bytes | None:
    """Curves of a run that was never evaluated, drawn in a scratch folder: the run dir is not touched."""
    if not metrics_csv.is_file():
        return None
    with tempfile.TemporaryDirectory(prefix="simclr-report-") as scratch:
        try:
            path = plot_training_curves(metrics_csv, Path(scratch) / TRAINING_CURVES)
        except UserError:  # an unreadable metrics.csv: the report simply has no curves
            return None
        return path.read_bytes() if path is not None else None


# ---------------------------------------------------------------------------------------------------
# Comparison of runs


@dataclass(frozen=True)
class _Column:
    """One headline number: ``results[method].metrics[block][metric]`` (``block`` None: top level)."""

    title: str
    method: str
    metric: str
    block: str | None = None
    better: str = "max"

    def cell(self, doc: Mapping[str, Any] | None) -> tuple[float | None, str]:
        metrics = _result_metrics(doc, self.method) or {}
        if self.block is not None:
            block = metrics.get(self.block)
            metrics = block if isinstance(block, Mapping) else {}
        value = metrics.get(self.metric)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None, "—"
        return float(value), format_metric(self.metric, value)


def _method_title(key: str) -> str:
    return _METHOD_NAMES.get(key, key)


def _method_order(key: str) -> tuple[int, str]:
    return (_METHOD_ORDER.index(key) if key in _METHOD_ORDER else len(_METHOD_ORDER), key)


def _result_metrics(doc: Mapping[str, Any] | None, key: str) -> Mapping[str, Any] | None:
    results = doc.get("results") if doc else None
    entry = results.get(key) if isinstance(results, Mapping) else None
    metrics = entry.get("metrics") if isinstance(entry, Mapping) else None
    return metrics if isinstance(metrics, Mapping) else None


def _headline_columns(docs: Sequence[Mapping[str, Any] | None]) -> list[_Column]:
    """The numbers that matter per method present in any run: top-1, kNN top-1 at one k, MSE and R²."""
    keys = sorted({key for doc in docs if doc for key in doc.get("results", {})}, key=_method_order)
    columns: list[_Column] = []
    for key in keys:
        found = [metrics for metrics in (_result_metrics(doc, key) for doc in docs) if metrics is not None]
        title = _method_title(key)
        if any("top1" in metrics for metrics in found):
            columns.append(_Column(f"{title} top-1", key, "top1"))
        k_blocks = sorted(
            {
                name
                for metrics in found
                for name, block in metrics.items()
                if re.fullmatch(r"k\d+", name) and isinstance(block, Mapping) and "top1" in block
            },
            key=lambda name: int(name[1:]),
        )
        if k_blocks:
            chosen = "k200" if "k200" in k_blocks else k_blocks[-1]
            columns.append(_Column(f"{title} top-1 (k={chosen[1:]})", key, "top1", block=chosen))
        if any("mse" in metrics for metrics in found):
            columns.append(_Column(f"{title} MSE", key, "mse", better="min"))
        if any("r2" in metrics for metrics in found):
            columns.append(_Column(f"{title} R²", key, "r2"))
    return columns


def _run_facts(run: _Run) -> dict[str, str]:
    """Dataset, backbone, epochs and step of a run, from metrics.json where evaluated, else its config."""
    doc = run.metrics or {}
    dataset: Mapping[str, Any] = doc["dataset"] if isinstance(doc.get("dataset"), Mapping) else {}
    backbone: Mapping[str, Any] = doc["backbone"] if isinstance(doc.get("backbone"), Mapping) else {}
    name = backbone.get("name") or run.config.get("backbone", "?")
    stem = backbone.get("stem") or run.config.get("stem")
    return {
        "dataset": str(dataset.get("name") or run.config.get("dataset", "?")),
        "backbone": f"{name} ({stem} stem)" if stem else str(name),
        "epochs": str(run.config.get("epochs", "—")),
        "step": str(backbone.get("global_step", "—")),
    }


def _comparison(runs: Sequence[_Run]) -> str:
    columns = _headline_columns([run.metrics for run in runs])
    cells = [[column.cell(run.metrics) for column in columns] for run in runs]
    best: list[float | None] = []
    for index, column in enumerate(columns):
        values = [value for value in (row[index][0] for row in cells) if value is not None]
        best.append((max(values) if column.better == "max" else min(values)) if len(values) > 1 else None)
    header = ["run", "dataset", "backbone", "epochs", "global step"] + [escape(column.title) for column in columns]
    rows = []
    for run, row in zip(runs, cells, strict=True):
        facts = _run_facts(run)
        line = [
            f'<a href="#{run.anchor}">{escape(run.name)}</a>'
            + ("" if run.metrics else ' <span class="warn">not evaluated</span>'),
            escape(facts["dataset"]),
            escape(facts["backbone"]),
            f'<span class="num">{escape(facts["epochs"])}</span>',
            f'<span class="num">{escape(facts["step"])}</span>',
        ]
        for index, (value, text) in enumerate(row):
            cell = f'<span class="num">{escape(text)}</span>'
            line.append(f"<b>{cell}</b>" if value is not None and value == best[index] else cell)
        rows.append(line)
    note = (
        "Headline numbers on each run's test split; the best of each column is bold. "
        "Each run's section below gives the full metrics and the protocol behind every number."
    )
    return (
        f'<section class="comparison"><h2>Comparison of {len(runs)} runs</h2>'
        f'{table(header, rows, "metrics comparison")}<p class="note">{escape(note)}</p></section>'
    )


# ---------------------------------------------------------------------------------------------------
# One run


def _run_summary(run: _Run) -> str:
    doc = run.metrics or {}
    lines = []
    dataset = doc.get("dataset")
    if isinstance(dataset, Mapping):
        lines.append(f"<tr><th>dataset</th><td>{escape(format_value(dict(dataset)))}</td></tr>")
    backbone = doc.get("backbone")
    if isinstance(backbone, Mapping):
        lines.append(f"<tr><th>backbone</th><td>{escape(format_value(dict(backbone)))}</td></tr>")
    return f'<table class="kv">{"".join(lines)}</table>' if lines else ""


def _result_section(key: str, entry: Mapping[str, Any], plot_files: frozenset[str] = frozenset()) -> str:
    """One protocol's results; its confusion matrix is said to be drawn only where a picture of it exists
    (``simclr evaluate`` draws the linear probe's)."""
    title = _method_title(key)
    method = entry.get("method", key)
    meta = []
    if entry.get("created"):
        meta.append(f"evaluated {entry['created']}")
    if is_number(entry.get("seconds")):
        meta.append(f"in {entry['seconds']:.1f} s")
    if method != key:
        meta.append(f"method {method}")
    metrics = entry.get("metrics")
    protocol = entry.get("protocol")
    matrix_drawn = confusion_matrix_file(key) in plot_files
    return (
        f'<div class="result"><h3>{escape(title)} <span class="meta">{escape(", ".join(meta))}</span></h3>'
        f"{metrics_html(metrics if isinstance(metrics, Mapping) else {}, matrix_drawn)}"
        f'<div class="protocol"><div class="label">protocol</div>'
        f"{key_value_table(protocol) if isinstance(protocol, Mapping) else '<p class=note>not recorded</p>'}"
        f"</div></div>"
    )


def _plots_html(run: _Run) -> str:
    if not run.plots:
        return ""
    figures = []
    for caption, data in run.plots:
        uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        figures.append(
            f'<figure><img src="{uri}" alt="{escape(caption)}"><figcaption>{escape(caption)}</figcaption></figure>'
        )
    return "<h3>Plots</h3>" + "".join(figures)


def _config_html(config: Mapping[str, Any]) -> str:
    items = "".join(
        f"<div><dt>{escape(key)}</dt><dd>{escape(format_value(value))}</dd></div>" for key, value in config.items()
    )
    return f'<h3>Config <span class="meta">{CONFIG_FILE}</span></h3><dl class="config">{items}</dl>'


def _run_section(run: _Run) -> str:
    parts = [
        f'<section class="run" id="{run.anchor}"><h2>{escape(run.name)}</h2>',
        f'<p class="meta">run directory <code>{escape(run.path)}</code></p>',
    ]
    if run.metrics is None:
        parts.append(f'<p class="warn-box">not evaluated yet: run <code>simclr evaluate {escape(run.path)}</code></p>')
    else:
        parts.append(_run_summary(run))
        results = run.metrics.get("results", {})
        ordered = sorted(results, key=_method_order)
        if not ordered:
            command = f"<code>simclr evaluate {escape(run.path)}</code>"
            parts.append(f'<p class="warn-box">{EVAL_METRICS_FILE} holds no result yet: run {command}</p>')
        parts.extend(
            _result_section(key, results[key], run.plot_files) for key in ordered if isinstance(results[key], Mapping)
        )
    parts.append(_plots_html(run))
    parts.append(_config_html(run.config))
    parts.append("</section>")
    return "\n".join(parts)
