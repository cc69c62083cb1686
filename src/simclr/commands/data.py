"""``simclr data``: preparing datasets; ``simclr data coco-crops`` crops a COCO export's boxes."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simclr.commands.common import add_command
from simclr.data.pack_settings import PackConfig
from simclr.settings import add_settings_flags, jpeg_quality, positive_int, settings_from_args

if TYPE_CHECKING:
    from simclr.data.coco import CropSummary


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text}")
    return value


def register(commands: Any) -> None:
    parser = add_command(
        commands,
        "data",
        "prepare datasets (e.g. crop objects from a COCO export)",
        ("simclr data coco-crops exports/ff-devices data/ff-devices-crops --pad 0.05",),
    )
    # The sub-commands use the same parser class, so their argparse errors are one-line UserErrors.
    actions = parser.add_subparsers(
        dest="data_command", metavar="DATA_COMMAND", required=True, parser_class=type(parser)
    )
    crops = add_command(
        actions,
        "coco-crops",
        "crop every box of a Roboflow COCO export into an image folder of classes",
        (
            "simclr data coco-crops exports/ff-devices data/ff-devices-crops",
            "simclr data coco-crops exports/ff-devices data/ff-one-shot --one-shot --seed 1",
        ),
    )
    crops.description = (
        "Read IN_DIR/{train,valid,test}/_annotations.coco.json and write each box as "
        "OUT_DIR/<split>/<class>/<image stem>_<annotation id>.jpg; broken or hostile entries are "
        "skipped and listed in OUT_DIR/skipped.csv."
    )
    crops.add_argument("in_dir", type=Path, metavar="IN_DIR", help="the COCO export (train/ valid/ test/)")
    crops.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="where the image folder is written")
    crops.add_argument(
        "--pad",
        type=_fraction,
        default=0.05,
        help="padding on each side, as a fraction of the box width/height (default 0.05)",
    )
    crops.add_argument(
        "--min-size",
        type=positive_int,
        default=1,
        metavar="N",
        help="skip crops narrower or shorter than N pixels (default 1)",
    )
    crops.add_argument(
        "--one-shot",
        action="store_true",
        help="keep one crop per class in train (chosen by --seed); all crops elsewhere",
    )
    crops.add_argument("--seed", type=int, default=0, help="seed of the one-shot choice (default 0)")
    crops.add_argument("--quality", type=jpeg_quality, default=95, help="JPEG quality 1..100 (default 95)")
    crops.add_argument("--overwrite", action="store_true", help="replace the crops of an earlier run in OUT_DIR")
    crops.add_argument(
        "--max-crops",
        type=positive_int,
        default=100_000,
        metavar="N",
        help="stop after writing N crops, so a hostile export cannot fill the disk (default 100000)",
    )
    crops.set_defaults(handler=run)

    pack = add_command(
        actions,
        "pack",
        "pack an image folder or a dataset into litdata shards, to stream data bigger than memory",
        (
            "simclr data pack ~/photos data/photos-packed --workers 8",
            "simclr data pack imagenet data/imagenet-packed --data-dir /data/ILSVRC2012",
            "simclr pretrain --dataset packed --data-dir data/photos-packed --image-size 224",
        ),
    )
    pack.add_argument(
        "src", metavar="SRC", help="an image folder (with train/ and test/ or val/, or not), or a dataset"
    )
    pack.add_argument("out", type=Path, metavar="OUT", help="where the shards go (OUT/train, OUT/test)")
    add_settings_flags(pack, PackConfig)
    pack.set_defaults(handler=run_pack)

    split = add_command(
        actions,
        "split",
        "write a subset file: N labelled images per class and, disjoint from them, the unlabelled rest",
        (
            "simclr data split cifar10 --data-dir data/cifar10 --labelled-per-class 800 --seed 0 splits/c10-800.json",
            "simclr pretrain --dataset cifar10 --data-dir data/cifar10 --subset splits/c10-800.json:unlabelled",
            "simclr finetune runs/cifar10-... --subset splits/c10-800.json",
        ),
    )
    split.add_argument("dataset", metavar="DATASET", help="a dataset name (as --dataset of pretrain)")
    split.add_argument("out", type=Path, metavar="OUT", help="the subset file to write (JSON)")
    split.add_argument(
        "--labelled-per-class", type=positive_int, required=True, metavar="N", help="labelled images of each class"
    )
    split.add_argument("--seed", type=int, default=0, help="seed of the draw within each class (default 0)")
    split.add_argument("--data-dir", type=Path, default=None, metavar="DIR", help="where the dataset is")
    split.add_argument("--download", action="store_true", help="let torchvision download a missing dataset")
    split.add_argument("--workers", type=int, default=2, help="processes decoding image files (default 2)")
    split.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    split.set_defaults(handler=run_split)


def format_summary(summary: CropSummary) -> str:
    """A table of crops per class (rows) and split (columns), then the skip counts by reason."""
    splits = list(summary.crops)
    classes = sorted({name for per_class in summary.crops.values() for name in per_class})
    header = ["class", *splits, "total"]
    rows = [
        [
            name,
            *(str(summary.crops[s].get(name, 0)) for s in splits),
            str(sum(summary.crops[s].get(name, 0) for s in splits)),
        ]
        for name in classes
    ]
    rows.append(["total", *(str(sum(summary.crops[s].values())) for s in splits), str(summary.total)])
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in (header, *rows)
    ]
    skipped = summary.skipped_by_reason()
    if skipped:
        lines.append(f"skipped {len(summary.skipped)} annotation(s):")
        lines.extend(f"  {reason}: {count}" for reason, count in skipped.items())
    if summary.not_selected:
        lines.append(f"one-shot: {summary.not_selected} other train crop(s) not kept")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from simclr.data.coco import ANNOTATION_FILE, SKIPPED_FILE, SUMMARY_FILE, extract_coco_crops

    summary = extract_coco_crops(
        args.in_dir,
        args.out_dir,
        pad=args.pad,
        min_size=args.min_size,
        one_shot=args.one_shot,
        seed=args.seed,
        quality=args.quality,
        overwrite=args.overwrite,
        max_crops=args.max_crops,
    )
    for split in summary.missing_splits:
        print(f"note: no {split}/{ANNOTATION_FILE} in {args.in_dir}; split {split} skipped")
    print(format_summary(summary))
    print(f"wrote {summary.total} crop(s) to {summary.out_dir} ({SUMMARY_FILE}, {SKIPPED_FILE})")
    if summary.stopped_at_max:
        print(f"stopped at --max-crops {args.max_crops}; pass a larger --max-crops to continue")
    return 0


def run_pack(args: argparse.Namespace) -> int:
    from simclr.data.pack_format import SKIPPED_FILE
    from simclr.data.packed import pack_dataset
    from simclr.data.store import printable_name
    from simclr.progress import progress_bar

    with progress_bar("packing") as advance:
        summaries = pack_dataset(args.src, args.out, settings_from_args(PackConfig, args), advance)
    for summary in summaries.values():
        print(summary.line())
        for path, reason in summary.skipped[:5]:
            print(f"  skipped {printable_name(path)}: {printable_name(reason)}")
        if len(summary.skipped) > 5:
            print(f"  ... {len(summary.skipped) - 5} more in {summary.out / SKIPPED_FILE}")
    return 0


# Only the labels and their order are needed; decoding at a tiny size keeps a large dataset's split cheap.
_LABELS_ONLY_IMAGE_SIZE = 8


def run_split(args: argparse.Namespace) -> int:
    from simclr.data.source import DataSource
    from simclr.data.subset_file import make_subset_file
    from simclr.errors import UserError

    if args.out.exists() and not args.overwrite:
        raise UserError(f"{args.out} exists; pass --overwrite to replace it (runs that used it record its SHA-256)")
    source = DataSource(args.dataset, args.data_dir, download=args.download, workers=args.workers)
    store = source.load_train(labelled_only=True, image_size=_LABELS_ONLY_IMAGE_SIZE)
    subset = make_subset_file(args.dataset, store.labels, args.labelled_per_class, args.seed)
    sha = subset.write(args.out)
    print(
        f"wrote {args.out}: {subset.labelled.numel()} labelled (up to {args.labelled_per_class} per class, "
        f"seed {args.seed}) and {subset.unlabelled.numel()} unlabelled of {subset.images} {args.dataset} "
        f"training images; sha256 {sha}"
    )
    return 0
