"""Shared fixtures: CIFAR-like image folders generated for the tests (and small real CIFAR-10 subsets from
../shared/data/cifar10 for the few tests named as needing it), and CLI commands started as their own process
group (as a terminal or SLURM starts them) for signals sent to the whole group."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.error import URLError

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
CIFAR10 = Path(os.environ.get("SIMCLR_TEST_CIFAR10", REPO.parent / "shared" / "data" / "cifar10"))
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
NEEDS_REAL_CIFAR10 = "needs the real CIFAR-10 image folders"  # the skip reason the summary line counts
RESNET18_FILE = "resnet18-f37072fd.pth"  # torchvision's ResNet18_Weights.IMAGENET1K_V1


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one worker per core, at most 4 (a worker running an end-to-end test holds up to ~5 GB)."""
    return max(1, min(len(os.sched_getaffinity(0)), 4))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The modules with the most end-to-end runs (marked slow) go first, so that parallel workers start the
    # longest work early and finish together. A module's tests stay together and in order: pytest sets a
    # module's fixtures up again whenever another module's test runs in between.
    slow_tests: dict[str, int] = {}
    for item in items:
        slow_tests[item.module.__name__] = slow_tests.get(item.module.__name__, 0) + bool(
            item.get_closest_marker("slow")
        )
    position = {id(item): index for index, item in enumerate(items)}
    items.sort(key=lambda item: (-slow_tests[item.module.__name__], position[id(item)]))


def pytest_configure(config: pytest.Config) -> None:
    # Under pytest-xdist each worker gets one core's worth of threads (and so do the CLI runs it starts, which
    # inherit the variable): two workers with two threads each on a 2-core machine only fight over the cores.
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = "1"
        import torch

        torch.set_num_threads(1)


