"""The pixel autoencoder of SimCLR-AE (arXiv:2408.14514, experiment 1) and ``simclr train-ae``."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
import yaml

from simclr.cli import main
from simclr.data.catalog import load_dataset
from simclr.data.sampling import split_train_val
from simclr.errors import UserError
from simclr.models.autoencoder import MLPAutoencoder, load_autoencoder, save_autoencoder
from simclr.rundir import RunDir, autoencoder_file
from simclr.training.autoencoder import fit_autoencoder, reconstruction_loss

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def spirograph_images(count: int = 200, size: int = 16) -> torch.Tensor:
    store = load_dataset("spirograph", "train", data_dir=None, image_size=size, spirograph_size=count)
    assert store is not None
    return store.images


def test_shapes_and_range() -> None:
    model = MLPAutoencoder((3, 8, 8), latent_dim=16)
    images = torch.rand(4, 3, 8, 8)
    assert model.encode(images).shape == (4, 16)
    out = model(images).detach()
    assert out.shape == images.shape
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert (model.embedding.in_features, model.embedding.out_features) == (512, 16)


def test_training_lowers_validation_loss() -> None:
    torch.manual_seed(0)
    images = spirograph_images()
    labels = torch.full((len(images),), -1)
    train_idx, val_idx = split_train_val(labels, 0.1, seed=0)
    model = MLPAutoencoder((3, 16, 16), latent_dim=32)
    before = reconstruction_loss(model, images[val_idx])
    history = fit_autoencoder(model, images[train_idx], images[val_idx], epochs=4, batch_size=32, lr=1e-3)
    assert len(history) == 4
    assert history[-1]["val_loss"] < before
    assert reconstruction_loss(model, images[val_idx]) == pytest.approx(history[-1]["val_loss"])


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    model = MLPAutoencoder((3, 8, 8), latent_dim=24)
    path = save_autoencoder(model, tmp_path / "autoencoder.safetensors", dataset="spirograph")
    for target in (path, tmp_path):  # the file or its run directory
        loaded = load_autoencoder(autoencoder_file(target))
        assert loaded.image_shape == (3, 8, 8) and loaded.latent_dim == 24
        for key, value in model.state_dict().items():
            assert torch.equal(loaded.state_dict()[key], value), key


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        load_autoencoder(tmp_path / "missing.safetensors")
    with pytest.raises(UserError, match="does not exist"):
        autoencoder_file(tmp_path)  # a directory without autoencoder.safetensors
    with pytest.raises(UserError, match="does not exist"):
        load_autoencoder(tmp_path)  # a directory is not the weights file
    bad = tmp_path / "autoencoder.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(UserError, match="damaged"):
        load_autoencoder(bad)


def train_ae_args(out: Path, *extra: str) -> list[str]:
    return [
        "train-ae",
        "--dataset",
        "spirograph",
        "--train-size",
        "120",
        "--image-size",
        "16",
        "--epochs",
        "2",
        "--batch-size",
        "32",
        "--latent-dim",
        "16",
        "--out",
        str(out),
        "--quiet",
        *extra,
    ]


def test_train_ae_command_writes_run_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "ae"
    assert main(train_ae_args(run)) == 0
    assert str(run) in capsys.readouterr().out
    for name in (
        "config.yaml",
        "metrics.csv",
        "train.log",
        "autoencoder.safetensors",
        "reconstructions.png",
    ):
        assert (run / name).is_file(), name
    assert (run / "reconstructions.png").read_bytes()[:8] == PNG_MAGIC
    assert not RunDir(run).lock.exists()  # opened (held, logged) and released as every run is
    from matplotlib.image import imread

    assert imread(run / "reconstructions.png").ndim == 3
    with open(run / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    *epochs, test = rows
    assert [row["epoch"] for row in epochs] == ["0", "1"]
    assert all(float(row["val_loss"]) > 0 and float(row["lr"]) == pytest.approx(1e-4) for row in epochs)
    assert float(test["test_mse"]) > 0 and test["val_loss"] == ""  # the test split's MSE, once, at the end
    assert f"test MSE {float(test['test_mse']):.5f} over 2000 images" in (run / "train.log").read_text()
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["latent_dim"] == 16 and config["dataset"] == "spirograph" and config["image_size"] == 16
    model = load_autoencoder(autoencoder_file(run))
    assert model.image_shape == (3, 16, 16) and model.latent_dim == 16


@pytest.mark.parametrize("extra", [("--latent-dim", "0"), ("--epochs", "0"), ("--val-fraction", "1.5"), ("--lr", "0")])
def test_train_ae_bad_flags_leave_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: tuple[str, str]
) -> None:
    run = tmp_path / "ae"
    assert main([*train_ae_args(run), *extra]) == 2
    assert "simclr: error:" in capsys.readouterr().err
    assert not run.exists()


def test_train_ae_refuses_non_empty_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "ae"
    run.mkdir()
    (run / "keep.txt").write_text("mine")
    assert main(train_ae_args(run)) == 2
    assert "already exists" in capsys.readouterr().err
    assert sorted(p.name for p in run.iterdir()) == ["keep.txt"]


def test_train_ae_unknown_dataset_leaves_nothing(tmp_path: Path) -> None:
    run = tmp_path / "ae"
    args = train_ae_args(run)
    args[args.index("spirograph")] = "no-such-set"
    assert main(args) == 2
    assert not run.exists()


def test_train_ae_sends_every_epoch_and_the_test_mse_to_the_tracker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.chdir(tmp_path)
    run = tmp_path / "ae"
    assert main(train_ae_args(run, "--logger", "tensorboard", "--test-size", "64", "--standardize")) == 0
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    assert {"train_loss", "val_loss", "lr", "test_mse"} <= set(events.Tags()["scalars"])
    assert [event.step for event in events.Scalars("val_loss")] == [0, 1]
    with open(run / "metrics.csv", newline="") as handle:
        test_mse = float(list(csv.DictReader(handle))[-1]["test_mse"])
    assert events.Scalars("test_mse")[-1].value == pytest.approx(test_mse)
    assert yaml.safe_load((run / "environment.yaml").read_text())["resolved"]["image_size"] == 16
    log = (run / "train.log").read_text()
    assert "--standardize: encoder input Z-scored with mean [" in log and "over 64 images" in log
    assert yaml.safe_load((run / "config.yaml").read_text())["standardize"] is True
