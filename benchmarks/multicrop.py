"""Training throughput with multi-crop (2 global + N local crops, SwAV's) against plain SimCLR (2 views), side by
side in one run.

One step is :meth:`SimCLRModule.training_step` as ``simclr pretrain`` builds it (views of a batch of 32 px
images made on the device, ResNet-18 with the CIFAR stem, NT-Xent over every view), its backward pass and an
SGD step, float32. The multi-crop row adds N local crops of 16 px per image (scale 0.05-0.3), run through the
network as a second batch. Numbers are source images per second over the timed steps after one untimed step.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from module_steps import time_steps  # noqa: E402
from throughput import emit_report, machine_description  # noqa: E402

from simclr.config import build_config  # noqa: E402
from simclr.hardware import pick_device  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def images_per_second(local_crops: int, args: argparse.Namespace, device: torch.device) -> float:
    """Median images per second of ``args.steps`` steps after one untimed step, with ``local_crops`` local crops."""
    settings = dict(dataset="cifar10", image_size=32, batch_size=args.batch_size, local_crops=local_crops)
    config = build_config({}, dict(settings, local_crop_size=16, local_crop_scale=(0.05, 0.3)))
    seconds, _ = time_steps(config, args.steps, device)
    return args.batch_size / statistics.median(seconds[1:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--local-crops", type=int, default=6, help="N of the multi-crop row")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per row, after one untimed step")
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--record", type=Path, default=None, help="append the results to this markdown file")
    args = parser.parse_args()
    device = pick_device(args.accelerator)
    plain, multicrop = images_per_second(0, args, device), images_per_second(args.local_crops, args, device)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO)
    lines = [
        f"### Multi-crop, {time.strftime('%Y-%m-%d')}, {machine_description(device)}",
        "",
        f"Command: `{' '.join(['python', 'benchmarks/multicrop.py', *sys.argv[1:]])}` "
        f"(commit {commit.stdout.strip() or 'unknown'}); ResNet-18 CIFAR stem, 32 px global crops, 16 px local "
        f"crops, batch {args.batch_size}, float32, SGD; median of {args.steps} timed steps after one untimed step.",
        "",
        "| views per image | images/s |",
        "|---|---|",
        f"| 2 (plain SimCLR) | {plain:.1f} |",
        f"| 2 global + {args.local_crops} local (`--local-crops {args.local_crops} --local-crop-size 16`) "
        f"| {multicrop:.1f} |",
        "",
        f"Multi-crop runs at **{multicrop / plain:.2f}x** the images/s of 2 views.",
        "",
    ]
    emit_report(lines, args.record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
