"""A run's metrics file (``metrics.csv``): fixed columns, one row appended per step or epoch.

Pretraining (:class:`~simclr.training.callbacks.MetricsCSV`) and ``simclr train-ae`` write through it, so both
files are read the same way: a header, then rows whose numbers are written with 6 significant digits and
whose missing or NaN values are empty cells.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from simclr.atomic import atomic_write


class MetricsFile:
    """The CSV file at ``path`` with ``columns``; values of other names are left out."""

    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        self.path = path
        self.columns = tuple(columns)

    def start(self, keep: Callable[[dict[str, str]], bool] | None = None) -> None:
        """(Re)write the file as its header followed by the rows already in it that ``keep`` accepts (none
        without ``keep``), atomically: a resumed run drops the rows its killed session wrote after the
        checkpoint it continues from, and a reader never sees the file half rewritten."""
        kept: list[dict[str, str]] = []
        if keep is not None and self.path.exists():
            with open(self.path, newline="") as handle:
                kept = [row for row in csv.DictReader(handle) if keep(row)]
        with atomic_write(self.path) as tmp, open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.columns, restval="", extrasaction="ignore")
            writer.writeheader()
            writer.writerows(kept)

    def append(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Add ``rows`` at the end of the file."""
        with open(self.path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.columns, restval="", extrasaction="ignore")
            writer.writerows({key: _format(value) for key, value in row.items()} for row in rows)


def _format(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return str(value)