def cifar_like_image(label: int, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """A ``size`` px RGB image (HWC uint8) of class ``label``: stripes whose colour, angle and frequency are the
    class's, with a random phase, contrast and pixel noise per image, so that a network can tell the classes
    apart (as on CIFAR-10) while no two images are alike and JPEG does not shrink them to nothing."""
    hue = np.array([np.cos(label * 0.63), np.cos(label * 0.63 + 2.1), np.cos(label * 0.63 + 4.2)])
    colour = 128 + 90 * hue
    angle, cycles = label * np.pi / 10, 2 + label % 3
    yy, xx = np.mgrid[0:size, 0:size] / size
    wave = np.sin(2 * np.pi * cycles * (xx * np.cos(angle) + yy * np.sin(angle)) + rng.uniform(0, 2 * np.pi))
    contrast = rng.uniform(0.25, 0.45)
    image = colour * (1 - contrast + contrast * wave)[..., None] + rng.normal(0, 12, (size, size, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def generate_cifar_like(dest: Path, per_class_train: int, per_class_test: int, seed: int = 0) -> Path:
    """``dest/{train,test}/<class>/NNNN.jpg`` with CIFAR-10's class names and layout, generated."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", per_class_train), ("test", per_class_test)):
        for label, name in enumerate(CIFAR10_CLASSES):
            out = dest / split / name
            out.mkdir(parents=True, exist_ok=True)
            for index in range(count):
                Image.fromarray(cifar_like_image(label, rng)).save(out / f"{index:04d}.jpg", quality=90)
    return dest


def noise_pngs(root: Path, count: int, classes: tuple[str, ...] = ("c0", "c1"), size: int = 32, seed: int = 0) -> Path:
    """``count`` PNGs of uniform noise, ``size`` px square, dealt round-robin into ``root/<class>/SEED-III.png``
    (a seed of its own per call, so that calls into one folder add new files)."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        path = root / classes[i % len(classes)] / f"{seed}-{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)
    return root


def make_cifar_subset(dest: Path, per_class_train: int, per_class_test: int) -> Path:
    """Copy the first N images of every class of the real CIFAR-10 into ``dest/{train,test}/<class>/``; the
    test is skipped (and counted in one summary line) where the real CIFAR-10 is not beside the repository."""
    if not (CIFAR10 / "train").is_dir():
        pytest.skip(f"{NEEDS_REAL_CIFAR10} at {CIFAR10}")
    for split, count in (("train", per_class_train), ("test", per_class_test)):
        for class_dir in sorted((CIFAR10 / split).iterdir()):
            out = dest / split / class_dir.name
            out.mkdir(parents=True, exist_ok=True)
            for image in sorted(class_dir.iterdir())[:count]:
                shutil.copyfile(image, out / image.name)
    return dest


@pytest.fixture(scope="session")
def cifar_small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 train and 10 test images per class in CIFAR-10's layout and class names, generated once per test run
    (:func:`generate_cifar_like`): what most tests train and evaluate on, with or without ../shared."""
    return generate_cifar_like(tmp_path_factory.mktemp("cifar10-small"), 30, 10)


@pytest.fixture(scope="session")
def real_cifar_small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 train and 10 test images per class of the real CIFAR-10 JPEGs, for the few tests that check real data."""
    return make_cifar_subset(tmp_path_factory.mktemp("real-cifar10-small"), 30, 10)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line for the tests skipped because the real CIFAR-10 is not beside the repository."""
    skipped = [
        report for report in terminalreporter.stats.get("skipped", []) if NEEDS_REAL_CIFAR10 in str(report.longrepr)
    ]
    if skipped:
        names = ", ".join(report.nodeid.split("::")[-1] for report in skipped)
        terminalreporter.write_line(f"{len(skipped)} test(s) skipped: {NEEDS_REAL_CIFAR10} at {CIFAR10} ({names})")


# What a launcher (torchrun, Lightning's, SLURM) sets in the processes it starts: never inherited from the test's.
LAUNCHER_ENV_PREFIXES = ("SLURM_", "TORCHELASTIC_")
LAUNCHER_ENV = (
    "MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "LOCAL_WORLD_SIZE",
    "SIMCLR_RUN_DIR", "PL_GLOBAL_SEED",
)  # fmt: skip


def _process_stats() -> Iterator[tuple[int, list[str]]]:
    """``(pid, [state, ppid, pgrp, session, ...])`` of every process, from /proc/PID/stat (the fields after the
    command name, which may hold spaces and parentheses); processes that end while being read are left out."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        yield int(entry.name), stat[stat.rindex(")") + 2 :].split()


def alive_in_session(session: int) -> list[int]:
    """Processes (not zombies) in the session a CLI run was started in: its main process and what it started
    (loader workers, DDP ranks)."""
    return [pid for pid, fields in _process_stats() if fields[0] != "Z" and int(fields[3]) == session]


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid``, whatever session it moved to (torchrun starts each rank in a session
    of its own, so killing torchrun's process group leaves its ranks running)."""
    parents: dict[int, list[int]] = {}
    for child, fields in _process_stats():
        parents.setdefault(int(fields[1]), []).append(child)
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and every process below it."""
    for target in [pid, *descendants(pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(target, signal.SIGKILL)


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

    def children(self) -> list[int]:
        """The live processes the main process started (loader workers, DDP ranks, ...)."""
        return [pid for pid in alive_in_session(self.proc.pid) if pid != self.proc.pid]

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


@pytest.fixture
def offline_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where torch hub keeps ResNet-18's ImageNet weights, in an empty TORCH_HOME of this test whose downloads
    fail as they do without internet (the file's folder exists; the file does not)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))

    def no_network(url: str, *args: Any, **kwargs: Any) -> None:
        raise URLError("[Errno -3] Temporary failure in name resolution")

    import torch

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    path = tmp_path / "torch-home" / "hub" / "checkpoints" / RESNET18_FILE
    path.parent.mkdir(parents=True)
    return path
