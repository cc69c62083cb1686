"""``simclr predict``: class and probabilities per image of a folder, by a classifier an evaluation saved."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simclr.commands.common import Overwrite, add_command
from simclr.data.reading import DataDir, DecodingWorkers, FollowLinks
from simclr.device_settings import ForwardPasses
from simclr.ranges import COUNT
from simclr.rundir import CLASSIFIER_FILE
from simclr.settings import add_settings_flags, setting, settings_from_args, shared_setting

EXAMPLES = (
    "simclr predict runs/cifar10-resnet18-20261123-101500 --data-dir ~/photos --out preds.csv",
    f"simclr predict RUN_DIR/eval/linear/{CLASSIFIER_FILE} --data-dir ~/photos --out preds.parquet --top-k 3",
)


@dataclass(kw_only=True)
class PredictSettings(Overwrite, ForwardPasses, FollowLinks, DecodingWorkers):
    """The settings of ``simclr predict``: the classifier, the folder (searched recursively), the output."""

    classifier: Path = setting(
        f"a {CLASSIFIER_FILE} (written by linear-eval, finetune, supervised) or a run directory holding one",
        positional=True,
        metavar="CLASSIFIER_OR_RUN",
    )
    data_dir: str = shared_setting(DataDir, "data_dir")
    out: Path = setting("output file: .csv or .parquet")
    top_k: int = setting("classes (and probabilities) kept per image", 1, within=COUNT)
    batch_size: int = shared_setting(ForwardPasses, "batch_size", default=256)


def register(commands: Any) -> None:
    parser = add_command(
        commands,
        "predict",
        "classify an image folder with a saved classifier (.csv/.parquet)",
        EXAMPLES,
        description="classify an image folder with a saved classifier (.csv/.parquet); --data-dir is searched "
        "recursively",
    )
    add_settings_flags(parser, PredictSettings)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # imported when the command runs, so that 'simclr --help' does not load torch
    from simclr.data.store import printable_name
    from simclr.evaluation.classifiers.saved_classifier import load_classifier
    from simclr.evaluation.inference.embed import check_output_path
    from simclr.evaluation.inference.predict import FORMATS, choose_classifier, predict_folder, write_predictions
    from simclr.hardware import autocast_dtype_for, pick_device
    from simclr.progress import progress_bar

    settings = settings_from_args(PredictSettings, args)
    out = settings.out.expanduser()
    check_output_path(out, settings.overwrite, FORMATS)
    path, note = choose_classifier(settings.classifier)
    print(note)
    model, meta = load_classifier(path)
    device = pick_device(settings.accelerator)
    with progress_bar("predict") as advance:
        preds = predict_folder(
            model,
            meta,
            Path(settings.data_dir),
            top_k=settings.top_k,
            batch_size=settings.batch_size,
            workers=settings.workers,
            device=device,
            autocast_dtype=autocast_dtype_for(device),
            follow_links=settings.follow_links,
            advance=lambda done, total: advance("images", done, total),
        )
    write_predictions(preds, out)
    classes = len(meta.class_names)
    print(f"predicted {len(preds.file_names)} images ({meta.protocol} classifier, {classes} classes) -> {out}")
    if preds.skipped:
        name, reason = (printable_name(text) for text in preds.skipped[0])
        print(f"skipped {len(preds.skipped)} file(s), e.g. {name}: {reason}")
    return 0
