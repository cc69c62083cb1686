"""``simclr report``: one self-contained HTML page for one run, or a comparison of several."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simclr.commands.common import add_command
from simclr.paths import check_output_file
from simclr.rundir import EVAL_DIR, REPORT_FILE
from simclr.settings import add_settings_flags, setting, settings_from_args

EXAMPLES = (
    "simclr report runs/cifar10-resnet18-20261123-101500",
    "simclr report runs/a runs/b runs/c --out comparison.html",
)


@dataclass
class ReportSettings:
    """The settings of ``simclr report``: the runs, and where the page goes."""

    run_dirs: list[Path] = setting("run directories to report on", positional=True, nargs="+", metavar="RUN_DIR")
    out: Path | None = setting(
        f"where to write the HTML (default: RUN_DIR/{EVAL_DIR}/{REPORT_FILE} for one run, ./simclr-report.html for "
        "several)",
        None,
        metavar="FILE",
    )


def register(commands: Any) -> None:
    parser = add_command(
        commands, "report", "write a self-contained HTML report (metrics, protocols, plots, config) of runs", EXAMPLES
    )
    add_settings_flags(parser, ReportSettings)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # imported when the command runs, so that 'simclr --help' does not load torch
    from simclr.reports.html import check_run_dir, default_report_path, write_report

    settings = settings_from_args(ReportSettings, args)
    for run_dir in settings.run_dirs:  # what is read, then where it goes, before the page is built
        check_run_dir(run_dir)
    out = settings.out if settings.out is not None else default_report_path(settings.run_dirs)
    check_output_file(out, overwrite=None, parent_must_exist=False)
    print(write_report(settings.run_dirs, out))
    return 0
