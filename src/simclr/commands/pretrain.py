"""``simclr pretrain``: flags generated from :class:`simclr.config.PretrainConfig`, merged over a recipe."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from typing import Any

from simclr.commands.common import Quiet, Recipe, add_command
from simclr.config import PretrainConfig
from simclr.settings import add_settings_flags, overrides_from_args, setting, settings_from_args

EXAMPLES = (
    "simclr pretrain --dataset cifar10 --data-dir data/cifar10 --epochs 200 --batch-size 512",
    "simclr pretrain --config lightly-cifar10-resnet18-200ep --lr 0.5 --print-config",
    "simclr pretrain --resume runs/cifar10-resnet18-20261123-101500",
)


@dataclass
class PretrainCommand(Quiet, Recipe):
    """What ``simclr pretrain`` does with its config, beside the config itself (:class:`PretrainConfig`)."""

    print_config: bool = setting("print the resolved config and exit", False, switch=True)
    resume_with_changes: bool = setting(
        "with --resume: allow flags that change how the run trains (the change is recorded in the run)",
        False,
        switch=True,
    )


def register(commands: Any) -> None:
    parser = add_command(commands, "pretrain", "pretrain a backbone with NT-Xent", EXAMPLES)
    add_settings_flags(parser, PretrainCommand)
    add_settings_flags(parser, PretrainConfig, overrides_only=True)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from simclr.config import build_config
    from simclr.recipes import find_recipe
    from simclr.settings import config_to_yaml, read_yaml

    command = settings_from_args(PretrainCommand, args)
    overrides = overrides_from_args(PretrainConfig, args)
    file_values: dict[str, Any] = read_yaml(find_recipe(command.config)) if command.config else {}
    changes: dict[str, tuple[Any, Any]] = {}
    if overrides.get("resume"):
        from simclr.training.resume import resume_from_values  # reads a checkpoint: torch, only when resuming

        config, changes = resume_from_values(file_values, overrides, allowed=command.resume_with_changes)
    else:
        config = build_config(file_values, overrides)
    if command.print_config:
        sys.stdout.write(config_to_yaml(config))
        return 0
    from simclr.training.pretrain import run_pretraining

    result = run_pretraining(config, quiet=command.quiet, resumed_changes=changes)
    if os.environ.get("LOCAL_RANK", "0") == "0":
        summary = f"run directory: {result.run_dir}"
        if result.final_loss is not None:
            summary += f"  (step {result.global_step}, final loss {result.final_loss:.4f}"
            summary += f", knn_top1 {result.knn_top1:.4f})" if result.knn_top1 is not None else ")"
        print(summary)
    return 0
