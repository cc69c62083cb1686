"""``simclr export``: a run's backbone as a state dict, torch.export (pt2), TorchScript or ONNX file."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simclr.commands.common import Overwrite, RunToRead, add_command
from simclr.evaluation.weights.export import EXPORT_FORMATS, check_export_target, export_backbone
from simclr.settings import add_settings_flags, setting, settings_from_args

EXAMPLES = (
    "simclr export runs/cifar10-resnet18-20261123-101500 --format pt2 --out backbone.pt2",
    "simclr export RUN_DIR --format onnx --dynamic-size --out backbone.onnx",
    "simclr export RUN_DIR --format torchscript --out backbone.pt",
)


@dataclass(kw_only=True)
class ExportSettings(Overwrite, RunToRead):
    """The settings of ``simclr export``: the run, the file format and the file."""

    format: str = setting(
        "state_dict (torch.save of the weights), pt2 (torch.export; the recommended one, read back with "
        "torch.export.load), torchscript, or onnx (needs the onnx package)",
        choices=EXPORT_FORMATS,
    )
    out: Path = setting("the file to write (a .pt2 name for --format pt2)")
    dynamic_size: bool = setting(
        "pt2 and onnx: take any image height and width the backbone does (a ResNet: any), not only the run's "
        "image size; the batch size is free in every format",
        False,
        switch=True,
    )


def register(commands: Any) -> None:
    parser = add_command(
        commands, "export", "write a run's backbone as a state dict, pt2, TorchScript or ONNX file", EXAMPLES
    )
    add_settings_flags(parser, ExportSettings)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # imported when the command runs, so that 'simclr --help' does not load torch
    from simclr.evaluation.loading import load_backbone, resolve_run

    settings = settings_from_args(ExportSettings, args)
    out = settings.out.expanduser()
    check_export_target(settings.format, out, settings.overwrite, settings.dynamic_size)  # before loading anything
    ref = resolve_run(settings.run, settings.run_config)
    loaded = load_backbone(ref)
    size = loaded.image_size(ref.config)
    export_backbone(
        loaded, settings.format, out, size, overwrite=settings.overwrite, dynamic_size=settings.dynamic_size
    )
    meta = loaded.metadata
    stem = f" ({meta.stem} stem)" if meta.stem else ""  # a timm model's stem is its own
    shape = f"(B, 3, H, W) (trained at {size} px)" if settings.dynamic_size else f"(B, 3, {size}, {size})"
    print(
        f"{out}: {meta.backbone}{stem} as {settings.format}; input {shape} normalised with mean "
        f"{meta.mean} and std {meta.std}, output (B, {loaded.feature_dim})"
    )
    return 0
