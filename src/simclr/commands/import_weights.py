"""``simclr import-weights``: another SimCLR implementation's checkpoint as a backbone file evaluation takes."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simclr.commands.common import Overwrite, add_command
from simclr.data.reading import IMAGE_SIDE, DataDir
from simclr.paths import check_output_file
from simclr.rundir import BACKBONE_FILE, CONFIG_FILE
from simclr.settings import add_settings_flags, setting, settings_from_args

EXAMPLES = (
    "simclr import-weights checkpoint_0100.pth.tar runs/sthalles --backbone resnet18 --stem cifar --dataset cifar10",
    "simclr import-weights epoch=99.ckpt imported.safetensors --backbone resnet50",
    "simclr linear-eval runs/sthalles   # evaluate it like any run",
)


@dataclass(kw_only=True)
class ImportWeightsSettings(Overwrite, DataDir):
    """The settings of ``simclr import-weights``: the checkpoint, where its backbone goes, what it is, and the
    dataset of the config that makes OUT a run (``data_dir`` is written into that config)."""

    source: Path = setting("checkpoint: .pth/.pth.tar/.pt/.ckpt", positional=True, metavar="SRC")
    out: Path = setting(
        f"a .safetensors file, or a folder (then OUT/{BACKBONE_FILE}, and a {CONFIG_FILE} with --dataset)",
        positional=True,
        metavar="OUT",
    )
    backbone: str = setting("the checkpoint's architecture: a torchvision ResNet name")
    stem: str = setting(
        "the first layers: imagenet (torchvision's 7x7 conv + max-pool, default), cifar (3x3, no pool) or stl",
        "imagenet",
    )
    image_size: int | None = setting("the image side it was trained at", None, within=IMAGE_SIDE)
    dataset: str | None = setting(
        f"with a folder OUT: write a {CONFIG_FILE} for this dataset, so OUT is a run every evaluation takes", None
    )


def register(commands: Any) -> None:
    parser = add_command(
        commands,
        "import-weights",
        f"convert another implementation's checkpoint (.pth.tar, .ckpt, state dict) to a {BACKBONE_FILE}",
        EXAMPLES,
    )
    add_settings_flags(parser, ImportWeightsSettings)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from simclr.config import build_config
    from simclr.errors import UserError
    from simclr.evaluation.weights.import_weights import write_imported
    from simclr.models.backbones import STEMS
    from simclr.rundir import RunDir
    from simclr.settings import config_to_yaml

    settings = settings_from_args(ImportWeightsSettings, args)
    if settings.stem not in STEMS or settings.stem == "auto":
        raise UserError(f"unknown --stem {settings.stem!r}; use one of {', '.join(s for s in STEMS if s != 'auto')}")

    out = Path(settings.out).expanduser()
    as_file = out.suffix == ".safetensors"
    run_dir = None if as_file else RunDir(out)
    target = out if run_dir is None else run_dir.backbone
    if as_file and settings.dataset is not None:
        raise UserError(f"--dataset writes a {CONFIG_FILE} into a folder OUT; pass a folder instead of {out}")
    check_output_file(target, overwrite=True, flag="OUT argument", parent_must_exist=False)
    if target.exists() and not settings.overwrite:
        raise UserError(f"{target} already exists; pass --overwrite to replace it or choose another OUT")
    config = None
    if run_dir is not None and settings.dataset is not None:
        values: dict[str, Any] = {
            "dataset": settings.dataset,
            "backbone": settings.backbone,
            "stem": settings.stem,
            "out": str(out),
        }
        if settings.image_size is not None:
            values["image_size"] = settings.image_size
        if settings.data_dir is not None:
            values["data_dir"] = str(Path(settings.data_dir))
        config = build_config(values, {})  # validated before the (slow) conversion
    imported = write_imported(
        Path(settings.source).expanduser(),
        target,
        settings.backbone,
        settings.stem,
        settings.image_size,
        settings.dataset,
    )
    if run_dir is not None and config is not None:
        run_dir.write_config(config_to_yaml(config))
    print(f"imported {len(imported.tensors)} tensors of a {settings.backbone} ({settings.stem} stem) -> {target}")
    if imported.dropped:
        print(f"left out {len(imported.dropped)} head tensor(s), e.g. {imported.dropped[0]}")
    if run_dir is not None and config is None:
        print(f"no {CONFIG_FILE} written: pass --dataset NAME, or give evaluation commands --run-config")
    return 0
