"""The ``simclr`` command: one entry point, one sub-command per verb.

User errors (:class:`simclr.errors.UserError`, bad flags, bad YAML) end with a one-line message and exit
code 2, never a traceback; so does a write that found no room on the disk (full, over quota, over the file size
limit), whatever command and library made it (:mod:`simclr.disk_full`); anything else is a bug and keeps its
traceback. SIGINT and SIGTERM, to the process or to its whole group, end a command with one line and exit code
130 or 143 (:mod:`simclr.stop_signals`): pretraining first saves its checkpoint, every command leaves nothing
half-written.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Sequence
from typing import NoReturn

from simclr.disk_full import disk_full_message, failed_path, no_room_errno
from simclr.errors import Interrupted, UserError
from simclr.stop_signals import StopSignal, raise_on_stop_signals
from simclr.version import __version__

EXIT_USER_ERROR = 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors in one line, like every other simclr error."""

    def error(self, message: str) -> NoReturn:
        # argparse quotes what was typed; a control character in it (a line break) is shown escaped
        message = re.sub(r"[\x00-\x1f\x7f]", lambda char: repr(char.group())[1:-1], message)
        raise UserError(f"{message}; see '{self.prog} --help'")


COMMANDS = (
    "pretrain",
    "train_ae",
    "evaluate",
    "linear_eval",
    "knn",
    "regress",
    "finetune",
    "supervised",
    "embed",
    "export",
    "predict",
    "import_weights",
    "report",
    "data",
    "sweep",
)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="simclr", description="SimCLR contrastive pretraining and evaluation.")
    parser.add_argument("--version", action="version", version=f"simclr {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(f"simclr.commands.{name}").register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (also used by ``python -m simclr``)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_USER_ERROR
        with raise_on_stop_signals():
            return int(args.handler(args))
    except UserError as exc:
        print(f"simclr: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Interrupted as exc:  # pretraining, after saving its checkpoint
        print(f"simclr: {exc}", file=sys.stderr)
        return exc.exit_code
    except StopSignal as exc:  # any command, outside pretraining's training loop
        print(f"simclr: interrupted ({exc}) before it finished; nothing half-written was kept", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:  # raised by a library that handles SIGINT itself
        print("simclr: interrupted (SIGINT) before it finished", file=sys.stderr)
        return 130
    except Exception as exc:  # a write outside simclr.atomic (a library's own files) that found no room
        code = no_room_errno(exc)
        if code is None:
            raise
        print(f"simclr: error: {disk_full_message(code, failed_path(exc))}", file=sys.stderr)
        return EXIT_USER_ERROR


def entry_point() -> NoReturn:
    sys.exit(main())
