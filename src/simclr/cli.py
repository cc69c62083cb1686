"""The ``simclr`` command: one entry point, one sub-command per verb.

User errors (:class:`simclr.errors.UserError`, bad flags, bad YAML) end with a one-line message and exit
code 2, never a traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from simclr import __version__
from simclr.errors import UserError

EXIT_USER_ERROR = 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors in one line, like every other simclr error."""

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{message}; see '{self.prog} --help'")


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    from simclr.config import config_fields, field_types

    types_ = field_types()
    for item in config_fields():
        flag = "--" + item.name.replace("_", "-")
        kind = types_[item.name]
        help_text = item.metadata.get("help", "")
        if kind is bool:
            parser.add_argument(flag, dest=item.name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            parser.add_argument(flag, dest=item.name, type=kind, default=None, metavar=item.name.upper(), help=help_text)


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="simclr", description="SimCLR contrastive pretraining and evaluation.")
    parser.add_argument("--version", action="version", version=f"simclr {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    pretrain = commands.add_parser("pretrain", help="pretrain a backbone with NT-Xent")
    pretrain.add_argument("--config", type=Path, default=None, help="recipe YAML; flags override its values")
    pretrain.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    pretrain.add_argument("--quiet", action="store_true", help="no progress output on the terminal")
    _add_config_flags(pretrain)
    return parser


def _pretrain(args: argparse.Namespace) -> int:
    from simclr.config import build_config, config_to_yaml, field_types, read_yaml

    overrides = {name: getattr(args, name) for name in field_types() if getattr(args, name, None) is not None}
    file_values: dict[str, Any] = read_yaml(args.config) if args.config else {}
    if overrides.get("resume"):
        run_dir = Path(overrides["resume"])
        if not (run_dir / "config.yaml").is_file():
            raise UserError(f"cannot resume: {run_dir} has no config.yaml; pass the directory of a simclr run")
        file_values = {**read_yaml(run_dir / "config.yaml"), **file_values}
        overrides["out"] = str(run_dir)
    config = build_config(file_values, overrides)
    if args.print_config:
        sys.stdout.write(config_to_yaml(config))
        return 0
    from simclr.training.pretrain import run_pretraining

    result = run_pretraining(config, quiet=args.quiet)
    if os.environ.get("LOCAL_RANK", "0") == "0":
        summary = f"run directory: {result.run_dir}"
        if result.final_loss is not None:
            summary += f"  (step {result.global_step}, final loss {result.final_loss:.4f}"
            summary += f", knn_top1 {result.knn_top1:.4f})" if result.knn_top1 is not None else ")"
        print(summary)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (also used by ``python -m simclr``)."""
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_USER_ERROR
        if args.command == "pretrain":
            return _pretrain(args)
        raise UserError(f"unknown command {args.command!r}")
    except UserError as exc:
        print(f"simclr: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("simclr: interrupted; resume with --resume RUN_DIR", file=sys.stderr)
        return 130


def entry_point() -> NoReturn:
    sys.exit(main())
