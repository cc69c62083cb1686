"""--standardize (SimCLR-AE's Z-scoring) and --no-normalize: measured once, kept in the run, used by evaluation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from simclr.cli import main
from simclr.config import PretrainConfig, build_config
from simclr.data.catalog import dataset_info
from simclr.data.statistics import channel_statistics
from simclr.errors import UserError
from simclr.evaluation.loading import resolve_run
from simclr.evaluation.session import EvalSession
from simclr.resolve import data_source, normalized_info


def test_channel_statistics_equal_a_direct_computation() -> None:
    images = torch.randint(0, 256, (37, 3, 9, 7), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    images[:, 2] //= 4  # channels with different spreads
    mean, std = channel_statistics(images.split(10))
    pixels = images.double().div(255).permute(1, 0, 2, 3).reshape(3, -1)
    torch.testing.assert_close(torch.tensor(mean, dtype=torch.float64), pixels.mean(1), atol=1e-6, rtol=0)
    torch.testing.assert_close(torch.tensor(std, dtype=torch.float64), pixels.std(1, unbiased=False), atol=1e-6, rtol=0)
    flat = images.clone()
    flat[:, 1] = 7
    with pytest.raises(UserError, match="never varies"):
        channel_statistics([flat])


def test_settings_decide_the_normalisation_every_user_of_the_dataset_info_sees() -> None:
    info = dataset_info("cifar10", 32)
    assert normalized_info(PretrainConfig(dataset="cifar10"), info) == info
    raw = normalized_info(PretrainConfig(dataset="cifar10", normalize=False), info)
    assert (raw.mean, raw.std) == ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    measured = normalized_info(
        PretrainConfig(
            dataset="cifar10", standardize=True, normalization_mean=[0.1, 0.2, 0.3], normalization_std=[0.4, 0.5, 0.6]
        ),
        info,
    )
    assert (measured.mean, measured.std) == ((0.1, 0.2, 0.3), (0.4, 0.5, 0.6))
    with pytest.raises(UserError, match="--no-normalize"):
        build_config({"dataset": "cifar10", "standardize": True, "normalize": False}, {})
    with pytest.raises(UserError, match="normalization_std must be > 0, got 0"):
        build_config({"dataset": "cifar10", "normalization_mean": [0, 0, 0], "normalization_std": [1, 0, 1]}, {})
    with pytest.raises(UserError, match="normalization_mean must be a number, got 'a'"):
        build_config({"dataset": "cifar10", "normalization_mean": ["a", 0, 0], "normalization_std": [1, 1, 1]}, {})
    with pytest.raises(UserError, match="normalization_mean must be three numbers"):
        build_config({"dataset": "cifar10", "normalization_mean": [0, 0], "normalization_std": [1, 1, 1]}, {})


def test_standardize_measures_the_training_split_once_and_evaluation_uses_it(cifar_small: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = ["pretrain", "--dataset", "cifar10", "--data-dir", str(cifar_small), "--limit-train-images", "64"]
    args += ["--batch-size", "32", "--max-steps", "1", "--epochs", "1", "--precision", "32", "--workers", "1"]
    args += ["--knn-every-epochs", "0", "--quiet", "--standardize", "--out", str(run)]
    assert main(args) == 0
    saved = yaml.safe_load((run / "config.yaml").read_text())
    config = build_config({k: v for k, v in saved.items()}, {})
    train = data_source(config).load_train(image_size=32, limit=64, seed=0)
    expected_mean, expected_std = channel_statistics([train.images])
    assert saved["normalization_mean"] == pytest.approx(expected_mean, abs=1e-6)
    assert saved["normalization_std"] == pytest.approx(expected_std, abs=1e-6)
    assert saved["normalization_mean"] != pytest.approx(list(dataset_info("cifar10").mean), abs=1e-3)
    assert "--standardize: mean" in (run / "train.log").read_text()
    session = EvalSession(resolve_run(run))
    assert session.info.mean == tuple(saved["normalization_mean"]) and session.info.std == tuple(
        saved["normalization_std"]
    )
