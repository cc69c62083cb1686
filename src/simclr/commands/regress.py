"""``simclr regress``: Spirograph's generative factors regressed from frozen features (seed 003)."""

from __future__ import annotations

import argparse
from typing import Any

from simclr.commands.common import add_run_arguments, positive_int, session_from_args
from simclr.commands.linear_eval import l2_grid


def register(commands: Any) -> None:
    parser = commands.add_parser("regress", help="Spirograph: linear regression of the 4 generative factors")
    add_run_arguments(parser)
    parser.add_argument(
        "--passes", type=positive_int, default=1, help="average the features of this many fresh renders"
    )
    parser.add_argument(
        "--standardize",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="standardise features with train statistics",
    )
    parser.add_argument("--l2-grid", type=l2_grid, default="1e-8:1e-1:8", help="L2 weights tried on validation")
    parser.add_argument(
        "--val-fraction", type=float, default=0.1, help="part of train held out to choose the L2 weight"
    )
    parser.add_argument("--max-iter", type=positive_int, default=500, help="L-BFGS iterations per fit")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from simclr.evaluation.regression import run_regression
    from simclr.evaluation.results import headline

    session = session_from_args(args)
    entry = run_regression(
        session,
        passes=args.passes,
        grid=args.l2_grid,
        val_fraction=args.val_fraction,
        standardize=args.standardize,
        max_iter=args.max_iter,
    )
    path = session.record("regression", entry)
    print(headline("regression", entry))
    print(f"results: {path}")
    return 0
