"""Preemption end to end (issue 25): SIGTERM and SIGINT sent to a run's whole process group, as a terminal's
Ctrl-C and SLURM's ``--signal`` or preemption send them, and the same command line run again after every kill,
as a requeued SLURM job runs it (docs/SCALING.md), until the run reaches its final step on the loss curve of
an uninterrupted run.

Each run holds its images in memory (decoded by 2 forked processes) or streams them from a pack with 2 loader
workers: the signal reaches those processes too, and before the fix the workers died of it first and the
run crashed (exit 1, no checkpoint). One kill lands before the first checkpoint, where the run directory holds
only its config: the next attempt starts that run again from scratch."""

from __future__ import annotations

import csv
import random
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from simclr.cli import main
from simclr.data.pack_settings import PackConfig
from simclr.data.packed import pack_dataset
from simclr.training.checkpoint_io import load_checkpoint_safely

from ..conftest import noise_pngs

pytestmark = pytest.mark.slow

TOTAL_STEPS = 12  # 96 images / 16 per step x 2 epochs
RUN = [
    "--batch-size", "16", "--epochs", "2", "--precision", "32", "--workers", "2", "--optimizer", "sgd", "--lr",
    "0.05", "--knn-every-epochs", "0", "--checkpoint-every-steps", "0", "--log-every-steps", "1", "--seed", "3",
    "--image-size", "8", "--quiet",
]  # fmt: skip
BEFORE_THE_FIRST_CHECKPOINT = 0  # signal as soon as the run directory holds its config
# (signal, after how many steps of the attempt; BEFORE_THE_FIRST_CHECKPOINT: at once), then one last attempt to the end
KILLS = {
    "in-memory": [(signal.SIGKILL, BEFORE_THE_FIRST_CHECKPOINT), (signal.SIGTERM, 2), (signal.SIGINT, 2)],
    "streamed": [(signal.SIGINT, 2), (signal.SIGTERM, 2)],
}


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """96 training and 16 test images of 32 px in 4 classes (PNG noise)."""
    root = tmp_path_factory.mktemp("folder")
    noise_pngs(root / "train", 96, classes=("c0", "c1", "c2", "c3"))
    noise_pngs(root / "test", 16, classes=("c0", "c1", "c2", "c3"), seed=1)
    return root


