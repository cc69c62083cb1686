"""What the end-to-end training tests share: a short CIFAR-10 run launched as the CLI, its loss curve, and CLI
runs started as their own process group (as a terminal or SLURM starts them) for signals to the whole group."""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# 96 images / 16 per step x 2 epochs = 12 steps, float32 and one worker: the same numbers on every run
SHORT_CIFAR_RUN = [
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


# What a launcher (torchrun, Lightning's, SLURM) sets in the processes it starts: never inherited from the test's.
LAUNCHER_ENV_PREFIXES = ("SLURM_", "TORCHELASTIC_")
LAUNCHER_ENV = (
    "MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "LOCAL_WORLD_SIZE",
    "SIMCLR_RUN_DIR", "PL_GLOBAL_SEED",
)  # fmt: skip


def alive_in_session(session: int) -> list[int]:
    """Processes (not zombies) in the session a CLI run was started in: its main process and what it started
    (loader workers, DDP ranks)."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # state ppid pgrp session ...
        if fields[0] != "Z" and int(fields[3]) == session:
            alive.append(int(entry.name))
    return alive


class SessionRun:
    """``python -m simclr COMMAND ARGS`` in a new session, whose process group is every process it starts:
    ``signal_group`` sends a signal to all of them at once (``os.killpg``), as a terminal's Ctrl-C and SLURM
    do, and :meth:`wait` fails the test when any of them outlives the main process."""

    def __init__(self, workdir: Path, name: str, *args: str, command: str = "pretrain") -> None:
        env = dict(os.environ, OMP_NUM_THREADS="1")  # bitwise-stable CPU math
        for key in list(env):
            if key in LAUNCHER_ENV or key.startswith(LAUNCHER_ENV_PREFIXES):
                del env[key]
        self.log = workdir / f"{name}.log"
        with open(self.log, "w") as handle:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "simclr", command, *args],
                env=env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def signal_group(self, signum: int) -> None:
        os.killpg(self.proc.pid, signum)

    def wait(self, timeout: float = 240) -> int:
        """The exit code, once the main process and every process it started have ended."""
        code = self.proc.wait(timeout=timeout)
        deadline = time.time() + 30
        while alive_in_session(self.proc.pid) and time.time() < deadline:
            time.sleep(0.1)
        if alive_in_session(self.proc.pid):
            pytest.fail(f"processes left behind: {alive_in_session(self.proc.pid)}\n{self.output()}")
        return code

    def output(self) -> str:
        return self.log.read_text()

    def kill(self) -> None:
        for pid in alive_in_session(self.proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.wait()


@pytest.fixture(scope="session")
def session_run() -> type[SessionRun]:
    """The class, for module-scoped fixtures that start runs of their own (and kill them themselves)."""
    return SessionRun


@pytest.fixture
def session_runs(tmp_path: Path) -> Iterator[Callable[..., SessionRun]]:
    """Starts CLI runs as their own process group (``start(name, *args, command="pretrain")``); kills whatever
    of them is left at the end of the test."""
    runs: list[SessionRun] = []

    def start(name: str, *args: str, command: str = "pretrain") -> SessionRun:
        run = SessionRun(tmp_path, name, *args, command=command)
        runs.append(run)
        return run

    yield start
    for run in runs:
        run.kill()
