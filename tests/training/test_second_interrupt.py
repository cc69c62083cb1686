"""Ctrl-C again while the first one's checkpoint is written: the second is deferred until the save is done,
the third abandons the save and says which checkpoint is kept (issue 26). The runs are CLI processes in their
own process group, signalled as a terminal does (os.killpg); the save is made slow, and seen starting, by a
``sitecustomize`` that wraps ``torch.save`` in the run's processes only."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from simclr.cli import main
from simclr.training.checkpoint_io import load_checkpoint_safely

pytestmark = pytest.mark.slow

SLOW_SAVE = """
import os
if os.environ.get("SLOW_SAVE_MARKER"):
    import time
    import torch

    _save = torch.save

    def slow_save(obj, f, *args, **kwargs):
        _save(obj, f, *args, **kwargs)
        with open(os.environ["SLOW_SAVE_MARKER"], "a") as marker:
            marker.write("saving\\n")
        time.sleep(4)  # the temporary file is there until this returns

    torch.save = slow_save
"""


@pytest.fixture
def slow_saves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The marker file that gets one line each time a run started from now on begins saving a checkpoint."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SLOW_SAVE)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")])))
    marker = tmp_path / "saves"
    monkeypatch.setenv("SLOW_SAVE_MARKER", str(marker))
    return marker


def saves_begun(marker: Path) -> int:
    return len(marker.read_text().splitlines()) if marker.exists() else 0


def wait_for(condition: Callable[[], bool], run: Any, what: str) -> None:
    deadline = time.time() + 240
    while not condition():
        if run.proc.poll() is not None or time.time() > deadline:
            pytest.fail(f"the run ended or took too long before {what}:\n{run.output()}")
        time.sleep(0.05)


def interrupt_while_saving(run: Any, marker: Path, signals: int) -> None:
    """One SIGINT to the group, then ``signals - 1`` more once the checkpoint it asks for is being written."""
    before = saves_begun(marker)
    run.signal_group(signal.SIGINT)
    wait_for(lambda: saves_begun(marker) > before, run, "the checkpoint's save began")
    for _ in range(signals - 1):
        run.signal_group(signal.SIGINT)
        time.sleep(0.5)


def test_a_second_ctrl_c_while_saving_waits_for_the_save(
    short_cifar_run: list[str],
    session_runs: Callable[..., Any],
    step_losses: Callable[[Path], dict[int, float]],
    slow_saves: Path,
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "run"
    args = [*short_cifar_run, "--checkpoint-every-steps", "0", "--log-every-steps", "1"]
    run = session_runs("run", *args, "--out", str(run_dir))
    wait_for(lambda: len(step_losses(run_dir)) >= 2, run, "two steps")
    interrupt_while_saving(run, slow_saves, signals=2)

    assert run.wait() == 130, run.output()
    lines = run.output().strip().splitlines()
    assert any(line.startswith("simclr: SIGINT again: stopping after this step and saving") for line in lines)
    match = re.fullmatch(r"simclr: interrupted \(SIGINT\) at step (\d+); resume with --resume (.+)", lines[-1])
    assert match is not None, run.output()
    step = int(match.group(1))
    assert load_checkpoint_safely(run_dir / "checkpoints" / "last.ckpt")["global_step"] == step
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == ["last.ckpt"]

    # the resume only finishes the run: in this process (whose saves are not slowed), one import of torch fewer
    assert main(["pretrain", "--resume", str(run_dir), "--quiet"]) == 0
    assert sorted(step_losses(run_dir)) == list(range(12))


def test_a_third_ctrl_c_abandons_the_save_and_names_the_checkpoint_kept(
    short_cifar_run: list[str],
    session_runs: Callable[..., Any],
    step_losses: Callable[[Path], dict[int, float]],
    slow_saves: Path,
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "run"
    args = [*short_cifar_run, "--checkpoint-every-steps", "0", "--log-every-steps", "1"]
    run = session_runs("run", *args, "--out", str(run_dir))
    # past the end of the first epoch (6 steps), whose checkpoint is the one to keep
    wait_for(lambda: len(step_losses(run_dir)) >= 8, run, "eight steps")
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    kept = checkpoint.read_bytes()
    interrupt_while_saving(run, slow_saves, signals=3)

    assert run.wait() == 130, run.output()
    last = run.output().strip().splitlines()[-1]
    assert re.fullmatch(
        rf"simclr: interrupted \(SIGINT\) at step \d+, and the checkpoint's save was abandoned by another signal: "
        rf"the last good checkpoint is {re.escape(str(checkpoint))}; resume with --resume {re.escape(str(run_dir))}",
        last,
    ), run.output()
    assert checkpoint.read_bytes() == kept  # untouched, and no temporary left beside it
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == ["last.ckpt"]
    assert load_checkpoint_safely(checkpoint)["global_step"] == 6