@pytest.fixture(scope="module")
def data_flags(image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """The data of each kind of run: the folder held in memory, or its pack streamed."""
    packed = tmp_path_factory.mktemp("packed") / "pack"
    pack_dataset(str(image_folder), packed, PackConfig(workers=1))
    return {
        "in-memory": ["--dataset", "imagefolder", "--data-dir", str(image_folder), "--memory-budget", "1GB"],
        "streamed": ["--dataset", "packed", "--data-dir", str(packed)],
    }


@pytest.fixture(scope="module")
def reference_curves(
    data_flags: dict[str, list[str]], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[int, float]]:
    """The loss curve of each kind of run, uninterrupted (in this process, with one thread as the runs have)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        curves = {}
        for kind, flags in data_flags.items():
            out = tmp_path_factory.mktemp("reference") / kind
            assert main(["pretrain", *flags, *RUN, "--out", str(out)]) == 0
            curves[kind] = losses(out)
        return curves
    finally:
        torch.set_num_threads(threads)


def losses(run: Path) -> dict[int, float]:
    if not (run / "metrics.csv").exists():
        return {}
    with open(run / "metrics.csv", newline="") as handle:
        return {int(r["step"]): float(r["train_loss"]) for r in csv.DictReader(handle) if r["train_loss"]}


def checkpoint_step(run: Path) -> int | None:
    checkpoint = run / "checkpoints" / "last.ckpt"
    return int(load_checkpoint_safely(checkpoint)["global_step"]) if checkpoint.is_file() else None


def signal_when(attempt: Any, run: Path, signum: int, steps: int) -> None:
    """Send ``signum`` to the attempt's whole process group once it has trained ``steps`` steps (or, for
    BEFORE_THE_FIRST_CHECKPOINT, once the run directory holds its config)."""
    start = checkpoint_step(run) or 0
    deadline = time.time() + 240
    while time.time() < deadline and attempt.proc.poll() is None:
        if steps == BEFORE_THE_FIRST_CHECKPOINT and (run / "config.yaml").is_file():
            break
        if steps and len([step for step in losses(run) if step >= start]) >= steps:
            break
        time.sleep(0.02)
    assert attempt.proc.poll() is None, f"the attempt ended before the signal\n{attempt.output()}"
    attempt.signal_group(signum)


def check_stopped(attempt: Any, run: Path, signum: int, code: int) -> None:
    """What a stop on SIGINT or SIGTERM leaves: its exit code and one line, no traceback, a checkpoint that
    holds every step trained (or, stopped before training, none new), and nothing half-written."""
    output = attempt.output()
    name = signal.Signals(signum).name
    assert code == 128 + signum, output
    assert "Traceback" not in output and "DataLoader worker" not in output, output
    last = output.strip().splitlines()[-1]
    stopped = re.fullmatch(rf"simclr: interrupted \({name}\) at step (\d+); resume with --resume (.+)", last)
    if stopped:
        step = int(stopped.group(1))
        assert Path(stopped.group(2)) == run
        assert 0 < step < TOTAL_STEPS, "the signal must arrive mid-training"
        assert checkpoint_step(run) == step
        assert sorted(losses(run)) == list(range(step))  # every step trained before the stop, no more
    else:
        assert last == f"simclr: interrupted ({name}) before it finished; nothing half-written was kept", output
    assert not list(run.rglob(".*.tmp-*")) and not (run / ".lock").exists()


@pytest.mark.parametrize("kind", ["in-memory", "streamed"])
def test_signals_to_the_process_group_and_requeues_reach_the_uninterrupted_final_step(
    kind: str,
    data_flags: dict[str, list[str]],
    reference_curves: dict[str, dict[int, float]],
    session_runs: Callable[..., Any],
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    command = [*data_flags[kind], *RUN, "--out", str(run)]  # the same command line every time, as a requeue runs it
    rng = random.Random(kind)
    start = time.perf_counter()
    restarts = 0  # attempts that left no checkpoint: the next one starts the run again from scratch
    for number, (signum, steps) in enumerate(KILLS[kind]):
        attempt = session_runs(f"attempt{number}", *command)
        steps = steps and steps + rng.randint(0, 1)  # a random-ish moment, mid-training
        signal_when(attempt, run, signum, steps)
        code = attempt.wait()
        if signum == signal.SIGKILL:
            assert code == -signal.SIGKILL
            # the crash a requeued job meets: a run directory that holds a config and no checkpoint
            assert (run / "config.yaml").is_file() and checkpoint_step(run) is None
        else:
            check_stopped(attempt, run, signum, code)
        restarts += checkpoint_step(run) is None
    assert checkpoint_step(run) is not None, "the last kill must leave a checkpoint to resume from"
    last = session_runs("last", *command)
    assert last.wait() == 0, last.output()
    print(f"{kind}: {len(KILLS[kind]) + 1} attempts in {time.perf_counter() - start:.1f} s")

    log = (run / "train.log").read_text()
    assert log.count("holds a run started with the same settings: continuing it") == len(KILLS[kind])
    assert log.count("stopped before its first checkpoint") == restarts
    assert log.count("resuming from") == len(KILLS[kind]) - restarts
    assert checkpoint_step(run) == TOTAL_STEPS
    got, expected = losses(run), reference_curves[kind]
    assert sorted(got) == list(range(TOTAL_STEPS)) == sorted(expected)
    for step in range(TOTAL_STEPS):
        assert got[step] == pytest.approx(expected[step], rel=1e-4, abs=1e-5), step
