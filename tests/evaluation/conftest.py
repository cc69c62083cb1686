"""Run directories for evaluation tests, made without training: a config.yaml, a backbone.safetensors
with seeded random weights and its metadata, and a short metrics.csv."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from simclr.config import build_config
from simclr.models.backbone_file import BackboneMetadata, write_backbone
from simclr.models.backbones import build_backbone, resolve_stem
from simclr.settings import config_to_yaml

MakeRun = Callable[..., Path]


def write_fake_run(
    run_dir: Path,
    dataset: str,
    data_dir: Path | None = None,
    backbone: str = "resnet18",
    image_size: int = 32,
    seed: int = 0,
    **overrides: Any,
) -> Path:
    values: dict[str, Any] = {"dataset": dataset, "backbone": backbone, "out": str(run_dir), "image_size": image_size}
    if data_dir is not None:
        values["data_dir"] = str(data_dir)
    values.update(overrides)
    config = build_config(values, {})
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(config_to_yaml(config))
    torch.manual_seed(seed)
    stem = resolve_stem(config.stem, image_size)
    module, feature_dim = build_backbone(backbone, stem)
    write_backbone(
        run_dir / "backbone.safetensors",
        module.state_dict(),
        BackboneMetadata(
            backbone=backbone,
            stem=stem,
            feature_dim=feature_dim,
            dataset=dataset,
            image_size=image_size,
            global_step=12,
            epoch=2,
        ),
    )
    rows = ["step,epoch,train_loss,lr,img_per_s,knn_top1"]
    for step in range(1, 13):
        knn = f"{0.1 + step / 100:.4f}" if step % 6 == 0 else ""
        rows.append(f"{step},{(step - 1) // 6},{5.0 - step / 10:.4f},{0.1 * step / 12:.5f},90.0,{knn}")
    (run_dir / "metrics.csv").write_text("\n".join(rows) + "\n")
    return run_dir


@pytest.fixture
def make_run(tmp_path: Path) -> MakeRun:
    """``make_run(dataset, data_dir=None, name="run", **config_overrides) -> run_dir`` under tmp_path."""

    def factory(dataset: str, data_dir: Path | None = None, name: str = "run", **kwargs: Any) -> Path:
        return write_fake_run(tmp_path / name, dataset, data_dir, **kwargs)

    return factory


@pytest.fixture
def small_folder(cifar_small: Path, tmp_path: Path) -> Path:
    """Two CIFAR-10 test classes (cat, ship) as an image folder, with one file that is not an image."""
    folder = tmp_path / "images"
    for name in ("cat", "ship"):
        shutil.copytree(cifar_small / "test" / name, folder / name)
    (folder / "cat" / "broken.jpg").write_bytes(b"not a jpeg")
    return folder
