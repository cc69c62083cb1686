"""Streamed views decoded in the loader workers (Pillow, the default) vs in batches on the training device
(``--decode device``: torchvision's decoder, nvJPEG on CUDA), side by side in one run.

Both rows deliver the same thing: ``(B, 2, 3, 224, 224)`` uint8 views of packed ~256 px JPEGs on the device,
ready for the batched photometric ops; no model. On a CPU the "device" is the CPU (a check that the script
works, not a measurement of nvJPEG).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from streaming import DEFAULT_DATA, make_folder  # noqa: E402
from throughput import emit_report, machine_description  # noqa: E402


def views_per_second(packed: Path, decode: str, device: torch.device, workers: int, batch: int, warmup: int) -> float:
    """Source images per second through the loader (and the device decode) after ``warmup`` batches."""
    from litdata import StreamingDataLoader

    from simclr.data.streaming import PackedSplit, collate_encoded, decode_on_device
    from simclr.views.config import ViewConfig
    from simclr.views.per_image import crop_views_on_device

    config = ViewConfig(size=224)
    split = PackedSplit(packed / "train")
    on_device = decode == "device"
    dataset = split.encoded(2, config, seed=0) if on_device else split.views(2, config, seed=0)
    loader = StreamingDataLoader(
        dataset,
        batch_size=batch,
        num_workers=workers,
        drop_last=True,
        collate_fn=collate_encoded if on_device else None,
    )
    start, images = 0.0, 0
    for index, item in enumerate(loader):
        if on_device:
            views = crop_views_on_device(decode_on_device(item["encoded"], device), item["boxes"], config.size)
        else:
            views = item["views"].to(device, non_blocking=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if index == warmup:
            start, images = time.perf_counter(), 0
        elif index > warmup:
            images += views.shape[0]
    return images / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--workers", type=int, default=2, help="loader worker processes (both rows)")
    parser.add_argument("--per-class", type=int, default=300, help="CIFAR-10 images per class, upscaled to 256 px")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--record", type=Path, default=None, help="append the results to this markdown file")
    args = parser.parse_args()
    device = torch.device(args.device)

    from simclr.data.pack_settings import PackConfig
    from simclr.data.packed import pack_dataset

    rates: dict[str, list[float]] = {"cpu": [], "device": []}
    with tempfile.TemporaryDirectory() as tmp:
        photos = make_folder(args.data_dir, Path(tmp) / "photos", args.per_class, 256)
        pack_dataset(str(photos), Path(tmp) / "packed", PackConfig(workers=2))
        for round_ in range(args.repeats):
            for decode in rates:
                rate = views_per_second(
                    Path(tmp) / "packed", decode, device, args.workers, args.batch_size, args.warmup
                )
                rates[decode].append(rate)
            print(f"round {round_ + 1}: " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in rates.items()))
    cpu, on_device = statistics.median(rates["cpu"]), statistics.median(rates["device"])
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO)
    command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
    lines = [
        f"### Streamed decoding, {time.strftime('%Y-%m-%d')}, {machine_description(device)}",
        "",
        f"Command: `{command}` (commit {commit.stdout.strip() or 'unknown'}); "
        f"median of {args.repeats} rounds; {args.per_class * 10} CIFAR-10 images upscaled to 256 px JPEGs, packed; "
        f"2 views of 224 px, batch {args.batch_size}, {args.workers} loader worker(s), no model.",
        "",
        "| decode | where | source images/s to the device |",
        "|---|---|---|",
        f"| `--decode cpu` | Pillow in the loader workers, views copied to {device.type} | {cpu:.0f} |",
        f"| `--decode device` | torchvision on {device.type} in batches, crops there | {on_device:.0f} |",
        "",
        f"Ratio device / cpu = **{on_device / cpu:.2f}**.",
        "",
    ]
    emit_report(lines, args.record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
