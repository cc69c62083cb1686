"""Matplotlib figures for simclr's PNGs (evaluation plots, autoencoder reconstructions).

Every figure gets its own Agg canvas, so drawing needs no display and never switches the global
backend of a user's notebook; files are written atomically so a reader never sees half a PNG.
matplotlib is a core dependency (``simclr evaluate``'s default report has pictures), imported only when a figure
is made so that ``import simclr`` and ``simclr --help`` stay light.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from simclr.atomic import atomic_write

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 100


def new_figure(width: float, height: float) -> Figure:
    """A figure of ``width`` x ``height`` inches on an Agg canvas."""
    # imported when a figure is made, so that `import simclr` and `simclr --help` stay light
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Figure, out: Path) -> Path:
    """Write ``figure`` to ``out`` as PNG (through :func:`~simclr.atomic.atomic_write`) and return ``out``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as tmp:
        figure.savefig(tmp, format="png", dpi=DPI, facecolor="white")
    return out
