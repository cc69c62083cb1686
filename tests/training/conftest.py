"""What the end-to-end training tests share: a short CIFAR-10 run launched as the CLI, and its loss curve."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

# 96 images / 16 per step x 2 epochs = 12 steps, float32 and one worker: the same numbers on every run; views
# of 8 px (a tenth of the compute of 32 px: what these runs check does not depend on the size)
SHORT_CIFAR_RUN = [
    "--dataset",
    "cifar10",
    "--image-size",
    "8",
    "--limit-train-images",
    "96",
    "--batch-size",
    "16",
    "--epochs",
    "2",
    "--precision",
    "32",
    "--workers",
    "1",
    "--knn-every-epochs",
    "0",
    "--optimizer",
    "sgd",
    "--lr",
    "0.05",
    "--quiet",
]


def _losses(run: Path) -> dict[int, float]:
    if not (run / "metrics.csv").exists():
        return {}
    with open(run / "metrics.csv", newline="") as handle:
        return {int(r["step"]): float(r["train_loss"]) for r in csv.DictReader(handle) if r["train_loss"]}


def _pretrain(*args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, OMP_NUM_THREADS="1")  # the same thread count in every run: bitwise-stable CPU math
    return subprocess.Popen(
        [sys.executable, "-m", "simclr", "pretrain", *args],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.fixture
def short_cifar_run(cifar_small: Path) -> list[str]:
    """The flags of a 12-step CIFAR-10 run on the small real subset."""
    return [*SHORT_CIFAR_RUN, "--data-dir", str(cifar_small)]


@pytest.fixture
def step_losses() -> Callable[[Path], dict[int, float]]:
    """``{step: train_loss}`` of a run directory's metrics (empty before the first step)."""
    return _losses


@pytest.fixture(scope="session")
def pretrain_cli() -> Callable[..., subprocess.Popen[str]]:
    """Starts ``python -m simclr pretrain ARGS`` in a subprocess (signals reach it as they would a user's)."""
    return _pretrain


@pytest.fixture(scope="session")
def short_cifar_reference(cifar_small: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[int, float]:
    """``{step: train_loss}`` of the 12-step run never stopped: the curve that every stopped and resumed run of
    the same flags must continue (the flags that only change when checkpoints are written do not change it)."""
    run = tmp_path_factory.mktemp("short-cifar-reference") / "run"
    proc = _pretrain(*SHORT_CIFAR_RUN, "--data-dir", str(cifar_small), "--out", str(run))
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return _losses(run)
