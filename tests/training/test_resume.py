"""A run killed with SIGKILL mid-epoch resumes from last.ckpt and continues the same loss curve."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from simclr.training.checkpoint_io import atomic_torch_save

pytestmark = pytest.mark.slow

ARGS = [
    "--dataset",
    "cifar10",
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
    "--checkpoint-every-steps",
    "2",
    "--optimizer",
    "sgd",
    "--lr",
    "0.05",
    "--quiet",
]


def losses(run: Path) -> dict[int, float]:
    with open(run / "metrics.csv", newline="") as handle:
        return {int(r["step"]): float(r["train_loss"]) for r in csv.DictReader(handle) if r["train_loss"]}


def simclr(*args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, OMP_NUM_THREADS="1")  # same thread count in both runs: bitwise-stable CPU math
    return subprocess.Popen(
        [sys.executable, "-m", "simclr", "pretrain", *args],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_resume_after_sigkill_matches_uninterrupted_run(cifar_small: Path, tmp_path: Path) -> None:
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    ref_proc = simclr(*ARGS, "--data-dir", str(cifar_small), "--out", str(reference))
    proc = simclr(*ARGS, "--data-dir", str(cifar_small), "--out", str(killed))
    # kill once steps beyond a mid-epoch checkpoint (step 2 or 4 of the 6-step epoch) were trained
    deadline = time.time() + 240
    while time.time() < deadline:
        if (
            (killed / "metrics.csv").exists()
            and len(losses(killed)) >= 4
            and (killed / "checkpoints" / "last.ckpt").exists()
        ):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    steps_before_kill = len(losses(killed))
    assert 0 < steps_before_kill < 12, "the run must be killed mid-training"
    ckpt = torch.load(killed / "checkpoints" / "last.ckpt", weights_only=False)
    assert 0 < ckpt["global_step"] < 12

    resumed = simclr("--resume", str(killed))
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    _, ref_err = ref_proc.communicate(timeout=300)
    assert ref_proc.returncode == 0, ref_err

    expected, got = losses(reference), losses(killed)
    assert sorted(got) == list(range(12)) == sorted(expected)
    for step in range(12):
        assert got[step] == pytest.approx(expected[step], rel=1e-4, abs=1e-5), step


def test_atomic_save_keeps_the_old_checkpoint_when_the_write_dies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "last.ckpt"
    atomic_torch_save({"step": 1}, path)
    real_save = torch.save

    def dying_save(obj: object, handle: object) -> None:
        real_save({"partial": torch.zeros(10)}, handle)
        raise KeyboardInterrupt("killed during the write")

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        atomic_torch_save({"step": 2}, path)
    monkeypatch.undo()
    assert torch.load(path) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary left behind
