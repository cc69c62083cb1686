"""SimCLR views in an ordinary torchvision Dataset / DataLoader pipeline, one image at a time.

``SimCLRTransform`` takes a PIL image (or an array or tensor) and returns its augmented views, as lightly's
``SimCLRTransform`` does; use it where a per-image ``transform=`` is expected (``ImageFolder``, ``CIFAR10``).
simclr's own training makes the same views as a batch on the device instead, which is faster.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from simclr import SimCLRTransform


class PillowImages(Dataset):
    """Stands in for torchvision.datasets.ImageFolder(root, transform=transform)."""

    def __init__(self, count: int, transform: SimCLRTransform) -> None:
        rng = np.random.default_rng(0)
        self.images = [Image.fromarray(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)) for _ in range(count)]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[list[torch.Tensor], int]:
        return self.transform(self.images[index]), index


def main() -> tuple[torch.Size, torch.Size]:
    torch.manual_seed(0)
    loader = DataLoader(PillowImages(8, SimCLRTransform(size=32)), batch_size=4)
    (first, second), _ = next(iter(loader))
    print("views of a batch:", tuple(first.shape), tuple(second.shape))
    return first.shape, second.shape


if __name__ == "__main__":
    main()
