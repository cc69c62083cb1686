"""``simclr knn``: weighted k-nearest-neighbour accuracy of frozen features."""

from __future__ import annotations

import argparse
from typing import Any

from simclr.commands.common import add_command, add_run_arguments, session_from_args
from simclr.evaluation.options import KNNOptions
from simclr.settings import add_settings_flags, settings_from_args

EXAMPLES = (
    "simclr knn runs/cifar10-resnet18-20261123-101500",
    "simclr knn RUN_DIR --k 200 20 --temperature 0.1",
)


def register(commands: Any) -> None:
    parser = add_command(commands, "knn", "weighted kNN accuracy on L2-normalised frozen features", EXAMPLES)
    add_run_arguments(parser)
    add_settings_flags(parser, KNNOptions)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # imported when the command runs, so that 'simclr --help' does not load torch
    from simclr.evaluation.protocols.knn import run_knn
    from simclr.evaluation.recording import record
    from simclr.evaluation.results import headline

    options = settings_from_args(KNNOptions, args)
    with session_from_args(args) as session:
        entry = run_knn(session, ks=options.k, temperature=options.temperature)
        path = record(session, "knn", entry)
        print(headline("knn", entry))
        print(f"results: {path}")
    return 0
