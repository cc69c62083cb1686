"""``simclr report``: one self-contained HTML page for one run, or a comparison of several."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from simclr.commands.common import add_command
from simclr.rundir import EVAL_DIR, REPORT_FILE

EXAMPLES = (
    "simclr report runs/cifar10-resnet18-20261123-101500",
    "simclr report runs/a runs/b runs/c --out comparison.html",
)


def register(commands: Any) -> None:
    parser = add_command(
        commands, "report", "write a self-contained HTML report (metrics, protocols, plots, config) of runs", EXAMPLES
    )
    parser.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR", help="run directories to report on")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="FILE",
        help=f"where to write the HTML (default: RUN_DIR/{EVAL_DIR}/{REPORT_FILE} for one run, "
        "./simclr-report.html for several)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # imported when the command runs, so that 'simclr --help' does not load torch
    from simclr.reports.html import default_report_path, write_report

    out = args.out if args.out is not None else default_report_path(args.run_dirs)
    print(write_report(args.run_dirs, out))
    return 0
