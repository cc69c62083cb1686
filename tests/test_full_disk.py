"""Commands that write, on a disk that fills: exit code 2, one line naming the file, the room and the fix, and
nothing already written lost or truncated.

The small disk is a real one where the machine lets the test mount it (a tmpfs with a size: writes fail with
ENOSPC when it is full); elsewhere every file the command writes is capped by the process's file size limit
(``RLIMIT_FSIZE``: writes past it fail with EFBIG), a fault of the kernel's write, not of a Python stand-in,
so torch's C++ writer, safetensors' Rust writer and litdata's chunks meet it as they would a full disk. Either
way the disk fills inside the command's own process: the wrapper below fills it before the command starts, or
right after the file named by ``fill_after`` is first written (a checkpoint at an epoch's end).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from simclr.cli import main

# what the command runs in: ``python -c WRAPPER COMMAND ARGS...``; SIMCLR_TEST_FILL says how the disk fills
WRAPPER = r"""
import errno, os, resource, runpy, signal, sys

how, _, value = os.environ["SIMCLR_TEST_FILL"].partition(":")
after = os.environ.get("SIMCLR_TEST_FILL_AFTER")


def fill():
    if how == "limit":  # no file may grow past VALUE bytes: writes past it fail with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (int(value), resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
        return
    filler, leave = value.rsplit(":", 1)  # fill the tmpfs, then give back LEAVE bytes
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for block in (1 << 20, 4096, 1):
            while True:
                try:
                    os.write(descriptor, b"\0" * block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
        os.ftruncate(descriptor, max(0, os.fstat(descriptor).st_size - int(leave)))
    finally:
        os.close(descriptor)


if after is None:
    fill()
else:  # the disk fills once a file named AFTER has been written (renamed into place) for the first time
    real_replace = os.replace

    def replace(source, target, **kwargs):
        real_replace(source, target, **kwargs)
        global after
        if after is not None and os.path.basename(target) == after:
            after = None
            fill()

    os.replace = replace
sys.argv = ["simclr", *sys.argv[1:]]
runpy.run_module("simclr", run_name="__main__", alter_sys=True)
"""

TINY_RUN = [
    "--batch-size", "16", "--precision", "32", "--knn-every-epochs", "0", "--workers", "1", "--quiet",
    "--backbone", "timm:test_resnet",
]  # fmt: skip
SPIROGRAPH = ["--dataset", "spirograph", "--train-size", "64", "--test-size", "16"]


@dataclass
class SmallDisk:
    """A folder on a disk that the command can fill: ``mounted`` (a 16 MB tmpfs) or not (a file size limit)."""

    root: Path
    mounted: bool

    @property
    def filler(self) -> Path:
        return self.root / "filler"

    def run(self, *args: str, room: int = 4096, fill_after: str | None = None) -> subprocess.CompletedProcess[str]:
        """``simclr ARGS`` in a new process whose disk fills (before it starts, or once a file named
        ``fill_after`` is written): ``room`` bytes are left free (tmpfs) or are the most one file may hold (a
        page: Python's ``tempfile`` and the run's lock still fit, the outputs do not)."""
        env = dict(os.environ, OMP_NUM_THREADS="1")
        env["SIMCLR_TEST_FILL"] = f"tmpfs:{self.filler}:{room}" if self.mounted else f"limit:{room}"
        if fill_after is not None:
            env["SIMCLR_TEST_FILL_AFTER"] = fill_after
        return subprocess.run(
            [sys.executable, "-c", WRAPPER, *args], env=env, text=True, capture_output=True, timeout=300
        )

    def free(self) -> None:
        """Give back the room the last run filled (the filler; a file size limit ends with its process)."""
        self.filler.unlink(missing_ok=True)


def _mount_tmpfs(folder: Path) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(folder)], capture_output=True)
    return done.returncode == 0


@pytest.fixture(scope="module")
def small_disk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmallDisk]:
    """A 16 MB tmpfs where this machine allows ``mount`` (root, no container limits), else a plain folder
    whose commands run under a file size limit; unmounted at the end whatever the tests did."""
    folder = tmp_path_factory.mktemp("small-disk")
    mounted = os.environ.get("SIMCLR_TEST_NO_MOUNT") != "1" and _mount_tmpfs(folder)
    try:
        yield SmallDisk(folder, mounted)
    finally:
        if mounted:
            subprocess.run(["umount", "--lazy", str(folder)], check=False)


@pytest.fixture
def place(small_disk: SmallDisk) -> Iterator[Path]:
    """A fresh folder on the small disk, removed after the test (the tmpfs is shared by the module's tests)."""
    folder = small_disk.root / uuid.uuid4().hex[:8]
    folder.mkdir()
    try:
        yield folder
    finally:
        small_disk.free()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, cifar_small: Path) -> Path:
    """A finished one-epoch CIFAR-10 run of a tiny backbone, on the ordinary disk."""
    run = tmp_path_factory.mktemp("tiny") / "run"
    cifar = ["--dataset", "cifar10", "--data-dir", str(cifar_small), "--limit-train-images", "64"]
    assert main(["pretrain", *TINY_RUN, *cifar, "--epochs", "1", "--out", str(run)]) == 0
    return run


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    """The command's one error line, after checking it failed with exit code 2 and printed no traceback."""
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("simclr: error: ")]
    assert len(lines) == 1, done.stderr
    return lines[0]


