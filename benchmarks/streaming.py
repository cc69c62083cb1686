"""Streaming from packed shards against the in-memory store, side by side in one run, with peak memory.

Rows:
  (d) simclr end to end on an image folder held in memory (``run_pretraining``, ResNet-18 CIFAR stem);
  (e) the same images packed (``simclr data pack``) and streamed: decoded and cropped per image by one
      litdata loader worker, the rest of the views batched as in (d). On a CPU the ResNet-18 step is the
      bottleneck here, so (e)/(d) says little about the loader;
  (f) the streaming loader alone at 224 px (2 views, no model), from photo-like JPEGs of 500 x 375 px and
      ~100-150 KB (:mod:`photos`), read cold (the pack's files dropped from the page cache before the row),
      with 1 and 2 worker processes: what one core can feed a GPU;
  (g) end to end where the loader is the bottleneck: the same photos at 224 px, held in memory (g1) or
      streamed with one loader worker (g2), with a backbone made cheap (one strided convolution) so that the
      data path, not the model, sets the pace: whether streaming can feed a fast GPU.
Each row runs in its own process, so its peak RSS is its own (main process, and the largest loader worker).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "cifar10"
sys.path.insert(0, str(Path(__file__).resolve().parent))

from photos import drop_from_page_cache, make_photo_folder, mean_file_kb  # noqa: E402
from throughput import StepTimer, emit_report, images_per_second, machine_description  # noqa: E402

PHOTOS = 2000  # photo-like JPEGs for rows (f) and (g)


def peak_rss_mb() -> dict[str, float]:
    """Peak resident memory of this process and of its largest finished child (loader workers), in MB."""
    return {
        "main_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "worker_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


def make_folder(source: Path, out: Path, per_class: int, size: int | None) -> Path:
    """The first ``per_class`` CIFAR-10 training images of each class, at ``size`` px (bicubic) when given."""
    for class_dir in sorted((source / "train").iterdir()):
        target = out / class_dir.name
        target.mkdir(parents=True, exist_ok=True)
        for image in sorted(class_dir.iterdir())[:per_class]:
            if size is None:
                shutil.copyfile(image, target / image.name)
            else:
                with Image.open(image) as img:
                    img.convert("RGB").resize((size, size), Image.Resampling.BICUBIC).save(
                        target / image.name, quality=90
                    )
    return out


def cheap_backbone() -> Any:
    """A backbone that costs next to nothing (one strided convolution and a pooling), so a run's pace is
    the data path's."""
    from torch import nn

    return nn.Sequential(nn.Conv2d(3, 16, 8, stride=8), nn.AdaptiveAvgPool2d(1), nn.Flatten())


def row_end_to_end(args: argparse.Namespace) -> dict[str, Any]:
    from simclr.config import build_config
    from simclr.training.pretrain import run_pretraining

    timer = StepTimer()
    with tempfile.TemporaryDirectory() as tmp:
        streamed = args.row == "packed"
        values: dict[str, Any] = dict(
            dataset="packed" if streamed else "imagefolder",
            data_dir=str(args.packed if streamed else args.folder),
            batch_size=args.batch_size,
            epochs=1,
            max_steps=args.steps + args.warmup,
            knn_every_epochs=0,
            checkpoint_every_steps=0,
            workers=1,
            out=str(Path(tmp) / "run"),
        )
        if args.cheap_model:  # the loader-bound rows: photos at 224 px, held whole when in memory
            values.update(image_size=224, memory_budget="64GB")
        backbone = cheap_backbone() if args.cheap_model else None
        run_pretraining(build_config({}, values), quiet=True, extra_callbacks=[timer], backbone=backbone)
    return {"images_per_s": images_per_second(timer.times, args.batch_size, args.warmup), **peak_rss_mb()}


def row_loader(args: argparse.Namespace) -> dict[str, Any]:
    from litdata import StreamingDataLoader

    from simclr.data.streaming import PackedSplit
    from simclr.views.config import ViewConfig

    drop_from_page_cache(args.packed)  # read cold, as a first epoch over data bigger than memory is
    dataset = PackedSplit(args.packed / "train").views(2, ViewConfig(size=224), seed=0)
    loader = StreamingDataLoader(dataset, batch_size=32, num_workers=args.loader_workers, drop_last=True)
    start, images = 0.0, 0
    for index, batch in enumerate(loader):
        if index == 3:
            start, images = time.perf_counter(), 0
        elif index > 3:
            images += batch["views"].shape[0]
    rate = images / (time.perf_counter() - start)
    return {"images_per_s": rate, "per_worker": rate / args.loader_workers, **peak_rss_mb()}


