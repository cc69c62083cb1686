"""Shared fixtures: small real CIFAR-10 subsets from ../shared/data/cifar10."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CIFAR10 = Path(os.environ.get("SIMCLR_TEST_CIFAR10", REPO.parent / "shared" / "data" / "cifar10"))


def make_cifar_subset(dest: Path, per_class_train: int, per_class_test: int) -> Path:
    """Copy the first N images of every class into ``dest/{train,test}/<class>/`` (real CIFAR-10 JPEGs)."""
    if not (CIFAR10 / "train").is_dir():
        pytest.skip(f"CIFAR-10 image folders not found at {CIFAR10}")
    for split, count in (("train", per_class_train), ("test", per_class_test)):
        for class_dir in sorted((CIFAR10 / split).iterdir()):
            out = dest / split / class_dir.name
            out.mkdir(parents=True, exist_ok=True)
            for image in sorted(class_dir.iterdir())[:count]:
                shutil.copyfile(image, out / image.name)
    return dest


@pytest.fixture(scope="session")
def cifar_small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 train and 10 test images per class of the real CIFAR-10."""
    return make_cifar_subset(tmp_path_factory.mktemp("cifar10-small"), 30, 10)
