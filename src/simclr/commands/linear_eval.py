"""``simclr linear-eval``: a linear classifier on frozen features (L-BFGS), or by SGD with augmentation."""

from __future__ import annotations

import argparse
import math
from typing import Any

from simclr.commands.common import add_run_arguments, positive_int, session_from_args
from simclr.errors import UserError


def l2_grid(text: str) -> tuple[float, ...]:
    """``LOW:HIGH:N``, N values log-spaced from LOW to HIGH (seed 003's --reg-lower/--reg-upper/--num-steps
    are -8, -1, 8, i.e. ``1e-8:1e-1:8``), or a comma list of values."""
    try:
        if ":" in text:
            low_text, high_text, count = text.split(":")
            low, high, n = math.log10(float(low_text)), math.log10(float(high_text)), int(count)
            if n < 1:
                raise ValueError
            if n == 1:
                return (10.0**low,)
            step = (high - low) / (n - 1)
            return tuple(10.0 ** (low + i * step) for i in range(n))
        values = tuple(float(part) for part in text.split(",") if part.strip())
        if not values or any(v < 0 for v in values):
            raise ValueError
        return values
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"bad L2 grid {text!r}; use LOW:HIGH:N, log-spaced (e.g. 1e-8:1e-1:8), or a list like 1e-4,1e-3"
        ) from None


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "linear-eval", help="linear probe on frozen features (L-BFGS; --method sgd for big sets)"
    )
    add_run_arguments(parser)
    parser.add_argument(
        "--method",
        choices=("lbfgs", "sgd"),
        default="lbfgs",
        help="lbfgs: full-batch on cached features (default); sgd: mini-batch with crop/flip augmentation",
    )
    parser.add_argument(
        "--standardize",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="standardise features with train statistics",
    )
    parser.add_argument(
        "--l2-grid",
        type=l2_grid,
        default="1e-8:1e-1:8",
        help="L2 weights tried on validation: LOW:HIGH:N log-spaced, or a list",
    )
    parser.add_argument(
        "--val-fraction", type=float, default=0.1, help="part of train held out to choose the L2 weight"
    )
    parser.add_argument("--max-iter", type=positive_int, default=500, help="L-BFGS iterations per fit")
    parser.add_argument(
        "--tta", type=int, default=0, metavar="N", help="average the features of N augmented views (0: none)"
    )
    parser.add_argument("--epochs", type=positive_int, default=90, help="--method sgd: epochs")
    parser.add_argument("--lr", type=float, default=0.1, help="--method sgd: learning rate")
    parser.add_argument("--nesterov", action="store_true", help="--method sgd: Nesterov momentum")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from simclr.evaluation.results import headline

    if args.tta == 1 or args.tta < 0:
        raise UserError(f"--tta {args.tta}: pass 0 (no test-time augmentation) or a number of views >= 2")
    session = session_from_args(args)
    if args.method == "sgd":
        from simclr.evaluation.finetune import train_linear_sgd

        key = "linear_sgd"
        entry = train_linear_sgd(
            session, epochs=args.epochs, lr=args.lr, nesterov=args.nesterov, val_fraction=args.val_fraction
        )
    else:
        from simclr.evaluation.linear import run_linear_eval

        key = "linear_tta" if args.tta > 1 else "linear"
        entry = run_linear_eval(
            session,
            tta=args.tta,
            grid=args.l2_grid,
            val_fraction=args.val_fraction,
            standardize=args.standardize,
            max_iter=args.max_iter,
        )
    path = session.record(key, entry)
    print(headline(key, entry))
    print(f"results: {path}")
    return 0
