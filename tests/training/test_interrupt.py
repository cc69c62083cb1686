"""Ctrl-C (SIGINT) and SIGTERM during pretraining: the checkpoint is saved, the CLI says how to resume and
exits 130 / 143, and the resumed run continues the uninterrupted loss curve."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

TOTAL_STEPS = 12  # 96 images / 16 per step x 2 epochs


# SIGTERM here; SIGINT (the same handler) is sent to a multi-process run in tests/training/test_ddp.py
@pytest.mark.parametrize(("signum", "exit_code"), [(signal.SIGTERM, 143)])
def test_signal_saves_the_checkpoint_and_the_run_resumes(
    short_cifar_run: list[str],
    short_cifar_reference: dict[int, float],
    step_losses: Callable[[Path], dict[int, float]],
    pretrain_cli: Callable[..., subprocess.Popen[str]],
    tmp_path: Path,
    signum: int,
    exit_code: int,
) -> None:
    # no periodic checkpoint: early in a run only the interrupt can leave one
    args, losses, simclr = [*short_cifar_run, "--checkpoint-every-steps", "0"], step_losses, pretrain_cli
    run = tmp_path / "run"
    proc = simclr(*args, "--out", str(run))
    deadline = time.time() + 240
    while time.time() < deadline and len(losses(run)) < 2 and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)

    assert proc.returncode == exit_code, err
    name = signal.Signals(signum).name
    last_line = err.strip().splitlines()[-1]
    match = re.fullmatch(rf"simclr: interrupted \({name}\) at step (\d+); resume with --resume (.+)", last_line)
    assert match is not None, err
    step = int(match.group(1))
    assert Path(match.group(2)) == run
    assert 0 < step < TOTAL_STEPS, "the signal must arrive mid-training"
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert f"{name} at step {step}: saved" in (run / "train.log").read_text()
    assert sorted(losses(run)) == list(range(step))  # every step trained before the stop, no more
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["last.ckpt"]  # no temporary left behind

    resumed = simclr("--resume", str(run))
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    got, expected = losses(run), short_cifar_reference
    assert sorted(got) == list(range(TOTAL_STEPS)) == sorted(expected)
    for index in range(TOTAL_STEPS):
        assert got[index] == pytest.approx(expected[index], rel=1e-4, abs=1e-5), index
