"""Training throughput of simclr against the common per-image pipeline, side by side in one run.

Rows (ResNet-18 with the CIFAR stem, batch 128, 2 views, 32px CIFAR-10, NT-Xent):
  (a) simclr end to end: ``run_pretraining`` (in-memory uint8 store, batched views on the device,
      automatic precision, channels_last, LARS, Lightning loop, metrics and checkpoints as in a real run);
  (b) simclr model-only: the same model, precision and optimiser on one fixed pre-made batch of views,
      i.e. the ceiling that data and views could reach;
  (c) per-image baseline: torchvision transforms per image in DataLoader workers, fp32, default memory
      format, SGD, as lightly's examples do.
Numbers are source images per second (each image gives 2 views) over the timed steps after warm-up.
The machine is shared and noisy, so the ratios (a)/(c) and (a)/(b) are what the benchmark is about.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch

from simclr.atomic import write_text_atomic
from simclr.config import build_config
from simclr.data.catalog import load_dataset
from simclr.hardware import resolve_precision, uses_gpu
from simclr.losses.ntxent import NTXentLoss
from simclr.models.backbones import build_backbone
from simclr.models.heads import build_head
from simclr.models.simclr_model import SimCLRModel
from simclr.optim.build import build_optimizer

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "cifar10"


class StepTimer(L.Callback):
    """Wall-clock time at the end of every training step."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_batch_end(self, *args: Any) -> None:
        self.times.append(time.perf_counter())


def images_per_second(times: list[float], batch: int, warmup: int) -> float:
    timed = times[warmup:]
    return batch * (len(timed) - 1) / (timed[-1] - timed[0])


def bench_end_to_end(data_dir: Path, batch: int, steps: int, warmup: int, accelerator: str) -> float:
    from simclr.training.pretrain import run_pretraining

    timer = StepTimer()
    with tempfile.TemporaryDirectory() as tmp:
        config = build_config(
            {},
            dict(
                dataset="cifar10",
                data_dir=str(data_dir),
                limit_train_images=batch * (steps + warmup + 1),
                batch_size=batch,
                epochs=1,
                max_steps=steps + warmup,
                knn_every_epochs=0,
                out=str(Path(tmp) / "run"),
                accelerator=accelerator,
                checkpoint_every_steps=0,
            ),
        )
        run_pretraining(config, quiet=True, extra_callbacks=[timer])
    return images_per_second(timer.times, batch, warmup)


def _model(device: torch.device, channels_last: bool) -> SimCLRModel:
    backbone, dim = build_backbone("resnet18", "cifar")
    head, out = build_head("mlp", dim)
    model = SimCLRModel(backbone, head, dim, out).to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model  # type: ignore[call-overload]


def bench_model_only(batch: int, steps: int, warmup: int, device: torch.device, precision: str) -> float:
    torch.manual_seed(0)
    model = _model(device, channels_last=True)
    optimizer = build_optimizer(model, "lars", lr=0.3 * batch / 256, weight_decay=1e-6)
    loss_fn = NTXentLoss(0.5)
    views = torch.randn(2 * batch, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    dtype = torch.bfloat16 if precision == "bf16-mixed" else torch.float16
    times = []
    for _ in range(steps + warmup):
        with torch.autocast(device.type, dtype=dtype, enabled=precision != "32"):
            _, z = model(views)
            loss = loss_fn(*z.chunk(2))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter())
    return images_per_second(times, batch, warmup)


class _PerImageViews(torch.utils.data.Dataset):
    """Two torchvision-transformed views per PIL image, made in the DataLoader workers."""

    def __init__(self, images: torch.Tensor) -> None:
        from torchvision import transforms as T

        self.images = images
        self.to_pil = T.ToPILImage()
        self.transform = T.Compose(
            [
                T.RandomResizedCrop(32, scale=(0.08, 1.0)),
                T.RandomHorizontalFlip(),
                T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
                T.RandomGrayscale(p=0.2),
                T.ToTensor(),
                T.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
            ]
        )

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.to_pil(self.images[index])
        return self.transform(image), self.transform(image)


