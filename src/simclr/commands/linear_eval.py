"""``simclr linear-eval``: a linear classifier on frozen features (L-BFGS), or by SGD with augmentation."""

from __future__ import annotations

import argparse
from typing import Any

from simclr.commands.common import add_command, add_run_arguments, session_from_args
from simclr.evaluation.options import LinearEvalOptions
from simclr.settings import add_settings_flags, settings_from_args

EXAMPLES = (
    "simclr linear-eval runs/cifar10-resnet18-20261123-101500",
    "simclr linear-eval RUN_DIR --tta 10 --l2-grid 1e-6:1e-2:5",
    "simclr linear-eval RUN_DIR --method sgd --epochs 90   # for sets too big for a full-batch fit",
)


def register(commands: Any) -> None:
    parser = add_command(
        commands, "linear-eval", "linear probe on frozen features (L-BFGS; --method sgd for big sets)", EXAMPLES
    )
    add_run_arguments(parser)
    add_settings_flags(parser, LinearEvalOptions)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # imported when the command runs, so that 'simclr --help' does not load torch
    from simclr.evaluation.recording import record
    from simclr.evaluation.results import headline
    from simclr.reports.eval_plots import write_classifier_plots

    options = settings_from_args(LinearEvalOptions, args)
    with session_from_args(args) as session:
        if options.method == "sgd":
            from simclr.evaluation.protocols.linear_sgd import train_linear_sgd

            key = "linear_sgd"
            entry = train_linear_sgd(session, options)
        else:
            from simclr.evaluation.protocols.linear import run_linear_eval

            key = "linear_tta" if options.tta > 1 else "linear"
            entry = run_linear_eval(session, options)
        path = record(session, key, entry)
        write_classifier_plots(session, key, entry)
        print(headline(key, entry))
        print(f"results: {path}")
    return 0
