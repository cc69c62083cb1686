"""What the sub-commands share: their parser with examples, and the settings groups only commands offer (the
run they read, the recipe they start from, whether an output may be replaced, quiet terminals).

Every flag and positional argument of every command comes from a settings dataclass through
:func:`simclr.settings.add_settings_flags`; a setting several commands offer is defined once, in a group here,
in :mod:`simclr.data.reading` or in :mod:`simclr.device_settings`, and inherited by the commands' settings.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simclr.evaluation.options import EvalSessionOptions
from simclr.rundir import BACKBONE_FILE, CONFIG_FILE, RunDir
from simclr.settings import add_settings_flags, setting, settings_from_args

if TYPE_CHECKING:  # imported when a command runs, so 'simclr --help' does not load torch
    from simclr.evaluation.session import EvalSession


def add_command(
    commands: Any, name: str, summary: str, examples: Sequence[str], description: str | None = None
) -> argparse.ArgumentParser:
    """A sub-command whose ``--help`` starts with ``description`` (default: ``summary``) and ends with
    ``examples``."""
    return commands.add_parser(
        name,
        help=summary,
        description=description or summary,
        epilog="examples:\n" + "\n".join(f"  {example}" for example in examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


@dataclass
class RunToRead:
    """The run a command reads: its directory (or backbone file) and, when not beside it, its config. The
    config's flag was ``--config`` before ``--config`` came to mean a recipe everywhere."""

    run: Path = setting(f"run directory, or a {BACKBONE_FILE} file", positional=True, metavar="RUN")
    run_config: Path | None = setting(
        f"the run's {CONFIG_FILE} (default: the one beside the backbone)", None, old_flags=("--config",)
    )


@dataclass
class RunToEvaluate(RunToRead):
    """The run an evaluation command evaluates, and where its results go."""

    eval_dir: Path | None = setting("where results go (default: the run's own)", None)


@dataclass
class Recipe:
    """The settings file a training command starts from; flags override its values."""

    config: Path | None = setting(
        "recipe: a YAML file of settings (pretrain also takes a shipped recipe's name); flags override its values",
        None,
    )


@dataclass
class Overwrite:
    """Whether a command may replace what an earlier run of it wrote."""

    overwrite: bool = setting("replace the output if it already exists", False, switch=True)


@dataclass
class Quiet:
    """Whether a long command shows its progress."""

    quiet: bool = setting("no progress output on the terminal (only the outcome at the end)", False, switch=True)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags every evaluation command shares: :class:`RunToEvaluate` and
    :class:`~simclr.evaluation.options.EvalSessionOptions`."""
    add_settings_flags(parser, RunToEvaluate)
    add_settings_flags(parser, EvalSessionOptions)


def session_from_args(args: argparse.Namespace) -> EvalSession:
    """The evaluation session of RUN with the flags of :func:`add_run_arguments`; ``--random-weights`` results go
    to the run's random-weights evaluation folder unless ``--eval-dir`` says otherwise."""
    # imported when a command runs, so 'simclr --help' does not load torch
    from simclr.evaluation.loading import resolve_run
    from simclr.evaluation.session import EvalSession

    options = settings_from_args(EvalSessionOptions, args)
    run = settings_from_args(RunToEvaluate, args)
    eval_dir = run.eval_dir
    if eval_dir is None and options.random_weights:
        eval_dir = RunDir(run.run if run.run.is_dir() else run.run.parent).random_weights_eval.path
    return EvalSession(resolve_run(run.run, run.run_config, eval_dir), options)
