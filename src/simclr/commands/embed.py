"""``simclr embed``: embeddings of any image folder with a pretrained backbone."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from simclr.commands.common import add_command, add_folder_reading_flags
from simclr.rundir import BACKBONE_FILE, CONFIG_FILE

EXAMPLES = (
    "simclr embed runs/cifar10-resnet18-20261123-101500 --data-dir ~/photos --out photos.npz",
    "simclr embed RUN_DIR --data-dir ~/photos --out photos.parquet --layer projection",
    "simclr embed RUN_DIR --data-dir ~/photos --out embeddings.csv --format lightly-csv --absolute-paths",
)


def register(commands: Any) -> None:
    parser = add_command(
        commands, "embed", "embed an image folder to .npy/.npz/.parquet or lightly's embeddings CSV", EXAMPLES
    )
    parser.add_argument("run", type=Path, metavar="RUN", help=f"run directory, or a {BACKBONE_FILE} file")
    parser.add_argument(
        "--data-dir", type=Path, required=True, help="folder of images (class sub-folders become labels)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output file: .npy (+ .index.csv), .npz, .parquet, or .csv (--format lightly-csv)",
    )
    parser.add_argument(  # checked by output_format, whose module imports torch, not by argparse choices
        "--format",
        default=None,
        metavar="FORMAT",
        help="npy, npz, parquet, or lightly-csv (lightly's embeddings CSV, --out FILE.csv); default: the one "
        "--out's suffix names",
    )
    parser.add_argument(
        "--absolute-paths", action="store_true", help="write file names absolute, not relative to --data-dir"
    )
    parser.add_argument(
        "--layer",
        choices=("backbone", "projection"),
        default="backbone",
        help="backbone features (default) or the projection head's output",
    )
    parser.add_argument(
        "--config", type=Path, default=None, help=f"the run's {CONFIG_FILE} (default: the one beside the backbone)"
    )
    add_folder_reading_flags(parser, batch_size=512)
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

    out = Path(args.out).expanduser()
    fmt = output_format(out, args.format)
    check_output_path(out, args.overwrite, tuple(SUFFIXES.values()))
    ref = resolve_run(args.run, args.config)
    device = pick_device(args.accelerator)
    emb = embed_folder(
        ref,
        args.data_dir,
        layer=args.layer,
        batch_size=args.batch_size,
        workers=args.workers,
        follow_links=args.follow_links,
        device=device,
        autocast_dtype=autocast_dtype_for(device),
    )
    written = write_embeddings(emb, out, fmt, absolute_paths=args.absolute_paths)
    shape = f"{emb.vectors.shape[1]}-d {args.layer} output"
    print(f"embedded {len(emb.file_names)} images ({shape}) -> {', '.join(map(str, written))}")
    if emb.skipped:
        name, reason = (printable_name(text) for text in emb.skipped[0])
        print(f"skipped {len(emb.skipped)} file(s), e.g. {name}: {reason}")
    return 0
