"""``simclr finetune``: fine-tune the run's backbone with a classification head on a label subset."""

from __future__ import annotations

import argparse
from typing import Any

from simclr.commands.common import add_command, add_run_arguments, session_from_args
from simclr.evaluation.options import FinetuneOptions
from simclr.progress import show_progress
from simclr.settings import add_settings_flags, settings_from_args

EXAMPLES = (
    "simclr finetune runs/cifar10-resnet18-20261123-101500 --label-fraction 0.1",
    "simclr finetune RUN_DIR --labels-per-class 100 --freeze-backbone --head linear",
)


def register(commands: Any) -> None:
    parser = add_command(
        commands, "finetune", "fine-tune the backbone with a classification head on (a subset of) the labels", EXAMPLES
    )
    add_run_arguments(parser)
    add_settings_flags(parser, FinetuneOptions)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # imported when the command runs, so that 'simclr --help' does not load torch
    from simclr.evaluation.classifiers.finetune import run_finetune
    from simclr.evaluation.recording import record
    from simclr.evaluation.results import headline
    from simclr.reports.eval_plots import write_classifier_plots

    options = settings_from_args(FinetuneOptions, args)
    show_progress()
    with session_from_args(args) as session:
        entry = run_finetune(session, options)
        path = record(session, "finetune", entry)
        write_classifier_plots(session, "finetune", entry)
        print(headline("finetune", entry))
        print(f"results: {path}")
    return 0
