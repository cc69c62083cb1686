"""Numbers and tables as the HTML report prints them: escaped text, accuracies as percentages, compact protocol
values, and a result's metrics as tables and per-class chips.

Nothing here knows a run directory; :mod:`simclr.reports.html` puts these pieces into the page.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from simclr.rundir import EVAL_METRICS_FILE

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


def escape(value: Any) -> str:
    """``value`` as HTML text (quotes escaped too: safe inside attributes)."""
    return html.escape(str(value), quote=True)


def is_number(value: Any) -> bool:
    """An int or a float, not a bool."""
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
    if isinstance(value, bool) or not is_number(value):
        return str(value)
    if _is_fraction(name):
        return f"{100 * value:.2f}%"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.4g}"


def format_value(value: Any, limit: int = 12) -> str:
    """Protocol and config values, compact: long lists are cut, floats keep 6 significant digits."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, Mapping):
        items = [f"{key}: {format_value(item, limit)}" for key, item in list(value.items())[:limit]]
        more = f", … ({len(value)} entries)" if len(value) > limit else ""
        return "{" + ", ".join(items) + more + "}"
    if isinstance(value, list | tuple):
        items = [format_value(item, limit) for item in value[:limit]]
        more = f", … ({len(value)} items)" if len(value) > limit else ""
        return "[" + ", ".join(items) + more + "]"
    return str(value)


def _column_sort(keys: Iterable[str]) -> list[str]:
    keys = list(dict.fromkeys(keys))
    known = [key for key in _COLUMN_ORDER if key in keys]
    return known + [key for key in keys if key not in _COLUMN_ORDER]


def table(header: Sequence[str], rows: Iterable[Sequence[str]], css: str = "") -> str:
    """A table from already-escaped cell HTML."""
    head = "".join(f"<th>{cell}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def key_value_table(items: Mapping[str, Any], css: str = "kv") -> str:
    """A two-column table of names and compact values (a protocol, a config)."""
    rows = [(f"<code>{escape(key)}</code>", escape(format_value(value))) for key, value in items.items()]
    body = "".join(f"<tr><th>{key}</th><td>{value}</td></tr>" for key, value in rows)
    return f'<table class="{css}"><tbody>{body}</tbody></table>'


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
        fraction = _is_fraction(key) and is_number(value)
        shade = min(max(float(value), 0.0), 1.0) * 0.45 if fraction else 0.0
        text = f"{100 * value:.1f}%" if fraction else format_metric(key, value)
        style = f"background: rgba(37, 99, 235, {shade:.2f})"
        chips.append(f'<span class="chip" style="{style}">{escape(name)} <b>{escape(text)}</b></span>')
    return f'<div class="chips"><div class="label">{escape(title.replace("_", " "))}</div>{"".join(chips)}</div>'


def _sub_table(title: str, groups: Mapping[str, Mapping[str, Any]]) -> str:
    columns = _column_sort(key for group in groups.values() for key in group if _is_scalar(group[key]))
    rows = [
        [escape(name)] + [f'<span class="num">{escape(format_metric(col, group.get(col)))}</span>' for col in columns]
        for name, group in groups.items()
    ]
    header = [escape(title.replace("_", " "))] + [escape(_COLUMN_NAMES.get(col, col)) for col in columns]
    return table(header, rows, "metrics")


def metrics_html(metrics: Mapping[str, Any], matrix_drawn: bool = False) -> str:
    """A result's metrics: a table of its scalars (a row per block), then its per-class numbers and sub-tables;
    ``matrix_drawn`` says whether the confusion matrix is also drawn among the plots."""
    rows: list[tuple[str, dict[str, Any]]] = []
    extras: list[str] = []
    _metric_blocks(metrics, "", rows, extras)
    parts = []
    if rows:
        columns = _column_sort(key for _, scalars in rows for key in scalars)
        labelled = any(label for label, _ in rows)
        header = ([""] if labelled else []) + [escape(_COLUMN_NAMES.get(col, col)) for col in columns]
        body = []
        for label, scalars in rows:
            cells = [f'<span class="num">{escape(format_metric(col, scalars.get(col)))}</span>' for col in columns]
            body.append(([f"<b>{escape(label)}</b>"] if labelled else []) + cells)
        parts.append(table(header, body, "metrics"))
    parts.extend(extras)
    if "confusion_matrix" in metrics or any(
        isinstance(v, Mapping) and "confusion_matrix" in v for v in metrics.values()
    ):
        where = " and drawn in the plots below" if matrix_drawn else ""
        parts.append(f'<p class="note">The confusion matrix is in {EVAL_METRICS_FILE}{where}.</p>')
    return "\n".join(parts) if parts else '<p class="note">no metrics recorded</p>'