def assert_no_room_line(line: str, target: Path, disk: SmallDisk) -> None:
    """The line names the file, the cause (full disk or file size limit) and the fix."""
    assert str(target) in line, line
    if disk.mounted:
        assert "the disk is full" in line and f"free space on {disk.root}" in line, line
    else:
        assert "file size limit" in line and "ulimit -f" in line, line


def leftover_temporaries(folder: Path) -> list[Path]:
    return [path for path in folder.rglob(".*") if ".tmp-" in path.name]


@pytest.mark.slow
def test_pretrain_on_a_disk_that_fills_keeps_the_previous_checkpoint_and_resumes(
    small_disk: SmallDisk, place: Path
) -> None:
    run = place / "run"
    # the disk fills right after the first epoch's checkpoint: room for the backbone (1.5 MB), not the
    # second checkpoint (3.2 MB)
    done = small_disk.run(
        "pretrain", *TINY_RUN, *SPIROGRAPH, "--epochs", "3", "--out", str(run), room=2_000_000, fill_after="last.ckpt"
    )
    checkpoint = run / "checkpoints" / "last.ckpt"
    line = one_line(done)
    assert_no_room_line(line, checkpoint, small_disk)
    assert "the previous checkpoint was kept" in line and "continue with --resume" in line, line
    assert f"it needs about {checkpoint.stat().st_size // 10**6}." in line, line  # the size of the previous one
    kept = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert kept["epoch"] == 0 and kept["global_step"] == 4  # the first epoch's
    assert not leftover_temporaries(run)

    small_disk.free()
    # the disk has room again: the resume runs in this process (one import of torch fewer)
    assert main(["pretrain", "--resume", str(run), "--quiet"]) == 0
    assert torch.load(checkpoint, map_location="cpu", weights_only=True)["global_step"] == 12
    assert (run / "backbone.safetensors").is_file()


def test_data_pack_on_a_full_disk(small_disk: SmallDisk, place: Path, cifar_small: Path) -> None:
    out = place / "packed"
    line = one_line(small_disk.run("data", "pack", str(cifar_small), str(out), "--workers", "1", room=65536))
    assert_no_room_line(line, out, small_disk)
    assert "run the same command again" in line, line
    small_disk.free()
    assert main(["data", "pack", str(cifar_small), str(out), "--workers", "1"]) == 0  # the same command finishes
    assert json.loads((out / "train" / "index.json").read_text())["chunks"]


def test_export_on_a_full_disk_keeps_the_previous_file(small_disk: SmallDisk, place: Path, tiny_run: Path) -> None:
    out = place / "backbone.pt"
    out.write_bytes(b"the previous export")
    done = small_disk.run("export", str(tiny_run), "--format", "state_dict", "--out", str(out), "--overwrite")
    line = one_line(done)
    assert_no_room_line(line, out, small_disk)
    assert "the previous file was kept" in line, line
    assert out.read_bytes() == b"the previous export"
    assert not leftover_temporaries(place)


def test_embed_on_a_full_disk(small_disk: SmallDisk, place: Path, tiny_run: Path, cifar_small: Path) -> None:
    out = place / "embeddings.npy"
    done = small_disk.run("embed", str(tiny_run), "--data-dir", str(cifar_small / "test"), "--out", str(out))
    assert_no_room_line(one_line(done), out, small_disk)
    assert not out.exists() and not leftover_temporaries(place)


@pytest.mark.slow
def test_knn_on_a_full_disk_goes_on_without_its_cache_then_fails_on_its_results(
    small_disk: SmallDisk, place: Path, tiny_run: Path
) -> None:
    run = place / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("checkpoints"))
    # room for the results (8 kB) but not for the feature caches (40 and 120 kB): a line of warning for each
    done = small_disk.run("knn", str(run), "--workers", "0", room=16384)
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "feature cache was not kept" in line]
    assert len(warnings) == 2 and "Traceback" not in done.stderr, done.stderr
    assert not list((run / "eval" / "features").glob("*.pt"))
    results = json.loads((run / "eval" / "metrics.json").read_text())
    assert results
    small_disk.free()
    # room for the run's lock, not for the results: they cannot be written, and those already there are kept
    before = (run / "eval" / "metrics.json").read_bytes()
    line = one_line(small_disk.run("knn", str(run), "--workers", "0", "--k", "3", room=4096))
    assert_no_room_line(line, run / "eval" / "metrics.json", small_disk)
    assert "the previous results file was kept" in line and "run the same command again" in line, line
    assert (run / "eval" / "metrics.json").read_bytes() == before
    assert not leftover_temporaries(run)


def test_report_on_a_full_disk(small_disk: SmallDisk, place: Path, tiny_run: Path) -> None:
    out = place / "report.html"
    line = one_line(small_disk.run("report", str(tiny_run), "--out", str(out)))
    assert_no_room_line(line, out, small_disk)
    assert not out.exists() and not leftover_temporaries(place)
