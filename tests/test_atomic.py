"""The one atomic writer: whole files or none, temporaries cleaned, a killed writer's leftovers found."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from simclr.atomic import (
    atomic_write,
    is_temporary,
    leftover_temporaries,
    remove_leftover_temporaries,
    temporary_path,
    write_bytes_atomic,
    write_text_atomic,
)


def test_a_write_replaces_the_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "config.yaml"
    target.write_text("old")
    write_text_atomic(target, "new")
    assert target.read_text() == "new"
    write_bytes_atomic(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]


def test_an_error_keeps_the_old_file_and_removes_the_temporary(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(target) as tmp:
        tmp.write_text("half")
        assert target.read_text() == "old"  # nothing visible before the block ends
        raise RuntimeError("the writer failed")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_the_file_gets_the_mode_the_umask_gives(tmp_path: Path) -> None:
    target = tmp_path / "backbone.safetensors"
    with atomic_write(target) as tmp:
        tmp.write_bytes(b"x")
        tmp.chmod(0o600)  # as safetensors creates its files
    old = os.umask(0o022)
    os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~old


def test_temporary_names_are_recognised(tmp_path: Path) -> None:
    tmp = temporary_path(tmp_path / "last.ckpt")
    assert tmp.name == f".last.ckpt.tmp-{os.getpid()}" and is_temporary(tmp)
    assert not is_temporary(tmp_path / "last.ckpt") and not is_temporary(tmp_path / ".last.ckpt.tmp")


def test_a_killed_writers_temporary_is_found_and_removed_a_live_ones_is_not(tmp_path: Path) -> None:
    # a process that has exited: its pid is free (pids are not reused this fast)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    (tmp_path / "checkpoints").mkdir()
    killed = tmp_path / "checkpoints" / f".last.ckpt.tmp-{dead_pid}"
    killed.write_bytes(b"half a checkpoint")
    ours = temporary_path(tmp_path / "metrics.csv")
    ours.write_text("being written")
    kept = tmp_path / ".hidden-but-not-a-temporary"
    kept.write_text("user's")
    assert leftover_temporaries(tmp_path) == []
    assert leftover_temporaries(tmp_path, recursive=True) == [killed]
    assert remove_leftover_temporaries(tmp_path, recursive=True) == [killed]
    assert not killed.exists() and ours.exists() and kept.exists()
