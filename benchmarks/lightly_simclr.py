"""lightly's own SimCLR pipeline on CIFAR-10 for a wall-clock budget, then the frozen features the evaluation reads.

Run by ``benchmarks/time_to_accuracy.py`` in the virtual environment it creates with lightly from the package
index. It imports lightly, torch, torchvision and numpy only, never simclr: what it measures is lightly's
pipeline as lightly's users run it.

Followed: lightly's CIFAR-10 benchmark, ``docs/source/getting_started/benchmarks/cifar10_benchmark.py``
(``SimCLRModel``, read at lightly commit e8d317f; its README row: SimCLR, batch 128, 200 epochs, kNN 0.847),
and ``examples/pytorch/simclr.py`` for the plain PyTorch loop (no Lightning):

* ``SimCLRTransform(input_size=32, cj_strength=0.5, gaussian_blur=0.0)``: the benchmark's transform (the
  example's differs only in colour jitter 1.0; simclr's own default strength is 0.5 too), ImageNet
  normalisation, its default;
* ``SimCLRProjectionHead(512, 512, 128)`` and ``NTXentLoss()`` (temperature 0.5, its default);
* torchvision's ResNet-18 with the CIFAR stem (3x3 conv, stride 1, no max-pool): the layout of the
  benchmark's ``ResNetGenerator("resnet-18")``, here the same torchvision network simclr and the random
  baseline use, so every row has one architecture;
* SGD lr 0.06 x batch/128, momentum 0.9, weight decay 5e-4, cosine annealing;
* a torchvision ``ImageFolder`` of the CIFAR-10 JPEGs, ``DataLoader(shuffle, drop_last, num_workers=2)``,
  batch 128, fp32 (the benchmark's Lightning default).

The budget: the clock starts when the first batch is asked for (the loader's workers start inside it) and
is read after every step; the run stops at the first step that ends past the budget. The benchmark's cosine
spans a fixed 200 epochs, which a short budget never reaches; here it spans the steps that fit instead,
measured once: after ``SKIPPED_STEPS`` warm-up steps, ``TIMED_STEPS`` steps are timed, and the cosine is
planned over ``steps so far + time left / seconds per step`` (the learning rate stays at the peak until
then, where a cosine over many steps has barely moved), so the schedule ends when the budget does, as
simclr's ``--time-budget`` plans its own.

Output (``--out``): ``features.npz`` (``bank_features``, ``bank_labels``, ``test_features``,
``test_labels``; backbone features of the un-augmented images, written with numpy, read without pickle) and
``training.json`` (steps, images seen, seconds, images/s).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead
from lightly.transforms import SimCLRTransform
from lightly.transforms.utils import IMAGENET_NORMALIZE
from torch import nn
from torchvision import transforms as T

SKIPPED_STEPS = 2  # the first steps start the loader's workers and warm the allocator: not the pace
TIMED_STEPS = 5  # a few seconds on a GPU, about 20 s on a 2-core CPU: short next to a budget of minutes


class SimCLR(nn.Module):
    """The benchmark's ``SimCLRModel`` without Lightning: backbone, then the projection head."""

    def __init__(self) -> None:
        super().__init__()
        resnet = torchvision.models.resnet18()
        resnet.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        resnet.maxpool = nn.Identity()  # type: ignore[assignment]
        self.backbone = nn.Sequential(*list(resnet.children())[:-1])  # up to the global average pool
        self.projection_head = SimCLRProjectionHead(512, 512, 128)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x).flatten(start_dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection_head(self.features(x))


def cosine_lr(peak: float, step: int, total: int) -> float:
    """The cosine annealing of ``CosineAnnealingLR`` (to 0) at ``step`` of ``total``."""
    return peak * 0.5 * (1 + math.cos(math.pi * min(step, total) / total))


def train(model: SimCLR, train_dir: Path, budget_s: float, batch_size: int, workers: int) -> dict[str, float]:
    """Train until the budget is spent or the planned cosine ends; returns what the table reports."""
    device = next(model.parameters()).device
    transform = SimCLRTransform(input_size=32, cj_strength=0.5, gaussian_blur=0.0)
    dataset = torchvision.datasets.ImageFolder(str(train_dir), transform=transform)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=True, drop_last=True, num_workers=workers
    )
    criterion = NTXentLoss()
    peak = 0.06 * batch_size / 128
    optimizer = torch.optim.SGD(model.parameters(), lr=peak, momentum=0.9, weight_decay=5e-4)
    model.train()
    step, planned, paced_from = 0, 0, 0.0
    start = time.perf_counter()
    elapsed = 0.0
    while elapsed < budget_s and (planned == 0 or step < planned):
        for (x0, x1), _ in loader:
            loss = criterion(model(x0.to(device)), model(x1.to(device)))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize()  # the clock reads finished steps, not queued ones
            step += 1
            elapsed = time.perf_counter() - start
            if step == SKIPPED_STEPS:
                paced_from = elapsed
            if step == SKIPPED_STEPS + TIMED_STEPS:
                per_step = (elapsed - paced_from) / TIMED_STEPS
                planned = step + max(0, int((budget_s - elapsed) / per_step))
            if planned:
                for group in optimizer.param_groups:
                    group["lr"] = cosine_lr(peak, step, planned)
            if elapsed >= budget_s or (planned and step >= planned):
                break
    paced_steps = step - SKIPPED_STEPS
    # the pace after the warm-up steps, as simclr's rows report theirs; a budget shorter than the warm-up has
    # only the pace of every step
    pace = paced_steps * batch_size / (elapsed - paced_from) if paced_steps > 0 else step * batch_size / elapsed
    return {
        "steps": step,
        "planned_steps": planned,
        "images_seen": step * batch_size,
        "train_seconds": elapsed,
        "epochs": step * batch_size / len(dataset),
        "images_per_second": pace,
        "final_loss": float(loss.detach()),
    }


@torch.no_grad()
def split_features(model: SimCLR, folder: Path, workers: int) -> tuple[np.ndarray, np.ndarray]:
    """Backbone features (eval mode) and labels of every image of an ``ImageFolder``, un-augmented."""
    normalize = T.Normalize(mean=IMAGENET_NORMALIZE["mean"], std=IMAGENET_NORMALIZE["std"])
    dataset = torchvision.datasets.ImageFolder(str(folder), transform=T.Compose([T.ToTensor(), normalize]))
    loader = torch.utils.data.DataLoader(dataset, batch_size=512, shuffle=False, num_workers=workers)
    device = next(model.parameters()).device
    model.eval()
    features, labels = [], []
    for images, targets in loader:
        features.append(model.features(images.to(device)).float().cpu().numpy())
        labels.append(targets.numpy())
    return np.concatenate(features), np.concatenate(labels).astype(np.int64)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-dir", type=Path, required=True, help="CIFAR-10 training JPEGs, <class>/*.jpg")
    parser.add_argument("--eval-dir", type=Path, required=True, help="the evaluation's train/ (bank) and test/")
    parser.add_argument("--budget-seconds", type=float, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    model = SimCLR().to("cuda" if torch.cuda.is_available() else "cpu")
    record = train(model, args.train_dir, args.budget_seconds, args.batch_size, args.workers)
    print(json.dumps(record), flush=True)
    bank_features, bank_labels = split_features(model, args.eval_dir / "train", args.workers)
    test_features, test_labels = split_features(model, args.eval_dir / "test", args.workers)
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez(
        args.out / "features.npz",
        bank_features=bank_features,
        bank_labels=bank_labels,
        test_features=test_features,
        test_labels=test_labels,
    )
    (args.out / "training.json").write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
