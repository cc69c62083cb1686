"""Flags shared by every command that evaluates a run, and the session they describe."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when a command runs, so 'simclr --help' does not load torch
    from simclr.evaluation.session import EvalSession


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """RUN (a run directory or a backbone.safetensors) and the data/device flags of evaluation."""
    parser.add_argument("run", type=Path, metavar="RUN", help="run directory, or a backbone.safetensors file")
    parser.add_argument(
        "--config", type=Path, default=None, help="the run's config.yaml (default: the one beside the backbone)"
    )
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="where the dataset is (default: the run's --data-dir)"
    )
    parser.add_argument(
        "--limit-train-images",
        type=positive_int,
        default=None,
        metavar="N",
        help="stratified subset of the training split",
    )
    parser.add_argument(
        "--limit-test-images", type=positive_int, default=None, metavar="N", help="stratified subset of the test split"
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=512, help="images per forward pass when computing features"
    )
    parser.add_argument(
        "--accelerator", default="auto", choices=("auto", "cpu", "gpu"), help="where features are computed"
    )
    parser.add_argument("--workers", type=int, default=2, help="processes decoding image files")
    parser.add_argument("--seed", type=int, default=0, help="seed of splits, subsets and fits")
    parser.add_argument(
        "--random-weights",
        action="store_true",
        help="evaluate the same architecture with random initial weights (the baseline to beat); "
        "writes to RUN/eval-random-weights unless --eval-dir is given",
    )
    parser.add_argument("--eval-dir", type=Path, default=None, help="where results go (default: RUN/eval)")
    parser.add_argument("--no-cache", action="store_true", help="recompute features instead of reading eval/features/")


def session_from_args(args: argparse.Namespace) -> EvalSession:
    from simclr.evaluation.loading import resolve_run
    from simclr.evaluation.session import EvalOptions, EvalSession

    eval_dir = args.eval_dir
    if eval_dir is None and args.random_weights:
        base = args.run if Path(args.run).is_dir() else Path(args.run).parent
        eval_dir = Path(base) / "eval-random-weights"
    ref = resolve_run(args.run, args.config, eval_dir)
    options = EvalOptions(
        data_dir=args.data_dir,
        limit_train_images=args.limit_train_images,
        limit_test_images=args.limit_test_images,
        batch_size=args.batch_size,
        accelerator=args.accelerator,
        workers=args.workers,
        seed=args.seed,
        random_weights=args.random_weights,
        use_cache=not args.no_cache,
    )
    return EvalSession(ref, options)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of the message (it may be replaced later)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def show_progress() -> None:
    """Progress and warning lines of the ``simclr`` logger on stderr, unless something already handles them."""
    logger = logging.getLogger("simclr")
    if not logger.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
