"""Photo-like JPEGs for the loader benchmarks, and reading files cold.

Real photographs (ImageNet, a phone's camera roll) are JPEGs of about 500 x 375 px and 100-150 KB; upscaled
CIFAR-10 images compress to a few KB and decode several times faster, so a loader measured on them promises
more than it keeps. These images are made to cost what photos cost to decode: smooth colour fields and
shapes (edges), a blurred texture and sensor-like noise, saved at JPEG quality 92.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

WIDTH, HEIGHT = 500, 375
QUALITY = 92


def photo_like(seed: int, width: int = WIDTH, height: int = HEIGHT) -> Image.Image:
    """One photo-like RGB image, the same for the same seed."""
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize(
        (width, height), Image.Resampling.BICUBIC
    )
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        left, top = int(rng.integers(0, width)), int(rng.integers(0, height))
        box = [left, top, left + int(rng.integers(10, 200)), top + int(rng.integers(10, 150))]
        draw.ellipse(box, fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    pixels = np.asarray(image.filter(ImageFilter.GaussianBlur(1.5))).astype(np.float32)
    grain = rng.normal(0, 40, (height // 2, width // 2)).clip(-128, 127).astype(np.float32) + 128
    texture = np.asarray(
        Image.fromarray(grain.astype(np.uint8)).resize((width, height), Image.Resampling.BILINEAR)
    ).astype(np.float32)
    pixels += (texture[..., None] - 128) * 1.4 + rng.normal(0, 16, pixels.shape)
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def _write(task: tuple[Path, int, int]) -> None:
    out, start, count = task
    for index in range(start, start + count):
        folder = out / f"class{index % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        photo_like(index).save(folder / f"{index:06d}.jpg", quality=QUALITY)


def make_photo_folder(out: Path, count: int, workers: int = 2) -> Path:
    """``count`` photo-like JPEGs in 10 class folders under ``out``."""
    per_task = max(1, -(-count // (workers * 4)))
    tasks = [(out, start, min(per_task, count - start)) for start in range(0, count, per_task)]
    with mp.get_context("spawn").Pool(workers) as pool:
        pool.map(_write, tasks)
    return out


def mean_file_kb(folder: Path) -> float:
    sizes = [path.stat().st_size for path in folder.rglob("*.jpg")]
    return sum(sizes) / len(sizes) / 1024


def drop_from_page_cache(folder: Path) -> bool:
    """Ask the kernel to forget the cached pages of every file under ``folder``, so the next read comes from
    the disk (cold), as a first epoch over a dataset bigger than memory does. False where the platform has
    no posix_fadvise (the read may then be warm)."""
    if not hasattr(os, "posix_fadvise"):
        return False
    for path in folder.rglob("*"):
        if path.is_file():
            descriptor = os.open(path, os.O_RDONLY)
            try:
                os.fsync(descriptor)  # dirty pages are not dropped
                os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(descriptor)
    return True
