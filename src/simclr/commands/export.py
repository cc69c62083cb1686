"""``simclr export``: a run's backbone as a state dict, TorchScript or ONNX file."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simclr.commands.common import Overwrite, RunToRead, add_command
from simclr.evaluation.weights.export import EXPORT_FORMATS, check_export_target, export_backbone
from simclr.settings import add_settings_flags, setting, settings_from_args

EXAMPLES = (
    "simclr export runs/cifar10-resnet18-20261123-101500 --format torchscript --out backbone.pt",
    "simclr export RUN_DIR --format onnx --out backbone.onnx",
)


@dataclass(kw_only=True)
class ExportSettings(Overwrite, RunToRead):
    """The settings of ``simclr export``: the run, the file format and the file."""

    format: str = setting(
        "state_dict (torch.save of the weights), torchscript, or onnx (needs the onnx package)",
        choices=EXPORT_FORMATS,
    )
    out: Path = setting("the file to write")


def register(commands: Any) -> None:
    parser = add_command(
        commands, "export", "write a run's backbone as a state dict, TorchScript or ONNX file", EXAMPLES
    )
    add_settings_flags(parser, ExportSettings)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # imported when the command runs, so that 'simclr --help' does not load torch
    from simclr.evaluation.loading import load_backbone, resolve_run

    settings = settings_from_args(ExportSettings, args)
    out = settings.out.expanduser()
    check_export_target(settings.format, out, settings.overwrite)  # before loading anything
    ref = resolve_run(settings.run, settings.run_config)
    loaded = load_backbone(ref)
    export_backbone(loaded, settings.format, out, loaded.image_size(ref.config), overwrite=settings.overwrite)
    meta = loaded.metadata
    stem = f" ({meta.stem} stem)" if meta.stem else ""  # a timm model's stem is its own
    print(
        f"{out}: {meta.backbone}{stem} as {settings.format}; input (B, 3, {loaded.image_size(ref.config)}, "
        f"{loaded.image_size(ref.config)}) normalised with mean {meta.mean} and std {meta.std}, output (B, "
        f"{loaded.feature_dim})"
    )
    return 0
