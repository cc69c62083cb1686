"""More negatives on the CPU: one large batch, the same batch in micro-batches (``--micro-batch``), and a small
batch with a queue of earlier embeddings (``--queue-size``), at the same number of negatives per anchor, with
the small batch alone as the baseline. Side by side in one run, each row in its own process.

Every row is ``simclr pretrain`` on the same CIFAR-10 subset for the same number of images (so the small batch
takes more steps), then ``simclr knn`` (k=200, T=0.1) on held-out test images. Per anchor, a batch of B images
with 2 views gives 2B-2 negatives; a queue of K adds K: batch 256 and batch 32 with a queue of 448 both give
510. What differs (docs/LARGE_BATCHES.md): the micro-batched row computes the loss and gradients of the large
batch (BatchNorm's statistics per micro-batch aside); the queue's negatives come from earlier, older weights and
carry no gradient, and its run takes 8x the steps of the large batch, each a small one.

Short runs from random weights are noisy: the kNN column shows that nothing is broken and how far apart the
estimators start, not which wins at full length.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from throughput import DEFAULT_DATA, REPO, emit_report, machine_description  # noqa: E402


def rows(batch: int, micro_batch: int, small_batch: int) -> list[tuple[str, int, list[str]]]:
    """``(label, batch, extra flags)`` of each row; the queue gives the small batch the large batch's negatives."""
    queue = 2 * batch - 2 - (2 * small_batch - 2)
    return [
        (f"batch {batch}, one pass", batch, []),
        (f"batch {batch}, `--micro-batch {micro_batch}`", batch, ["--micro-batch", str(micro_batch)]),
        (f"batch {small_batch}, `--queue-size {queue}`", small_batch, ["--queue-size", str(queue)]),
        (f"batch {small_batch} (baseline)", small_batch, []),
    ]


def run_process(command: list[str]) -> tuple[float, float]:
    """Run ``command``; return its wall seconds and its peak resident set in MB (its own, from wait4)."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own usage: its peak, not the largest row's
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({proc.returncode}):\n{stderr}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024


def final_loss(run: Path) -> float:
    with open(run / "metrics.csv", newline="") as handle:
        return [float(r["train_loss"]) for r in csv.DictReader(handle) if r["train_loss"]][-1]


def knn_top1(run: Path, args: argparse.Namespace) -> float:
    k = min(200, args.images)  # a toy run's bank may hold fewer than 200 images
    command = [sys.executable, "-m", "simclr", "knn", str(run), "--k", str(k), "--temperature", "0.1"]
    command += ["--limit-train-images", str(args.images), "--limit-test-images", str(args.test_images)]
    subprocess.run(command, check=True, capture_output=True, text=True)
    results = json.loads((run / "eval" / "metrics.json").read_text())
    return float(results["results"]["knn"]["metrics"][f"k{k}"]["top1"])


def bench_row(flags: list[str], batch: int, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, "-m", "simclr", "pretrain", "--dataset", "cifar10", "--data-dir", str(args.data_dir)]
    command += ["--image-size", str(args.image_size), "--limit-train-images", str(args.images)]
    command += ["--epochs", str(args.epochs), "--knn-every-epochs", "0", "--precision", "32", "--quiet"]
    command += ["--batch-size", str(batch), "--out", str(out), *flags]
    _, peak_mb = run_process(command)
    training = yaml.safe_load((out / "environment.yaml").read_text())["training"]
    return {
        "seconds": training["training_seconds"],
        "steps": training["steps"],
        "peak_mb": peak_mb,
        "loss": final_loss(out),
        "knn": knn_top1(out, args),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--batch-size", type=int, default=256, help="the large batch")
    parser.add_argument("--micro-batch", type=int, default=32)
    parser.add_argument("--small-batch", type=int, default=32, help="the batch of the queue's row and the baseline")
    parser.add_argument("--images", type=int, default=4096, help="training images (and the kNN bank)")
    parser.add_argument("--test-images", type=int, default=2000, help="kNN queries from the test split")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=16, help="views of this size: a quarter of 32 px's compute")
    parser.add_argument("--record", type=Path, default=None, help="append the results to this markdown file")
    args = parser.parse_args()

    import torch

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for index, (label, batch, flags) in enumerate(rows(args.batch_size, args.micro_batch, args.small_batch)):
            result = bench_row(flags, batch, Path(tmp) / f"row{index}", args)
            print(label, result, flush=True)
            results.append((label, result))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO)
    negatives = 2 * args.batch_size - 2
    lines = [
        f"### Negatives: micro-batches and a queue, {time.strftime('%Y-%m-%d')}, "
        f"{machine_description(torch.device('cpu'))}",
        "",
        f"Command: `{' '.join(['python', 'benchmarks/negatives.py', *sys.argv[1:]])}` "
        f"(commit {commit.stdout.strip() or 'unknown'}); ResNet-18 CIFAR stem, {args.image_size} px views, "
        f"{args.images} CIFAR-10 training images x {args.epochs} epochs per row, float32, the default LARS with "
        f"the learning rate scaled by the batch; kNN k=200, T=0.1, the training images as the bank, "
        f"{args.test_images} test images as queries. {negatives} negatives per anchor in the first three rows.",
        "",
        "| setting | steps | training seconds | peak RSS (MB) | last logged loss | kNN top-1 |",
        "|---|---|---|---|---|---|",
    ]
    for label, r in results:
        lines.append(
            f"| {label} | {r['steps']} | {r['seconds']:.0f} | {r['peak_mb']:.0f} | {r['loss']:.3f} | {r['knn']:.3f} |"
        )
    lines.append("")
    emit_report(lines, args.record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