def bench_per_image(data_dir: Path, batch: int, steps: int, warmup: int, device: torch.device, workers: int) -> float:
    torch.manual_seed(0)
    store = load_dataset("cifar10", "train", data_dir=data_dir, limit=batch * (steps + warmup + 1), seed=0, workers=2)
    loader = torch.utils.data.DataLoader(
        _PerImageViews(store.images),
        batch_size=batch,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=device.type == "cuda",
    )
    model = _model(device, channels_last=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.06 * batch / 128, momentum=0.9, weight_decay=5e-4)
    loss_fn = NTXentLoss(0.5)
    times = []
    for step, (x0, x1) in enumerate(loader):
        if step >= steps + warmup:
            break
        _, z = model(torch.cat([x0, x1]).to(device, non_blocking=True))
        loss = loss_fn(*z.chunk(2))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter())
    return images_per_second(times, batch, warmup)


def machine_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, {os.cpu_count()} CPU cores"
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, {platform.system()}"


def emit_report(lines: list[str], record: Path | None, replace: str | None = None) -> None:
    """Print a benchmark's markdown section and add it to ``record`` (BENCHMARKS.md) when given: appended, or,
    with ``replace`` (how its heading line starts, e.g. ``"### Time to accuracy"``), in place of the section of
    that heading already there (up to the next heading of its level or above), so the file keeps one."""
    report = "\n".join(lines)
    print(report)
    if not record:
        return
    if replace is None or not record.is_file():
        with open(record, "a") as handle:
            handle.write("\n" + report)
        return
    kept = record.read_text().splitlines()
    start = next((n for n, line in enumerate(kept) if line.startswith(replace)), None)
    if start is None:
        kept += ["", *lines]
    else:
        heading = re.compile(f"#{{1,{len(replace) - len(replace.lstrip('#'))}}} ")  # its level or above
        end = next((n for n in range(start + 1, len(kept)) if heading.match(kept[n])), len(kept))
        kept[start:end] = [*lines, ""] if end < len(kept) and lines[-1:] != [""] else lines
    write_text_atomic(record, "\n".join(kept) + "\n", what="benchmark record", fix="or record elsewhere")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=12, help="timed steps per row")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per row")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of (a), (b), (c); the median is reported")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the per-image baseline")
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--record", type=Path, default=None, help="append the results to this markdown file")
    args = parser.parse_args()

    gpu = uses_gpu(args.accelerator)
    device = torch.device("cuda" if gpu else "cpu")
    precision = resolve_precision("auto", gpu)
    rows: dict[str, list[float]] = {"a": [], "b": [], "c": []}
    for round_ in range(args.repeats):
        rows["a"].append(bench_end_to_end(args.data_dir, args.batch_size, args.steps, args.warmup, args.accelerator))
        rows["b"].append(bench_model_only(args.batch_size, args.steps, args.warmup, device, precision))
        rows["c"].append(bench_per_image(args.data_dir, args.batch_size, args.steps, args.warmup, device, args.workers))
        print(f"round {round_ + 1}: " + ", ".join(f"({k}) {v[-1]:.1f}" for k, v in rows.items()), flush=True)
    a, b, c = (statistics.median(rows[k]) for k in "abc")
    command = "make bench  # " + " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO
    ).stdout.strip()
    lines = [
        f"### Throughput, {time.strftime('%Y-%m-%d')}, {machine_description(device)}",
        "",
        f"Command: `{command}` (commit {commit or 'unknown'}); ResNet-18 CIFAR stem, batch {args.batch_size}, "
        "2 views, 32px CIFAR-10;",
        f"median of {args.repeats} rounds, {args.steps} timed steps each after {args.warmup} warm-up steps; "
        "source images/s (x2 views).",
        "",
        "| row | pipeline | precision | images/s |",
        "|---|---|---|---|",
        f"| (a) | simclr end to end (`run_pretraining`) | {precision}, channels_last | {a:.1f} |",
        f"| (b) | simclr model-only step, fixed batch | {precision}, channels_last | {b:.1f} |",
        f"| (c) | per-image torchvision transforms, {args.workers} DataLoader workers | 32 | {c:.1f} |",
        "",
        f"Ratios: (a)/(c) = **{a / c:.2f}** (target >= 2.5), (a)/(b) = **{a / b:.2f}** (target >= 0.85).",
        "",
    ]
    emit_report(lines, args.record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
