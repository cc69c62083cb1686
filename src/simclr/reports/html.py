"""One self-contained HTML report for one or several run directories.

The report is a single file: pictures are inlined as base64 ``data:`` URIs, styles and the one small
script are inline, and a Content-Security-Policy forbids every other resource. It can be mailed,
attached to an issue or opened from an archive years later and still shows everything, with no server
and no network.

Every number is printed beside the protocol that produced it (split sizes, seed, backbone hash, the
classifier's settings), read from ``RUN_DIR/eval/metrics.json`` (see :mod:`simclr.evaluation.results`),
so two runs are never compared without seeing how each was measured.
"""

from __future__ import annotations

import base64
import html
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from simclr.atomic import write_text_atomic
from simclr.errors import UserError
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
)
from simclr.rundir import CONFIG_FILE, EVAL_METRICS_FILE, METRICS_FILE, RunDir
from simclr.version import __version__

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
_FRACTION_KEYS = {
    "top1",
    "top5",
    "macro_f1",
    "weighted_f1",
    "accuracy",
    "balanced_accuracy",
    "precision",
    "recall",
    "f1",
}
_COLUMN_ORDER = ("top1", "top5", "macro_f1", "weighted_f1", "mse", "r2", "n_test")
_COLUMN_NAMES = {
    "top1": "top-1",
    "top5": "top-5",
    "macro_f1": "macro F1",
    "weighted_f1": "weighted F1",
    "mse": "MSE",
    "r2": "R²",
    "n_test": "test images",
}
_NOT_TABULATED = {"confusion_matrix", "class_names"}
_CHIP_THRESHOLD = 12


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
    parts = [_page_header(runs)]
    if len(runs) > 1:
        parts.append(_comparison(runs))
    parts.extend(_run_section(run) for run in runs)
    parts.append(_PAGE_END)
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
    from simclr.evaluation.results import read_metrics
    from simclr.settings import read_yaml

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
    from simclr.reports.plots import plot_training_curves

    with tempfile.TemporaryDirectory(prefix="simclr-report-") as scratch:
        try:
            path = plot_training_curves(metrics_csv, Path(scratch) / TRAINING_CURVES)
        except UserError:  # matplotlib not installed: the report simply has no curves
            return None
        return path.read_bytes() if path is not None else None


# ---------------------------------------------------------------------------------------------------
# Formatting


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _is_fraction(name: str) -> bool:
    """Accuracies and F1 scores are stored as fractions and read as percentages."""
    name = name.lower()
    return name in _FRACTION_KEYS or name.endswith(("_acc", "accuracy", "top1", "top5", "_f1"))


def format_metric(name: str, value: Any) -> str:
    """``top1`` 0.6123 -> ``61.23%``; ``mse`` 0.0123 -> ``0.0123``; missing (None) -> an em dash."""
    if value is None:
        return "—"
    if isinstance(value, bool) or not _is_number(value):
        return str(value)
    if _is_fraction(name):
        return f"{100 * value:.2f}%"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.4g}"


