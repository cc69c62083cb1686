"""``simclr import-weights``: another SimCLR implementation's checkpoint as a backbone file evaluation takes."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from simclr.commands.common import add_command
from simclr.rundir import BACKBONE_FILE, CONFIG_FILE
from simclr.settings import positive_int

EXAMPLES = (
    "simclr import-weights checkpoint_0100.pth.tar runs/sthalles --backbone resnet18 --stem cifar --dataset cifar10",
    "simclr import-weights epoch=99.ckpt imported.safetensors --backbone resnet50",
    "simclr linear-eval runs/sthalles   # evaluate it like any run",
)


def register(commands: Any) -> None:
    parser = add_command(
        commands,
        "import-weights",
        f"convert another implementation's checkpoint (.pth.tar, .ckpt, state dict) to a {BACKBONE_FILE}",
        EXAMPLES,
    )
    parser.add_argument("source", type=Path, metavar="SRC", help="checkpoint: .pth/.pth.tar/.pt/.ckpt")
    parser.add_argument(
        "out",
        type=Path,
        metavar="OUT",
        help=f"a .safetensors file, or a folder (then OUT/{BACKBONE_FILE}, and a {CONFIG_FILE} with --dataset)",
    )
    parser.add_argument("--backbone", required=True, help="the checkpoint's architecture: a torchvision ResNet name")
    parser.add_argument(
        "--stem",
        default="imagenet",
        help="the first layers: imagenet (torchvision's 7x7 conv + max-pool, default), cifar (3x3, no pool) or stl",
    )
    parser.add_argument("--image-size", type=positive_int, default=None, help="the image side it was trained at")
    parser.add_argument(
        "--dataset",
        default=None,
        help=f"with a folder OUT: write a {CONFIG_FILE} for this dataset, so OUT is a run every evaluation takes",
    )
    parser.add_argument("--data-dir", type=Path, default=None, help="the dataset's folder, for the config")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT's backbone if it exists")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from simclr.config import build_config
    from simclr.errors import UserError
    from simclr.evaluation.weights.import_weights import write_imported
    from simclr.models.backbones import STEMS
    from simclr.rundir import RunDir
    from simclr.settings import config_to_yaml

    if args.stem not in STEMS or args.stem == "auto":
        raise UserError(f"unknown --stem {args.stem!r}; use one of {', '.join(s for s in STEMS if s != 'auto')}")

    out = Path(args.out).expanduser()
    as_file = out.suffix == ".safetensors"
    run_dir = None if as_file else RunDir(out)
    target = out if run_dir is None else run_dir.backbone
    if as_file and args.dataset is not None:
        raise UserError(f"--dataset writes a {CONFIG_FILE} into a folder OUT; pass a folder instead of {out}")
    if target.exists() and not args.overwrite:
        raise UserError(f"{target} already exists; pass --overwrite to replace it or choose another OUT")
    config = None
    if run_dir is not None and args.dataset is not None:
        values: dict[str, Any] = {
            "dataset": args.dataset,
            "backbone": args.backbone,
            "stem": args.stem,
            "out": str(out),
        }
        if args.image_size is not None:
            values["image_size"] = args.image_size
        if args.data_dir is not None:
            values["data_dir"] = str(args.data_dir)
        config = build_config(values, {})  # validated before the (slow) conversion
    imported = write_imported(
        Path(args.source).expanduser(), target, args.backbone, args.stem, args.image_size, args.dataset
    )
    if run_dir is not None and config is not None:
        run_dir.write_config(config_to_yaml(config))
    print(f"imported {len(imported.tensors)} tensors of a {args.backbone} ({args.stem} stem) -> {target}")
    if imported.dropped:
        print(f"left out {len(imported.dropped)} head tensor(s), e.g. {imported.dropped[0]}")
    if run_dir is not None and config is None:
        print(f"no {CONFIG_FILE} written: pass --dataset NAME, or give evaluation commands --config")
    return 0
