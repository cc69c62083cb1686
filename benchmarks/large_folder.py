"""Pretraining on a folder far bigger than memory: generate it, pack it, stream it, and watch the memory.

1. Generate N JPEGs of about 256 px (CIFAR-10 training images upscaled bicubically, each with its own
   random crop, flip and colour shift, so no two files are the same), in class sub-folders.
2. ``simclr data pack`` them into litdata shards.
3. ``simclr pretrain --dataset packed`` for a few hundred steps (ResNet-18, views cut at ``--image-size``
   from the stored 256 px images by loader workers).
4. ``simclr pretrain --dataset imagefolder`` on the folder itself at its native size for one step: the
   memory-budget decision it logs (the in-memory path would need N x 3 x 256 x 256 bytes), after which it
   streams from the pack made in step 2.
Every step runs as its own process; the peak of its whole process tree's resident memory (loader and
packing workers included, summed) is reported. Results go to BENCHMARKS.md with ``--record``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "cifar10"
SIMCLR = [sys.executable, "-m", "simclr"]


def _generate(task: tuple[list[Path], Path, int, int]) -> int:
    sources, out, start, count = task
    rng = np.random.default_rng(start)
    for i in range(start, start + count):
        source = sources[i % len(sources)]
        with Image.open(source) as img:
            img = img.convert("RGB")
        left, top = rng.integers(0, 5, size=2)
        img = img.crop((int(left), int(top), int(left) + 28, int(top) + 28)).resize(
            (256, 256), Image.Resampling.BICUBIC
        )
        if rng.random() < 0.5:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        img = ImageEnhance.Color(img).enhance(float(rng.uniform(0.6, 1.4)))
        target = out / source.parent.name / f"{i:07d}.jpg"
        img.save(target, quality=90)
    return count


def generate(data_dir: Path, out: Path, count: int, workers: int) -> None:
    sources = sorted((data_dir / "train").rglob("*.jpg"))
    for class_dir in {s.parent.name for s in sources}:
        (out / class_dir).mkdir(parents=True, exist_ok=True)
    step = 5_000
    tasks = [(sources, out, start, min(step, count - start)) for start in range(0, count, step)]
    with mp.get_context("fork").Pool(workers) as pool:
        done = 0
        for made in pool.imap_unordered(_generate, tasks):
            done += made
            print(f"generated {done}/{count}", flush=True)


def _tree_rss_kb(root: int) -> int:
    """Resident memory of process ``root`` and all its descendants, summed (shared pages counted twice:
    an upper bound)."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
        except OSError:
            continue
        pid = int(status.parent.name)
        parents[pid] = int(fields.get("PPid", "0"))
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0])
    total = 0
    for pid in rss:
        ancestor = pid
        while ancestor not in (0, 1) and ancestor != root:
            ancestor = parents.get(ancestor, 0)
        if ancestor == root:
            total += rss[pid]
    return total


def timed(command: list[str], log: Path) -> tuple[float, float, str]:
    """Run ``command``: wall seconds, the peak of its whole process tree's summed RSS in GB, its output."""
    start = time.perf_counter()
    with open(log, "w") as handle:
        proc = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, text=True)
        peak = 0
        while proc.poll() is None:
            peak = max(peak, _tree_rss_kb(proc.pid))
            time.sleep(0.5)
    wall = time.perf_counter() - start
    output = log.read_text()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed; see {log}")
    return wall, peak / 2**20, output


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="a folder with room for the images and the pack")
    parser.add_argument("--images", type=int, default=200_000)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=64, help="side of the training views")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--record", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the generated folder and the pack")
    args = parser.parse_args()
    folder, packed = args.work / "folder", args.work / "packed"
    if not folder.is_dir():
        start = time.perf_counter()
        generate(args.data_dir, folder, args.images, args.workers)
        print(f"generated {args.images} JPEGs in {time.perf_counter() - start:.0f} s", flush=True)
    folder_gb = sum(p.stat().st_size for p in folder.rglob("*.jpg")) / 2**30
    pack_wall, pack_rss, _ = timed(
        [*SIMCLR, "data", "pack", str(folder), str(packed), "--workers", str(args.workers)], args.work / "pack.log"
    )
    train = [
        *SIMCLR, "pretrain", "--dataset", "packed", "--data-dir", str(packed), "--image-size", str(args.image_size),
        "--batch-size", str(args.batch_size), "--max-steps", str(args.steps), "--epochs", "1",
        "--workers", str(args.workers), "--knn-every-epochs", "0", "--out", str(args.work / "run"), "--quiet",
    ]  # fmt: skip
    shutil.rmtree(args.work / "run", ignore_errors=True)
    train_wall, train_rss, _ = timed(train, args.work / "train.log")
    budget = [
        *SIMCLR, "pretrain", "--dataset", "imagefolder", "--data-dir", str(folder), "--pack-dir", str(packed),
        "--batch-size", "8", "--max-steps", "1", "--epochs", "1", "--workers", "1", "--knn-every-epochs", "0",
        "--out", str(args.work / "budget-run"),
    ]  # fmt: skip
    shutil.rmtree(args.work / "budget-run", ignore_errors=True)
    _, budget_rss, output = timed(budget, args.work / "budget.log")
    decision = next(line for line in output.splitlines() if "memory budget" in line)
    packed_gb = sum(p.stat().st_size for p in packed.rglob("*") if p.is_file()) / 2**30
    steps_per_s = args.steps / train_wall

    import torch
    from throughput import emit_report, machine_description  # noqa: E402  (this folder is on sys.path when run as a script)

    lines = [
        f"### Large folder, {time.strftime('%Y-%m-%d')}, {machine_description(torch.device('cpu'))}",
        "",
        f"Command: `python benchmarks/large_folder.py --work WORK {' '.join(sys.argv[3:])}`; "
        f"{args.images:,} JPEGs of 256 px ({folder_gb:.1f} GB on disk; decoded in memory they would take "
        f"{args.images * 3 * 256 * 256 / 2**30:.1f} GB).",
        "",
        "| step | wall | peak RSS |",
        "|---|---|---|",
        f"| `simclr data pack` ({args.workers} processes; {packed_gb:.1f} GB of shards) | {pack_wall:.0f} s "
        f"| {pack_rss:.2f} GB |",
        f"| `simclr pretrain --dataset packed`, {args.steps} steps of {args.batch_size} at {args.image_size} px, "
        f"{args.workers} loader workers | {train_wall:.0f} s ({steps_per_s:.2f} steps/s) | {train_rss:.2f} GB |",
        f"| `simclr pretrain --dataset imagefolder` on the folder, 1 step | - | {budget_rss:.2f} GB |",
        "",
        f"The image-folder run logged: `{decision.strip()}`",
        "",
    ]
    emit_report(lines, args.record)
    if not args.keep:
        shutil.rmtree(folder)
        shutil.rmtree(packed)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