def _format_value(value: Any, limit: int = 12) -> str:
    """Protocol and config values, compact: long lists are cut, floats keep 6 significant digits."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, Mapping):
        items = [f"{key}: {_format_value(item, limit)}" for key, item in list(value.items())[:limit]]
        more = f", … ({len(value)} entries)" if len(value) > limit else ""
        return "{" + ", ".join(items) + more + "}"
    if isinstance(value, list | tuple):
        items = [_format_value(item, limit) for item in value[:limit]]
        more = f", … ({len(value)} items)" if len(value) > limit else ""
        return "[" + ", ".join(items) + more + "]"
    return str(value)


def _column_sort(keys: Iterable[str]) -> list[str]:
    keys = list(dict.fromkeys(keys))
    known = [key for key in _COLUMN_ORDER if key in keys]
    return known + [key for key in keys if key not in _COLUMN_ORDER]


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], css: str = "") -> str:
    """A table from already-escaped cell HTML."""
    head = "".join(f"<th>{cell}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _key_value_table(items: Mapping[str, Any], css: str = "kv") -> str:
    rows = [(f"<code>{_e(key)}</code>", _e(_format_value(value))) for key, value in items.items()]
    body = "".join(f"<tr><th>{key}</th><td>{value}</td></tr>" for key, value in rows)
    return f'<table class="{css}"><tbody>{body}</tbody></table>'


# ---------------------------------------------------------------------------------------------------
# Metrics of one result


def _metric_blocks(
    metrics: Mapping[str, Any], label: str, rows: list[tuple[str, dict[str, Any]]], extras: list[str]
) -> None:
    """Split a metrics mapping into table rows of scalars and separate pieces for the rest.

    Scalars of a mapping form one row (``label`` names it: "" at the top, "k200" for a kNN block);
    a nested mapping of scalars becomes its own row, unless it is per-class (shown as chips); a
    mapping of mappings (regression's ``per_factor``) becomes its own table. The confusion matrix
    is left to its picture. Unknown keys follow the same rules, so new metrics show up by themselves.
    """
    scalars = {key: value for key, value in metrics.items() if _is_scalar(value) and key not in _NOT_TABULATED}
    if scalars:
        rows.append((label, scalars))
    for key, value in metrics.items():
        if not isinstance(value, Mapping) or key in _NOT_TABULATED:
            continue
        name = f"{label} {key}".strip()
        if (
            value
            and all(_is_scalar(item) for item in value.values())
            and (key.startswith("per_class") or len(value) > _CHIP_THRESHOLD)
        ):
            extras.append(_chips(name, key, value))
        elif value and all(isinstance(item, Mapping) for item in value.values()):
            extras.append(_sub_table(name, value))
        else:
            _metric_blocks(value, name, rows, extras)


def _chips(title: str, key: str, values: Mapping[str, Any]) -> str:
    """Per-class numbers as small shaded chips: 100 classes fit in a few lines and weak ones stand out."""
    chips = []
    for name, value in values.items():
        fraction = _is_fraction(key) and _is_number(value)
        shade = min(max(float(value), 0.0), 1.0) * 0.45 if fraction else 0.0
        text = f"{100 * value:.1f}%" if fraction else format_metric(key, value)
        chips.append(
            f'<span class="chip" style="background: rgba(37, 99, 235, {shade:.2f})">{_e(name)} <b>{_e(text)}</b></span>'
        )
    return f'<div class="chips"><div class="label">{_e(title.replace("_", " "))}</div>{"".join(chips)}</div>'


def _sub_table(title: str, groups: Mapping[str, Mapping[str, Any]]) -> str:
    columns = _column_sort(key for group in groups.values() for key in group if _is_scalar(group[key]))
    rows = [
        [_e(name)] + [f'<span class="num">{_e(format_metric(col, group.get(col)))}</span>' for col in columns]
        for name, group in groups.items()
    ]
    header = [_e(title.replace("_", " "))] + [_e(_COLUMN_NAMES.get(col, col)) for col in columns]
    return _table(header, rows, "metrics")


def _metrics_html(metrics: Mapping[str, Any], matrix_drawn: bool = False) -> str:
    rows: list[tuple[str, dict[str, Any]]] = []
    extras: list[str] = []
    _metric_blocks(metrics, "", rows, extras)
    parts = []
    if rows:
        columns = _column_sort(key for _, scalars in rows for key in scalars)
        labelled = any(label for label, _ in rows)
        header = ([""] if labelled else []) + [_e(_COLUMN_NAMES.get(col, col)) for col in columns]
        body = []
        for label, scalars in rows:
            cells = [f'<span class="num">{_e(format_metric(col, scalars.get(col)))}</span>' for col in columns]
            body.append(([f"<b>{_e(label)}</b>"] if labelled else []) + cells)
        parts.append(_table(header, body, "metrics"))
    parts.extend(extras)
    if "confusion_matrix" in metrics or any(
        isinstance(v, Mapping) and "confusion_matrix" in v for v in metrics.values()
    ):
        where = " and drawn in the plots below" if matrix_drawn else ""
        parts.append(f'<p class="note">The confusion matrix is in {EVAL_METRICS_FILE}{where}.</p>')
    return "\n".join(parts) if parts else '<p class="note">no metrics recorded</p>'


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
    header = ["run", "dataset", "backbone", "epochs", "global step"] + [_e(column.title) for column in columns]
    rows = []
    for run, row in zip(runs, cells, strict=True):
        facts = _run_facts(run)
        line = [
            f'<a href="#{run.anchor}">{_e(run.name)}</a>'
            + ("" if run.metrics else ' <span class="warn">not evaluated</span>'),
            _e(facts["dataset"]),
            _e(facts["backbone"]),
            f'<span class="num">{_e(facts["epochs"])}</span>',
            f'<span class="num">{_e(facts["step"])}</span>',
        ]
        for index, (value, text) in enumerate(row):
            cell = f'<span class="num">{_e(text)}</span>'
            line.append(f"<b>{cell}</b>" if value is not None and value == best[index] else cell)
        rows.append(line)
    note = (
        "Headline numbers on each run's test split; the best of each column is bold. "
        "Each run's section below gives the full metrics and the protocol behind every number."
    )
    return (
        f'<section class="comparison"><h2>Comparison of {len(runs)} runs</h2>'
        f'{_table(header, rows, "metrics comparison")}<p class="note">{_e(note)}</p></section>'
    )


# ---------------------------------------------------------------------------------------------------
# One run


def _run_summary(run: _Run) -> str:
    doc = run.metrics or {}
    lines = []
    dataset = doc.get("dataset")
    if isinstance(dataset, Mapping):
        lines.append(f"<tr><th>dataset</th><td>{_e(_format_value(dict(dataset)))}</td></tr>")
    backbone = doc.get("backbone")
    if isinstance(backbone, Mapping):
        lines.append(f"<tr><th>backbone</th><td>{_e(_format_value(dict(backbone)))}</td></tr>")
    return f'<table class="kv">{"".join(lines)}</table>' if lines else ""


def _result_section(key: str, entry: Mapping[str, Any], plot_files: frozenset[str] = frozenset()) -> str:
    """One protocol's results; its confusion matrix is said to be drawn only where a picture of it exists
    (``simclr evaluate`` draws the linear probe's)."""
    title = _method_title(key)
    method = entry.get("method", key)
    meta = []
    if entry.get("created"):
        meta.append(f"evaluated {entry['created']}")
    if _is_number(entry.get("seconds")):
        meta.append(f"in {entry['seconds']:.1f} s")
    if method != key:
        meta.append(f"method {method}")
    metrics = entry.get("metrics")
    protocol = entry.get("protocol")
    matrix_drawn = confusion_matrix_file(key) in plot_files
    return (
        f'<div class="result"><h3>{_e(title)} <span class="meta">{_e(", ".join(meta))}</span></h3>'
        f"{_metrics_html(metrics if isinstance(metrics, Mapping) else {}, matrix_drawn)}"
        f'<div class="protocol"><div class="label">protocol</div>'
        f"{_key_value_table(protocol) if isinstance(protocol, Mapping) else '<p class=note>not recorded</p>'}"
        f"</div></div>"
    )


def _plots_html(run: _Run) -> str:
    if not run.plots:
        return ""
    figures = []
    for caption, data in run.plots:
        uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        figures.append(f'<figure><img src="{uri}" alt="{_e(caption)}"><figcaption>{_e(caption)}</figcaption></figure>')
    return "<h3>Plots</h3>" + "".join(figures)


def _config_html(config: Mapping[str, Any]) -> str:
    items = "".join(
        f"<div><dt>{_e(key)}</dt><dd>{_e(_format_value(value))}</dd></div>" for key, value in config.items()
    )
    return f'<h3>Config <span class="meta">{CONFIG_FILE}</span></h3><dl class="config">{items}</dl>'


def _run_section(run: _Run) -> str:
    parts = [
        f'<section class="run" id="{run.anchor}"><h2>{_e(run.name)}</h2>',
        f'<p class="meta">run directory <code>{_e(run.path)}</code></p>',
    ]
    if run.metrics is None:
        parts.append(f'<p class="warn-box">not evaluated yet: run <code>simclr evaluate {_e(run.path)}</code></p>')
    else:
        parts.append(_run_summary(run))
        results = run.metrics.get("results", {})
        ordered = sorted(results, key=_method_order)
        if not ordered:
            command = f"<code>simclr evaluate {_e(run.path)}</code>"
            parts.append(f'<p class="warn-box">{EVAL_METRICS_FILE} holds no result yet: run {command}</p>')
        parts.extend(
            _result_section(key, results[key], run.plot_files) for key in ordered if isinstance(results[key], Mapping)
        )
    parts.append(_plots_html(run))
    parts.append(_config_html(run.config))
    parts.append("</section>")
    return "\n".join(parts)


def _page_header(runs: Sequence[_Run]) -> str:
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    title = f"simclr report: {runs[0].name}" if len(runs) == 1 else f"simclr report: {len(runs)} runs"
    return _PAGE_START.format(title=_e(title), css=_CSS, script=_SCRIPT) + (
        f'<header><h1>{_e(title)}</h1><p class="meta">generated {_e(created)} by simclr {_e(__version__)}</p></header>'
    )


# No resource outside this file may load: the CSP enforces that the report is self-contained.
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"

_PAGE_START = (
    '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
    f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
    '<meta name="viewport" content="width=device-width, initial-scale=1">'
    "<title>{title}</title><style>{css}</style><script>{script}</script></head><body>"
)
_PAGE_END = "</body></html>\n"

# After load, record on <body> how many pictures there are and how many decoded, so a headless
# browser test can read from the DOM that every inlined image renders.
_SCRIPT = """
window.addEventListener("load", function () {
  var images = document.images, loaded = 0;
  for (var i = 0; i < images.length; i++) {
    if (images[i].complete && images[i].naturalWidth > 0) { loaded++; }
  }
  document.body.setAttribute("data-images-total", String(images.length));
  document.body.setAttribute("data-images-loaded", String(loaded));
});
"""

_CSS = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: #1f2328; background: #fff; max-width: 1150px; margin: 0 auto; padding: 16px 24px 64px; }
h1 { font-size: 26px; margin: 8px 0 0; }
h2 { font-size: 21px; margin: 36px 0 4px; padding-bottom: 4px; border-bottom: 2px solid #d0d7de; }
h3 { font-size: 17px; margin: 22px 0 6px; }
code { font: 13px ui-monospace, "DejaVu Sans Mono", monospace; background: #f3f4f6; padding: 1px 4px;
       border-radius: 3px; word-break: break-all; }
.meta { color: #59636e; font-size: 13px; font-weight: normal; margin: 2px 0; }
.note { color: #59636e; font-size: 13px; }
.warn { color: #9a6700; font-size: 12px; }
.warn-box { background: #fff8c5; border: 1px solid #d4a72c; border-radius: 6px; padding: 8px 12px; }
table { border-collapse: collapse; margin: 6px 0 10px; font-size: 14px; }
th, td { border: 1px solid #d0d7de; padding: 4px 9px; text-align: left; vertical-align: top; }
thead th { background: #f6f8fa; }
table.kv { font-size: 13px; width: 100%; }
table.kv th { background: #f6f8fa; white-space: nowrap; width: 1%; }
table.kv td { word-break: break-word; }
.num { font-variant-numeric: tabular-nums; white-space: nowrap; display: block; text-align: right; }
table.comparison { width: 100%; }
.result { border: 1px solid #d0d7de; border-radius: 6px; padding: 4px 14px 8px; margin: 12px 0; }
.protocol .label, .chips .label { font-size: 12px; text-transform: uppercase; letter-spacing: .05em;
                                  color: #59636e; margin-top: 6px; }
.chips { margin: 6px 0; }
.chip { display: inline-block; font-size: 12px; border: 1px solid #d0d7de; border-radius: 10px;
        padding: 0 7px; margin: 2px 3px 2px 0; }
figure { margin: 12px 0 20px; }
figure img { max-width: 100%; height: auto; border: 1px solid #d0d7de; display: block; }
figcaption { color: #59636e; font-size: 13px; margin-top: 4px; }
dl.config { display: grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)); gap: 0;
            font-size: 13px; margin: 6px 0; border-top: 1px solid #d0d7de; border-left: 1px solid #d0d7de; }
dl.config div { display: flex; gap: 8px; padding: 2px 8px; border-right: 1px solid #d0d7de;
                border-bottom: 1px solid #d0d7de; }
dl.config dt { color: #59636e; }
dl.config dd { margin: 0; font-weight: 600; word-break: break-word; }
"""
