"""``simclr sweep SWEEP.yaml``: pretrain and evaluate every cell of a grid of configs, resumable, one GPU per cell.

The file format is in :mod:`simclr.experiments.sweep_grid`, the rules for finished / resumed cells in
:mod:`simclr.experiments.sweep`.
Exit codes: 0 when every cell finished, 1 when any cell failed (the others still ran), 2 for a bad
sweep file, found before anything runs.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simclr.commands.common import Quiet, add_command
from simclr.settings import add_settings_flags, setting, settings_from_args

EXAMPLES = (
    "simclr sweep simclr-ae --dry-run",
    "simclr sweep simclr-ae --out runs --devices 0,1",
)


@dataclass(kw_only=True)
class SweepSettings(Quiet):
    """The settings of ``simclr sweep``: the sweep file, where its cells run, on which GPUs."""

    sweep: Path = setting(
        "sweep file (base, grid, cell_overrides, ...) or a shipped sweep's name", positional=True, metavar="SWEEP.yaml"
    )
    out: Path = setting("parent folder; cells run in OUT/<name>/<cell-id> (default: runs)", Path("runs"))
    devices: str | None = setting(
        "GPU indices; one cell at a time per GPU, in parallel (default: one cell at a time)", None, metavar="0,1"
    )
    dry_run: bool = setting("validate and list the cells, run nothing", False, switch=True)


def register(commands: Any) -> None:
    parser = add_command(
        commands, "sweep", "run a grid of pretraining configs (+ evaluation); re-running skips finished cells", EXAMPLES
    )
    add_settings_flags(parser, SweepSettings)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from simclr.experiments.sweep import SweepRunner, parse_devices
    from simclr.experiments.sweep_grid import cell_run_dir, expand_cells, load_sweep, validate_cells
    from simclr.experiments.sweep_results import is_finished
    from simclr.recipes import find_recipe

    settings = settings_from_args(SweepSettings, args)
    devices = parse_devices(settings.devices)
    spec = load_sweep(find_recipe(settings.sweep, sweeps=True))
    sweep_dir = Path(settings.out) / spec.name
    cells = expand_cells(spec)
    validate_cells(cells, sweep_dir)
    finished = [is_finished(cell_run_dir(sweep_dir, cell)) for cell in cells]
    if settings.dry_run:
        for cell, done in zip(cells, finished, strict=True):
            print(f"{cell.cell_id}{'  (finished)' if done else ''}")
        print(f"{len(cells)} cells, {sum(finished)} finished; run directories in {sweep_dir}")
        return 0
    outcomes = SweepRunner(spec, sweep_dir, devices, quiet=settings.quiet).run(cells)
    failed = [item for item in outcomes if item.error]
    print(f"{len(outcomes) - len(failed)} of {len(cells)} cells finished; results: {sweep_dir / 'results.md'}")
    for item in failed:
        print(f"failed: {item.cell.cell_id}: {item.error}")
    return 1 if failed else 0
