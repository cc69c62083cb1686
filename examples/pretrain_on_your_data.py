"""Pretrain on your own Dataset with your own backbone, or a timm model by name, and load the result back.

``pretrain(config, dataset=..., backbone=...)`` reads the Dataset once into memory (PIL images or uint8 /
[0, 1] float tensors, with or without labels) and trains by simclr's usual path: views made in batches,
checkpoints, the kNN monitor on your labels, a complete run directory. Run it as
``python examples/pretrain_on_your_data.py``; the sizes are tiny so it ends in seconds on a CPU.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import Dataset

from simclr import PretrainConfig, extract_features, load_backbone, pretrain


class Photos(Dataset):  # type: ignore[type-arg]
    """Stand-in for your data: (PIL image, label) pairs of any size and mode, like torchvision's datasets."""

    classes = ["dark", "bright"]

    def __init__(self, count: int) -> None:
        rng = np.random.default_rng(0)
        self.labels = [index % 2 for index in range(count)]
        self.pixels = [rng.integers(0, 128, (24, 20, 3), dtype=np.uint8) + 120 * label for label in self.labels]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        return Image.fromarray(self.pixels[index]), self.labels[index]


class SmallConvNet(nn.Module):
    """Your network: (B, 3, H, W) images -> (B, feature_dim) features."""

    feature_dim = 32

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images)


def main(out: Path) -> dict[str, str]:
    # your Dataset, read once into memory as 16 px squares, and your network, trained in place
    config = PretrainConfig(image_size=16, batch_size=16, epochs=1, precision="32", workers=0, knn_k=10)
    result = pretrain(replace(config, out=str(out / "own")), dataset=Photos(64), backbone=SmallConvNet())
    print(f"run directory: {result.run_dir} (kNN top-1 on your labels: {result.knn_top1:.2f})")

    # backbone.safetensors names your class; its weights go into a new instance of it
    loaded = load_backbone(result.run_dir, module=SmallConvNet())
    meta = loaded.metadata
    images = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8)
    features = extract_features(loaded.module, images, meta.mean or (0.5,) * 3, meta.std or (0.5,) * 3)
    print(f"{meta.backbone}: features {tuple(features.shape)}")
    names = {"own": str(meta.backbone)}

    # a timm model by name (also config.backbone = "timm:resnet18", or --backbone on the command line)
    if importlib.util.find_spec("timm") is not None:
        result = pretrain(
            replace(config, out=str(out / "timm"), knn_every_epochs=0), dataset=Photos(32), backbone="timm:resnet18"
        )
        names["timm"] = str(load_backbone(result.run_dir).metadata.backbone)  # rebuilt by name, no module needed
        print(f"{names['timm']}: run directory {result.run_dir}")
    return names


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(folder))
