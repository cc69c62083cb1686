"""Peak memory and step time of a training step with and without ``--micro-batch`` (gradient caching), side by
side in one run.

One step is :meth:`SimCLRModule.training_step` (views of a batch of 32 px images, ResNet-18 with the CIFAR
stem, NT-Xent) as ``simclr pretrain`` builds it, its backward pass and an SGD step. Each row runs in its own
process, so its peak memory is its own: the peak resident set of the process (``ru_maxrss``) on the CPU, the
peak of the CUDA allocator on a GPU. Both rows compute the same loss and gradients (up to rounding and
BatchNorm's per-micro-batch statistics); the micro-batched row holds the activations of M images at a time
and pays about one extra forward pass.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from module_steps import time_steps  # noqa: E402
from throughput import emit_report, machine_description  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def row(args: argparse.Namespace) -> dict[str, Any]:
    """Time ``args.steps`` steps after one untimed step; return seconds per step and the peak memory."""
    import torch

    from simclr.config import build_config
    from simclr.hardware import pick_device

    device = pick_device(args.accelerator)
    config = build_config(
        {},
        dict(dataset="cifar10", image_size=32, batch_size=args.batch_size, micro_batch=args.micro_batch or None),
    )
    times, loss = time_steps(config, args.steps, device)
    peak_mb = (
        torch.cuda.max_memory_allocated(device) / 2**20
        if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return {"seconds": statistics.median(times[1:]), "peak_mb": peak_mb, "loss": loss, "device": str(device)}


def run_row(micro_batch: int, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, __file__, "--row", "--batch-size", str(args.batch_size), "--steps", str(args.steps)]
    command += ["--micro-batch", str(micro_batch), "--accelerator", args.accelerator]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def table_row(setting: str, result: dict[str, Any]) -> str:
    return f"| {setting} | {result['seconds']:.2f} | {result['peak_mb']:.0f} | {result['loss']:.4f} |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=1024, help="images per step (x2 views)")
    parser.add_argument("--micro-batch", type=int, default=128, help="M of the micro-batched row")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per row, after one untimed step")
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--record", type=Path, default=None, help="append the results to this markdown file")
    parser.add_argument("--row", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.row:
        print(json.dumps(row(args)))
        return 0

    import torch

    full, micro = run_row(0, args), run_row(args.micro_batch, args)
    device = torch.device(full["device"])
    unit = "peak CUDA memory allocated" if device.type == "cuda" else "peak RSS of the row's process"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO)
    lines = [
        f"### Micro-batches (gradient caching), {time.strftime('%Y-%m-%d')}, {machine_description(device)}",
        "",
        f"Command: `{' '.join(['python', 'benchmarks/micro_batch.py', *sys.argv[1:]])}` "
        f"(commit {commit.stdout.strip() or 'unknown'}); ResNet-18 CIFAR stem, 32 px, batch {args.batch_size} x 2 "
        f"views, float32, "
        f"SGD; median of {args.steps} timed steps after one untimed step; each row in its own process.",
        "",
        f"| setting | seconds per step | {unit} (MB) | loss at the last step |",
        "|---|---|---|---|",
        table_row(f"batch {args.batch_size} in one pass", full),
        table_row(f"`--micro-batch {args.micro_batch}`", micro),
        "",
        f"Memory: **{micro['peak_mb'] / full['peak_mb']:.2f}x**; "
        f"time per step: **{micro['seconds'] / full['seconds']:.2f}x** "
        "(one extra forward pass costs about 1.33x; the losses differ only through BatchNorm's per-micro-batch "
        "statistics in training mode).",
        "",
    ]
    emit_report(lines, args.record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
