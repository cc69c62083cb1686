"""``simclr supervised``: the supervised baseline, the run's architecture trained on the labels from random
initialisation (``--weights none``) or from torchvision's ImageNet weights."""

from __future__ import annotations

import argparse
from typing import Any

from simclr.commands.common import add_command, add_run_arguments, session_from_args
from simclr.evaluation.options import SupervisedOptions
from simclr.progress import show_progress
from simclr.settings import add_settings_flags, settings_from_args

EXAMPLES = (
    "simclr supervised runs/cifar10-resnet18-20261123-101500 --label-fraction 0.1",
    "simclr supervised RUN_DIR --weights imagenet --epochs 10",
)


def register(commands: Any) -> None:
    parser = add_command(
        commands, "supervised", "supervised baseline: the run's architecture trained on the labels", EXAMPLES
    )
    add_run_arguments(parser)
    add_settings_flags(parser, SupervisedOptions)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # imported when the command runs, so that 'simclr --help' does not load torch
    from simclr.evaluation.classifiers.supervised import run_supervised
    from simclr.evaluation.recording import record
    from simclr.evaluation.results import headline
    from simclr.reports.eval_plots import write_classifier_plots

    options = settings_from_args(SupervisedOptions, args)
    show_progress()
    with session_from_args(args) as session:
        key, entry = run_supervised(session, options)
        path = record(session, key, entry)
        write_classifier_plots(session, key, entry)
        print(headline(key, entry))
        print(f"results: {path}")
    return 0
