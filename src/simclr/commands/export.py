"""``simclr export``: a run's backbone as a state dict, TorchScript or ONNX file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from simclr.commands.common import add_command
from simclr.evaluation.weights.export import EXPORT_FORMATS, check_export_target, export_backbone
from simclr.rundir import BACKBONE_FILE, CONFIG_FILE

EXAMPLES = (
    "simclr export runs/cifar10-resnet18-20261123-101500 --format torchscript --out backbone.pt",
    "simclr export RUN_DIR --format onnx --out backbone.onnx",
)


def register(commands: Any) -> None:
    parser = add_command(
        commands, "export", "write a run's backbone as a state dict, TorchScript or ONNX file", EXAMPLES
    )
    parser.add_argument("run", type=Path, metavar="RUN", help=f"run directory, or a {BACKBONE_FILE} file")
    parser.add_argument(
        "--format",
        dest="format",
        choices=EXPORT_FORMATS,
        required=True,
        help="state_dict (torch.save of the weights), torchscript, or onnx (needs the onnx package)",
    )
    parser.add_argument("--out", type=Path, required=True, help="the file to write")
    parser.add_argument("--overwrite", action="store_true", help="replace --out when it exists")
    parser.add_argument(
        "--config", type=Path, default=None, help=f"the run's {CONFIG_FILE} (default: the one beside the backbone)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # imported when the command runs, so that 'simclr --help' does not load torch
    from simclr.evaluation.loading import load_backbone, resolve_run

    out = Path(args.out).expanduser()
    check_export_target(args.format, out, args.overwrite)  # before loading anything
    ref = resolve_run(args.run, args.config)
    loaded = load_backbone(ref)
    export_backbone(loaded, args.format, out, loaded.image_size(ref.config), overwrite=args.overwrite)
    meta = loaded.metadata
    stem = f" ({meta.stem} stem)" if meta.stem else ""  # a timm model's stem is its own
    print(
        f"{out}: {meta.backbone}{stem} as {args.format}; input (B, 3, {loaded.image_size(ref.config)}, "
        f"{loaded.image_size(ref.config)}) normalised with mean {meta.mean} and std {meta.std}, output (B, "
        f"{loaded.feature_dim})"
    )
    return 0