def run_row(row: str, *extra: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--row", row, *extra], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--record", type=Path, default=None, help="append the results to this markdown file")
    parser.add_argument("--row", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--packed", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--loader-workers", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--cheap-model", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.row in ("memory", "packed"):
        print(json.dumps(row_end_to_end(args)))
        return 0
    if args.row == "loader":
        print(json.dumps(row_loader(args)))
        return 0

    from simclr.data.pack_settings import PackConfig
    from simclr.data.packed import pack_dataset

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        per_class = -(-args.batch_size * (args.steps + args.warmup + 1) // 10)
        folder = make_folder(args.data_dir, work / "cifar", per_class, None)
        pack_dataset(str(folder), work / "cifar-packed", PackConfig(workers=2))
        photos = make_photo_folder(work / "photos", PHOTOS)
        photo_kb = mean_file_kb(photos)
        pack_dataset(str(photos), work / "photos-packed", PackConfig(workers=2))
        common = ["--batch-size", str(args.batch_size), "--steps", str(args.steps), "--warmup", str(args.warmup)]
        cheap = ["--batch-size", "32", "--steps", str(args.steps), "--warmup", str(args.warmup), "--cheap-model"]
        rows: dict[str, list[dict[str, Any]]] = {key: [] for key in ("d", "e", "f1", "f2", "g1", "g2")}
        for round_ in range(args.repeats):
            rows["d"].append(run_row("memory", "--folder", str(folder), *common))
            rows["e"].append(run_row("packed", "--packed", str(work / "cifar-packed"), *common))
            for workers in (1, 2):
                packed = ["--packed", str(work / "photos-packed"), "--loader-workers", str(workers)]
                rows[f"f{workers}"].append(run_row("loader", *packed))
            rows["g1"].append(run_row("memory", "--folder", str(photos), *cheap))
            rows["g2"].append(run_row("packed", "--packed", str(work / "photos-packed"), *cheap))
            print(f"round {round_ + 1}: " + ", ".join(f"({k}) {v[-1]['images_per_s']:.1f}" for k, v in rows.items()))

    def median(key: str, field: str = "images_per_s") -> float:
        return statistics.median(r[field] for r in rows[key])

    def rss(key: str) -> str:
        return f"{median(key, 'main_mb'):.0f} / {median(key, 'worker_mb'):.0f}"

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO)
    import torch

    lines = [
        f"### Streaming, {time.strftime('%Y-%m-%d')}, {machine_description(torch.device('cpu'))}",
        "",
        f"Command: `make bench  # {' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])}` "
        f"(commit {commit.stdout.strip() or 'unknown'}); median of {args.repeats} rounds, each row in its own process.",
        f"(d)/(e): ResNet-18 CIFAR stem, batch {args.batch_size}, 2 views, {args.steps} timed steps after "
        f"{args.warmup}, the same {per_class * 10} CIFAR-10 JPEGs; (f): {PHOTOS:,} photo-like JPEGs of 500 x 375 "
        f"px ({photo_kb:.0f} KB on average), packed, read cold, 2 views of 224 px, batch 32, no model; (g): the "
        "same photos at 224 px, batch 32, 2 views, a one-convolution backbone (the data path sets the pace).",
        "",
        "| row | pipeline | images/s | peak RSS MB (main / largest worker) |",
        "|---|---|---|---|",
        f"| (d) | end to end, image folder in memory | {median('d'):.1f} | {rss('d')} |",
        f"| (e) | end to end, packed shards streamed (1 loader worker) | {median('e'):.1f} | {rss('e')} |",
        f"| (f1) | loader only, 224 px, 1 worker | {median('f1'):.0f} ({median('f1', 'per_worker'):.0f} per worker) "
        f"| {rss('f1')} |",
        f"| (f2) | loader only, 224 px, 2 workers | {median('f2'):.0f} ({median('f2', 'per_worker'):.0f} per worker) "
        f"| {rss('f2')} |",
        f"| (g1) | end to end, cheap model, photos held in memory | {median('g1'):.1f} | {rss('g1')} |",
        f"| (g2) | end to end, cheap model, photos streamed (1 loader worker) | {median('g2'):.1f} | {rss('g2')} |",
        "",
        f"Ratio (e)/(d) = **{median('e') / median('d'):.2f}** (target >= 0.9, model-bound); loader-bound ratio "
        f"(g2)/(g1) = **{median('g2') / median('g1'):.2f}**; loader per worker process = "
        f"**{median('f1', 'per_worker'):.0f}** images/s at 224 px from photo-like JPEGs read cold (target >= 400 "
        f"per core): **{10_000 / median('f1', 'per_worker'):.0f}** loader cores per 10,000 images/s of GPU "
        "throughput.",
        "",
    ]
    emit_report(lines, args.record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
