"""``simclr data``: preparing datasets; ``simclr data coco-crops`` crops a COCO export's boxes."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simclr.commands.common import Overwrite, add_command
from simclr.data.pack_settings import JpegQuality, PackConfig
from simclr.data.reading import DataDir, DecodingWorkers, Download
from simclr.paths import check_output_file
from simclr.ranges import COUNT, NON_NEGATIVE, SEED
from simclr.settings import add_settings_flags, setting, settings_from_args

if TYPE_CHECKING:
    from simclr.data.coco import CropSummary


@dataclass(kw_only=True)
class CocoCropsSettings(Overwrite, JpegQuality):
    """The settings of ``simclr data coco-crops``."""

    in_dir: Path = setting("the COCO export (train/ valid/ test/)", positional=True, metavar="IN_DIR")
    out_dir: Path = setting("where the image folder is written", positional=True, metavar="OUT_DIR")
    pad: float = setting("padding on each side, as a fraction of the box width/height", 0.05, within=NON_NEGATIVE)
    min_size: int = setting("skip crops narrower or shorter than N pixels", 1, metavar="N", within=COUNT)
    one_shot: bool = setting(
        "keep one crop per class in train (chosen by --seed); all crops elsewhere", False, switch=True
    )
    seed: int = setting("seed of the one-shot choice", 0, within=SEED)
    max_crops: int = setting(
        "stop after writing N crops, so a hostile export cannot fill the disk", 100_000, metavar="N", within=COUNT
    )


@dataclass(kw_only=True)
class PackCommand(PackConfig):
    """The settings of ``simclr data pack``: what is packed and where, then how (:class:`PackConfig`)."""

    src: str = setting(
        "an image folder (with train/ and test/ or val/, or not), or a dataset",
        positional=True,
        metavar="SRC",
        path=True,
    )
    out: Path = setting("where the shards go (OUT/train, OUT/test)", positional=True, metavar="OUT")


@dataclass(kw_only=True)
class SplitSettings(Overwrite, DecodingWorkers, Download, DataDir):
    """The settings of ``simclr data split``."""

    dataset: str = setting("a dataset name (as --dataset of pretrain)", positional=True, metavar="DATASET")
    out: Path = setting("the subset file to write (JSON)", positional=True, metavar="OUT")
    labelled_per_class: int = setting("labelled images of each class", metavar="N", within=COUNT)
    seed: int = setting("seed of the draw within each class", 0, within=SEED)


COCO_CROPS_EXAMPLES = (
    "simclr data coco-crops exports/ff-devices data/ff-devices-crops",
    "simclr data coco-crops exports/ff-devices data/ff-one-shot --one-shot --seed 1",
)
PACK_EXAMPLES = (
    "simclr data pack ~/photos data/photos-packed --workers 8",
    "simclr data pack imagenet data/imagenet-packed --data-dir /data/ILSVRC2012",
    "simclr pretrain --dataset packed --data-dir data/photos-packed --image-size 224",
)
SPLIT_EXAMPLES = (
    "simclr data split cifar10 --data-dir data/cifar10 --labelled-per-class 800 --seed 0 splits/c10-800.json",
    "simclr pretrain --dataset cifar10 --data-dir data/cifar10 --subset splits/c10-800.json:unlabelled",
    "simclr finetune runs/cifar10-... --subset splits/c10-800.json",
)


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
        COCO_CROPS_EXAMPLES,
        description="Read IN_DIR/{train,valid,test}/_annotations.coco.json and write each box as "
        "OUT_DIR/<split>/<class>/<image stem>_<annotation id>.jpg; broken or hostile entries are "
        "skipped and listed in OUT_DIR/skipped.csv.",
    )
    add_settings_flags(crops, CocoCropsSettings)
    crops.set_defaults(handler=run)
    pack = add_command(
        actions,
        "pack",
        "pack an image folder or a dataset into litdata shards, to stream data bigger than memory",
        PACK_EXAMPLES,
    )
    add_settings_flags(pack, PackCommand)
    pack.set_defaults(handler=run_pack)
    split = add_command(
        actions,
        "split",
        "write a subset file: N labelled images per class and, disjoint from them, the unlabelled rest",
        SPLIT_EXAMPLES,
    )
    add_settings_flags(split, SplitSettings)
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

    settings = settings_from_args(CocoCropsSettings, args)
    summary = extract_coco_crops(
        settings.in_dir,
        settings.out_dir,
        pad=settings.pad,
        min_size=settings.min_size,
        one_shot=settings.one_shot,
        seed=settings.seed,
        quality=settings.quality,
        overwrite=settings.overwrite,
        max_crops=settings.max_crops,
    )
    for split in summary.missing_splits:
        print(f"note: no {split}/{ANNOTATION_FILE} in {settings.in_dir}; split {split} skipped")
    print(format_summary(summary))
    print(f"wrote {summary.total} crop(s) to {summary.out_dir} ({SUMMARY_FILE}, {SKIPPED_FILE})")
    if summary.stopped_at_max:
        print(f"stopped at --max-crops {settings.max_crops}; pass a larger --max-crops to continue")
    return 0


def run_pack(args: argparse.Namespace) -> int:
    from simclr.data.object_storage import refuse_remote_destination
    from simclr.data.pack_format import SKIPPED_FILE
    from simclr.data.packed import pack_dataset
    from simclr.data.store import printable_name
    from simclr.progress import progress_bar, show_progress

    show_progress()  # who another packer of OUT is, while this one waits for it
    with progress_bar("packing") as advance:
        settings = settings_from_args(PackCommand, args)
        refuse_remote_destination(settings.out)
        summaries = pack_dataset(settings.src, settings.out, settings, advance)
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

    settings = settings_from_args(SplitSettings, args)
    check_output_file(settings.out, overwrite=True, flag="OUT argument", parent_must_exist=False)
    if settings.out.exists() and not settings.overwrite:
        raise UserError(f"{settings.out} exists; pass --overwrite to replace it (runs that used it record its SHA-256)")
    data_dir = Path(settings.data_dir) if settings.data_dir is not None else None
    source = DataSource(settings.dataset, data_dir, download=settings.download, workers=settings.workers)
    store = source.load_train(labelled_only=True, image_size=_LABELS_ONLY_IMAGE_SIZE)
    subset = make_subset_file(settings.dataset, store.labels, settings.labelled_per_class, settings.seed)
    sha = subset.write(settings.out)
    print(
        f"wrote {settings.out}: {subset.labelled.numel()} labelled (up to {settings.labelled_per_class} per class, "
        f"seed {settings.seed}) and {subset.unlabelled.numel()} unlabelled of {subset.images} {settings.dataset} "
        f"training images; sha256 {sha}"
    )
    return 0
