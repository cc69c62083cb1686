"""``simclr embed``: embeddings of any image folder with a pretrained backbone."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simclr.commands.common import Overwrite, RunToRead, add_command
from simclr.data.reading import DataDir, DecodingWorkers, FollowLinks
from simclr.device_settings import ForwardPasses
from simclr.settings import add_settings_flags, setting, settings_from_args, shared_setting

EXAMPLES = (
    "simclr embed runs/cifar10-resnet18-20261123-101500 --data-dir ~/photos --out photos.npz",
    "simclr embed RUN_DIR --data-dir ~/photos --out photos.parquet --layer projection",
    "simclr embed RUN_DIR --data-dir ~/photos --out embeddings.csv --format lightly-csv --absolute-paths",
)


@dataclass(kw_only=True)
class EmbedSettings(Overwrite, ForwardPasses, FollowLinks, DecodingWorkers, RunToRead):
    """The settings of ``simclr embed``: the run, the folder (its class sub-folders become labels), the output."""

    data_dir: str = shared_setting(DataDir, "data_dir")
    out: Path = setting("output file: .npy (+ .index.csv), .npz, .parquet, or .csv (--format lightly-csv)")
    format: str | None = setting(  # checked by output_format, whose module imports torch, not by argparse choices
        "npy, npz, parquet, or lightly-csv (lightly's embeddings CSV, --out FILE.csv); default: the one --out's "
        "suffix names",
        None,
        metavar="FORMAT",
    )
    absolute_paths: bool = setting("write file names absolute, not relative to --data-dir", False, switch=True)
    layer: str = setting(
        "backbone features (default) or the projection head's output", "backbone", choices=("backbone", "projection")
    )


def register(commands: Any) -> None:
    parser = add_command(
        commands,
        "embed",
        "embed an image folder to .npy/.npz/.parquet or lightly's embeddings CSV",
        EXAMPLES,
        description="embed an image folder to .npy/.npz/.parquet or lightly's embeddings CSV; the class "
        "sub-folders of --data-dir become labels",
    )
    add_settings_flags(parser, EmbedSettings)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # imported when the command runs, so that 'simclr --help' does not load torch
    from simclr.data.store import printable_name
    from simclr.evaluation.inference.embed import (
        SUFFIXES,
        check_output_path,
        embed_folder,
        output_format,
        write_embeddings,
    )
    from simclr.evaluation.loading import resolve_run
    from simclr.hardware import autocast_dtype_for, pick_device
    from simclr.progress import progress_bar

    settings = settings_from_args(EmbedSettings, args)
    out = settings.out.expanduser()
    fmt = output_format(out, settings.format)
    check_output_path(out, settings.overwrite, tuple(SUFFIXES.values()))
    ref = resolve_run(settings.run, settings.run_config)
    device = pick_device(settings.accelerator)
    with progress_bar("embed") as advance:
        emb = embed_folder(
            ref,
            Path(settings.data_dir),
            layer=settings.layer,
            batch_size=settings.batch_size,
            workers=settings.workers,
            follow_links=settings.follow_links,
            device=device,
            autocast_dtype=autocast_dtype_for(device),
            advance=lambda done, total: advance("images", done, total),
        )
    written = write_embeddings(emb, out, fmt, absolute_paths=settings.absolute_paths)
    shape = f"{emb.vectors.shape[1]}-d {settings.layer} output"
    print(f"embedded {len(emb.file_names)} images ({shape}) -> {', '.join(map(str, written))}")
    if emb.skipped:
        name, reason = (printable_name(text) for text in emb.skipped[0])
        print(f"skipped {len(emb.skipped)} file(s), e.g. {name}: {reason}")
    return 0
