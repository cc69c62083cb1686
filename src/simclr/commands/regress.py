"""``simclr regress``: Spirograph's generative factors regressed from frozen features (Foster et al. 2020)."""

from __future__ import annotations

import argparse
from typing import Any

from simclr.commands.common import add_command, add_run_arguments, session_from_args
from simclr.evaluation.options import RegressOptions
from simclr.settings import add_settings_flags, settings_from_args

EXAMPLES = (
    "simclr regress runs/spirograph-resnet18-20261123-101500",
    "simclr regress RUN_DIR --passes 5   # average the features of 5 fresh renders",
)


def register(commands: Any) -> None:
    parser = add_command(commands, "regress", "Spirograph: linear regression of the 4 generative factors", EXAMPLES)
    add_run_arguments(parser)
    add_settings_flags(parser, RegressOptions)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # imported when the command runs, so that 'simclr --help' does not load torch
    from simclr.evaluation.protocols.regression import run_regression
    from simclr.evaluation.recording import record
    from simclr.evaluation.results import headline

    options = settings_from_args(RegressOptions, args)
    with session_from_args(args) as session:
        entry = run_regression(session, options)
        path = record(session, "regression", entry)
        print(headline("regression", entry))
        print(f"results: {path}")
    return 0
