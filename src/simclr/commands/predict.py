"""``simclr predict``: class and probabilities per image of a folder, by a classifier an evaluation saved."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from simclr.commands.common import add_command, add_folder_reading_flags
from simclr.rundir import CLASSIFIER_FILE
from simclr.settings import positive_int

EXAMPLES = (
    "simclr predict runs/cifar10-resnet18-20261123-101500 --data-dir ~/photos --out preds.csv",
    f"simclr predict RUN_DIR/eval/linear/{CLASSIFIER_FILE} --data-dir ~/photos --out preds.parquet --top-k 3",
)


def register(commands: Any) -> None:
    parser = add_command(
        commands, "predict", "classify an image folder with a saved classifier (.csv/.parquet)", EXAMPLES
    )
    parser.add_argument(
        "classifier",
        type=Path,
        metavar="CLASSIFIER_OR_RUN",
        help=f"a {CLASSIFIER_FILE} (written by linear-eval, finetune, supervised) or a run directory holding one",
    )
    parser.add_argument("--data-dir", type=Path, required=True, help="folder of images (searched recursively)")
    parser.add_argument("--out", type=Path, required=True, help="output file: .csv or .parquet")
    parser.add_argument("--top-k", type=positive_int, default=1, help="classes (and probabilities) kept per image")
    add_folder_reading_flags(parser, batch_size=256)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # imported when the command runs, so that 'simclr --help' does not load torch
    from simclr.data.store import printable_name
    from simclr.evaluation.classifiers.saved_classifier import load_classifier
    from simclr.evaluation.inference.embed import check_output_path
    from simclr.evaluation.inference.predict import FORMATS, choose_classifier, predict_folder, write_predictions
    from simclr.hardware import autocast_dtype_for, pick_device
    from simclr.progress import progress_bar

    out = Path(args.out).expanduser()
    check_output_path(out, args.overwrite, FORMATS)
    path, note = choose_classifier(args.classifier)
    print(note)
    model, meta = load_classifier(path)
    device = pick_device(args.accelerator)
    with progress_bar("predict") as advance:
        preds = predict_folder(
            model,
            meta,
            args.data_dir,
            top_k=args.top_k,
            batch_size=args.batch_size,
            workers=args.workers,
            device=device,
            autocast_dtype=autocast_dtype_for(device),
            follow_links=args.follow_links,
            advance=lambda done, total: advance("images", done, total),
        )
    write_predictions(preds, out)
    classes = len(meta.class_names)
    print(f"predicted {len(preds.file_names)} images ({meta.protocol} classifier, {classes} classes) -> {out}")
    if preds.skipped:
        name, reason = (printable_name(text) for text in preds.skipped[0])
        print(f"skipped {len(preds.skipped)} file(s), e.g. {name}: {reason}")
    return 0
