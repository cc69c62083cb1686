"""``simclr pretrain``: flags generated from :class:`simclr.config.PretrainConfig`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from simclr.errors import UserError


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    from simclr.config import config_fields, field_types

    types_ = field_types()
    for item in config_fields():
        flag = "--" + item.name.replace("_", "-")
        kind = types_[item.name]
        help_text = item.metadata.get("help", "")
        if kind is bool:
            parser.add_argument(
                flag, dest=item.name, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        else:
            parser.add_argument(
                flag, dest=item.name, type=kind, default=None, metavar=item.name.upper(), help=help_text
            )


def register(commands: Any) -> None:
    parser = commands.add_parser("pretrain", help="pretrain a backbone with NT-Xent")
    parser.add_argument("--config", type=Path, default=None, help="recipe YAML; flags override its values")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument("--quiet", action="store_true", help="no progress output on the terminal")
    _add_config_flags(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
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
