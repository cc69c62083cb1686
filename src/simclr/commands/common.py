"""What the sub-commands share: their parser with examples, the run they evaluate, the flags of folder readers."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simclr.evaluation.options import EvalSessionOptions
from simclr.rundir import BACKBONE_FILE, CONFIG_FILE, RunDir
from simclr.settings import add_settings_flags, positive_int, settings_from_args

if TYPE_CHECKING:  # imported when a command runs, so 'simclr --help' does not load torch
    from simclr.evaluation.session import EvalSession


def add_command(commands: Any, name: str, summary: str, examples: Sequence[str]) -> argparse.ArgumentParser:
    """A sub-command whose ``--help`` starts with ``summary`` and ends with ``examples``."""
    return commands.add_parser(
        name,
        help=summary,
        description=summary,
        epilog="examples:\n" + "\n".join(f"  {example}" for example in examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """RUN (a run directory or its backbone file), where its config and results are, and the flags of
    :class:`~simclr.evaluation.options.EvalSessionOptions`."""
    parser.add_argument("run", type=Path, metavar="RUN", help=f"run directory, or a {BACKBONE_FILE} file")
    parser.add_argument(
        "--config", type=Path, default=None, help=f"the run's {CONFIG_FILE} (default: the one beside the backbone)"
    )
    parser.add_argument("--eval-dir", type=Path, default=None, help="where results go (default: the run's own)")
    add_settings_flags(parser, EvalSessionOptions)


def add_folder_reading_flags(parser: argparse.ArgumentParser, batch_size: int) -> None:
    """The flags of a command that runs a backbone over a folder of images into one output file (embed,
    predict): batch size, device, decoding processes, links, and whether an existing output may be replaced."""
    parser.add_argument("--batch-size", type=positive_int, default=batch_size)
    parser.add_argument("--accelerator", default="auto", choices=("auto", "cpu", "gpu"))
    parser.add_argument("--workers", type=int, default=2, help="processes decoding image files")
    parser.add_argument(
        "--follow-links", action="store_true", help="follow symbolic links that lead outside --data-dir"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


def session_from_args(args: argparse.Namespace) -> EvalSession:
    """The evaluation session of RUN with the flags of :func:`add_run_arguments`; ``--random-weights`` results go
    to the run's random-weights evaluation folder unless ``--eval-dir`` says otherwise."""
    # imported when a command runs, so 'simclr --help' does not load torch
    from simclr.evaluation.loading import resolve_run
    from simclr.evaluation.session import EvalSession

    options = settings_from_args(EvalSessionOptions, args)
    eval_dir = args.eval_dir
    if eval_dir is None and options.random_weights:
        eval_dir = RunDir(args.run if Path(args.run).is_dir() else Path(args.run).parent).random_weights_eval.path
    return EvalSession(resolve_run(args.run, args.config, eval_dir), options)
