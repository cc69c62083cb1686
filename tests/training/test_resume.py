"""Resumes that continue the run never stopped: an atomic checkpoint write that dies keeps the previous one, and
runs stopped by --max-steps at an epoch's end or mid-epoch resume to the same weights. A run killed by SIGKILL
and resumed is tests/training/test_hardening.py's (killed four times while checkpointing, the same weights and
loss curve)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from simclr.cli import main
from simclr.training.checkpoint_io import atomic_torch_save, load_checkpoint_safely

pytestmark = pytest.mark.slow


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


MAX_STEPS_RUN = [
    "--dataset", "spirograph", "--train-size", "64", "--test-size", "16", "--batch-size", "16", "--epochs", "3",
    "--precision", "32", "--knn-every-epochs", "0", "--workers", "1", "--image-size", "8", "--quiet",
]  # fmt: skip


STOPS = (4, 5)  # the end of an epoch (4 steps each), mid-epoch


def test_runs_stopped_by_max_steps_resume_onto_the_uninterrupted_run(tmp_path: Path) -> None:
    """Stopped at step 4 or 5, then resumed to step 12: bitwise the weights of the run never stopped. The runs
    are in this process (what is checked is the resumed state, not how a process stops: the SIGKILL test above
    and tests/training/test_preemption.py start their own), which spares five imports of torch."""
    uninterrupted = tmp_path / "uninterrupted"
    stopped = {stop: tmp_path / f"stopped-at-{stop}" for stop in STOPS}
    assert main(["pretrain", *MAX_STEPS_RUN, "--out", str(uninterrupted)]) == 0
    for stop, run in stopped.items():
        assert main(["pretrain", *MAX_STEPS_RUN, "--max-steps", str(stop), "--out", str(run)]) == 0
        assert load_checkpoint_safely(run / "checkpoints" / "last.ckpt")["global_step"] == stop
        assert main(["pretrain", "--resume", str(run), "--max-steps", "12", "--quiet"]) == 0
    expected = load_file(str(uninterrupted / "backbone.safetensors"))
    for stop, run in stopped.items():
        got = load_file(str(run / "backbone.safetensors"))
        for name, tensor in expected.items():
            torch.testing.assert_close(got[name], tensor, rtol=0, atol=0, msg=f"stopped at {stop}: {name}")
