"""``simclr knn``: weighted k-nearest-neighbour accuracy of frozen features."""

from __future__ import annotations

import argparse
from typing import Any

from simclr.commands.common import add_run_arguments, positive_int, session_from_args


def register(commands: Any) -> None:
    parser = commands.add_parser("knn", help="weighted kNN accuracy on L2-normalised frozen features")
    add_run_arguments(parser)
    parser.add_argument(
        "--k", type=positive_int, nargs="+", default=[200, 20], help="numbers of neighbours (default: 200 20)"
    )
    parser.add_argument("--temperature", type=float, default=0.1, help="vote weight exp(similarity / T)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from simclr.errors import UserError
    from simclr.evaluation.knn import run_knn
    from simclr.evaluation.results import headline

    if args.temperature <= 0:
        raise UserError(f"--temperature must be positive, got {args.temperature}")
    session = session_from_args(args)
    entry = run_knn(session, ks=tuple(args.k), temperature=args.temperature)
    path = session.record("knn", entry)
    print(headline("knn", entry))
    print(f"results: {path}")
    return 0
