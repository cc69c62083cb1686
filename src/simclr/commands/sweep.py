"""``simclr sweep SWEEP.yaml``: pretrain and evaluate every cell of a grid of configs, resumable, one GPU per cell.

The file format is in :mod:`simclr.experiments.sweep_grid`, the rules for finished / resumed cells in
:mod:`simclr.experiments.sweep`.
Exit codes: 0 when every cell finished, 1 when any cell failed (the others still ran), 2 for a bad
sweep file, found before anything runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from simclr.commands.common import add_command

EXAMPLES = (
    "simclr sweep simclr-ae --dry-run",
    "simclr sweep simclr-ae --out runs --devices 0,1",
)


def register(commands: Any) -> None:
    parser = add_command(
        commands, "sweep", "run a grid of pretraining configs (+ evaluation); re-running skips finished cells", EXAMPLES
    )
    parser.add_argument(
        "sweep",
        type=Path,
        metavar="SWEEP.yaml",
        help="sweep file (base, grid, cell_overrides, ...) or a shipped sweep's name",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("runs"),
        help="parent folder; cells run in OUT/<name>/<cell-id> (default: runs)",
    )
    parser.add_argument(
        "--devices",
        default=None,
        metavar="0,1",
        help="GPU indices; one cell at a time per GPU, in parallel (default: one cell at a time)",
    )
    parser.add_argument("--dry-run", action="store_true", help="validate and list the cells, run nothing")
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from simclr.experiments.sweep import SweepRunner, parse_devices
    from simclr.experiments.sweep_grid import cell_run_dir, expand_cells, load_sweep, validate_cells
    from simclr.experiments.sweep_results import is_finished
    from simclr.recipes import find_recipe

    devices = parse_devices(args.devices)
    spec = load_sweep(find_recipe(args.sweep, sweeps=True))
    sweep_dir = Path(args.out) / spec.name
    cells = expand_cells(spec)
    validate_cells(cells, sweep_dir)
    finished = [is_finished(cell_run_dir(sweep_dir, cell)) for cell in cells]
    if args.dry_run:
        for cell, done in zip(cells, finished, strict=True):
            print(f"{cell.cell_id}{'  (finished)' if done else ''}")
        print(f"{len(cells)} cells, {sum(finished)} finished; run directories in {sweep_dir}")
        return 0
    outcomes = SweepRunner(spec, sweep_dir, devices, quiet=args.quiet).run(cells)
    failed = [item for item in outcomes if item.error]
    print(f"{len(outcomes) - len(failed)} of {len(cells)} cells finished; results: {sweep_dir / 'results.md'}")
    for item in failed:
        print(f"failed: {item.cell.cell_id}: {item.error}")
    return 1 if failed else 0
