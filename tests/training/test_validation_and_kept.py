"""Validation during pretraining (--val-fraction) and the backbones a run keeps (--keep-every-epochs,
--save-top-k): the split, reproducible validation numbers, and the kept files."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from simclr.config import build_config
from simclr.errors import UserError
from simclr.model_from_config import build_model
from simclr.models.backbone_file import read_backbone_metadata, read_backbone_tensors
from simclr.resolve import view_config
from simclr.rundir import RunDir
from simclr.training.callbacks import MetricsCSV
from simclr.training.pretrain import run_pretraining
from simclr.training.training_data import load_training_data
from simclr.training.validation import ValidationMonitor
from simclr.views.factory import build_views


def tiny_config(data: Path, out: Path, **overrides: object):
    values: dict[str, object] = dict(
        dataset="cifar10",
        data_dir=str(data),
        image_size=8,
        limit_train_images=80,
        batch_size=16,
        epochs=4,
        out=str(out),
        workers=1,
        knn_every_epochs=0,
        precision="32",
        optimizer="sgd",
        lr=0.05,
        val_fraction=0.2,
    )
    values.update(overrides)
    return build_config({}, values)


def test_validation_split_is_stratified_disjoint_and_seeded(cifar_small: Path, tmp_path: Path) -> None:
    data = load_training_data(tiny_config(cifar_small, tmp_path / "a"))
    again = load_training_data(tiny_config(cifar_small, tmp_path / "b"))
    other = load_training_data(tiny_config(cifar_small, tmp_path / "c", seed=1))
    assert data.val is not None and again.val is not None and other.val is not None
    assert len(data.val) == 16 and len(data.train) == 64
    assert set(Counter(data.val.labels.tolist()).values()) <= {1, 2}  # 16 over 10 classes: stratified
    assert torch.equal(data.val.images, again.val.images)  # the same split for the same seed
    assert not torch.equal(data.val.images, other.val.images)
    val_rows = {bytes(image.flatten().tolist()) for image in data.val.images}
    assert not val_rows & {bytes(image.flatten().tolist()) for image in data.train.images}


def test_validation_metrics_repeat_exactly_with_fixed_weights(cifar_small: Path, tmp_path: Path) -> None:
    config = tiny_config(cifar_small, tmp_path / "run")
    data = load_training_data(config)
    assert data.val is not None
    torch.manual_seed(0)
    model = build_model(config, data.image_size)
    views = build_views(
        data.image_size, view_config(config, data.info, data.image_size), 2, rerender=data.info.regression
    )
    module = SimpleNamespace(model=model.train(), views=views, device=torch.device("cpu"))
    monitor = ValidationMonitor(data.val, 8, config.temperature, config.seed, MetricsCSV(tmp_path / "m.csv"))
    first = monitor.evaluate(module)  # type: ignore[arg-type]
    second = monitor.evaluate(module)  # type: ignore[arg-type]
    assert first == second
    assert model.training  # the module's mode is restored
    assert first["val_loss"] > 0 and 0 <= first["val_contrastive_top1"] <= first["val_contrastive_top5"] <= 1


def test_save_top_k_needs_validation() -> None:
    with pytest.raises(UserError, match="--val-fraction"):
        build_config({}, dict(dataset="cifar10", save_top_k=2))


@pytest.mark.slow
def test_kept_backbones_every_n_and_top_k_by_validation_loss_with_the_online_probe(
    cifar_small: Path, tmp_path: Path
) -> None:
    run = RunDir(tmp_path / "run")
    # 40 images: 32 train in 2 steps an epoch and 8 validate (half the steps of the default 80; the epochs
    # kept and their validation losses are what is checked)
    config = tiny_config(
        cifar_small, run.path, limit_train_images=40, keep_every_epochs=2, save_top_k=2, online_probe=True
    )
    run_pretraining(config, quiet=True)
    with open(run.metrics, newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["val_loss"]]
    assert [int(row["epoch"]) for row in rows] == [0, 1, 2, 3]
    losses = {int(row["epoch"]) + 1: float(row["val_loss"]) for row in rows}  # by epochs trained
    assert all(0 <= float(row["val_contrastive_top1"]) <= float(row["val_contrastive_top5"]) <= 1 for row in rows)
    top2 = sorted(losses, key=losses.__getitem__)[:2]
    kept = run.kept_backbones()
    assert set(kept) == {2, 4} | set(top2)
    assert all(path.name == f"epoch-{epochs:04d}.safetensors" for epochs, path in kept.items())
    best = min(losses, key=losses.__getitem__)
    best_tensors, kept_tensors = read_backbone_tensors(run.best_backbone), read_backbone_tensors(kept[best])
    assert best_tensors.keys() == kept_tensors.keys()
    assert all(torch.equal(best_tensors[name], kept_tensors[name]) for name in best_tensors)
    assert read_backbone_metadata(run.best_backbone) == read_backbone_metadata(kept[best])
    assert read_backbone_metadata(kept[best]).epoch == best - 1
    with open(run.metrics, newline="") as handle:
        probe_rows = [row for row in csv.DictReader(handle) if row["online_linear_top1"]]
    assert [int(row["epoch"]) for row in probe_rows] == [0, 1, 2, 3]
    assert all(0 <= float(row["online_linear_val_top1"]) <= 1 for row in probe_rows)


@pytest.mark.slow
def test_streamed_runs_refuse_val_fraction_in_one_line(cifar_small: Path, tmp_path: Path, capsys) -> None:
    from simclr.cli import main
    from simclr.data.pack_settings import PackConfig
    from simclr.data.packed import pack_dataset

    pack_dataset(str(cifar_small), tmp_path / "packed", PackConfig(workers=1))
    run = tmp_path / "run"
    args = ["pretrain", "--dataset", "packed", "--data-dir", str(tmp_path / "packed"), "--out", str(run)]
    assert main([*args, "--val-fraction", "0.1", "--workers", "1", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--val-fraction needs the training images in memory" in err
    assert not run.exists()  # refused before the run directory exists
