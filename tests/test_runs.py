"""Opening a run-like directory (simclr.runs): one writer at a time, the log, no leftovers of killed writers."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from simclr.atomic import temporary_path
from simclr.errors import UserError
from simclr.rundir import RunDir
from simclr.runs import claim, held_log_records, live_holder, open_run, release, setup_logging


@pytest.fixture(autouse=True)
def simclr_logger() -> Iterator[logging.Logger]:
    """The ``simclr`` logger without handlers (an earlier test's run may have left its log file's), as it was
    again after the test (open_run with a log file sets it up)."""
    logger = logging.getLogger("simclr")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    for handler in handlers:
        logger.removeHandler(handler)
    yield logger
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    for handler in handlers:
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = propagate


def dead_pid() -> int:
    """The pid of a process that has exited (pids are not reused this fast)."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_the_directory_is_held_while_open_and_released_after(tmp_path: Path) -> None:
    path = tmp_path / "run"
    with open_run(path) as run:
        assert run.path == path and path.is_dir()
        assert live_holder(path) is not None and live_holder(path)["pid"] == os.getpid()  # type: ignore[index]
    assert live_holder(path) is None and not RunDir(path).lock.exists()


def test_a_directory_a_live_process_holds_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "run"
    code = f"import sys, time; from pathlib import Path; from simclr.runs import claim; claim(Path({str(path)!r}))"
    path.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", code + "; print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        in_use = f"is in use by process {holder.pid}.*choose another --eval-dir"
        with pytest.raises(UserError, match=in_use), open_run(path, flag="--eval-dir"):
            pass
        assert json.loads(RunDir(path).lock.read_text())["pid"] == holder.pid  # not taken from its holder
    finally:
        holder.kill()
        holder.wait()


def test_a_dead_holders_lock_is_taken_over_and_said_in_the_log(tmp_path: Path) -> None:
    path = tmp_path / "run"
    path.mkdir()
    pid = dead_pid()
    RunDir(path).lock.write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "start": "1"}))
    with open_run(path, log_file=path / "the.log", quiet=True):
        assert live_holder(path)["pid"] == os.getpid()  # type: ignore[index]
    assert f"process {pid}, which trained here, ended without releasing" in (path / "the.log").read_text()


def test_a_fresh_run_refuses_a_directory_that_holds_one(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.write_config("dataset: cifar10\n")
    refused = r"already holds a run; choose another --out or continue it with --resume"
    with pytest.raises(UserError, match=refused), open_run(run.path, may_hold_run=False, continue_with="--resume"):
        pass
    assert not run.lock.exists()  # released on the error
    with open_run(run.path, may_hold_run=True):
        pass


def test_leftover_temporaries_of_killed_writers_are_removed_a_live_writers_kept(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    (run.path / "eval").mkdir(parents=True)
    pid = dead_pid()
    killed = [run.path / f".metrics.csv.tmp-{pid}", run.path / "eval" / f".metrics.json.tmp-{pid}"]
    for path in killed:
        path.write_text("half")
    live = temporary_path(run.metrics)  # this process's own write in flight
    live.write_text("being written")
    assert run.temporaries() == sorted(killed)
    with open_run(run.path) as opened:
        assert opened.temporaries() == []
    assert not any(path.exists() for path in killed) and live.exists()


def test_claim_and_release_are_this_process_s(tmp_path: Path) -> None:
    assert claim(tmp_path) is None
    with pytest.raises(UserError, match="is in use by process"):
        claim(tmp_path)  # this process holds it: a second claim is a second writer
    release(tmp_path)
    assert live_holder(tmp_path) is None


def test_a_folder_the_opener_made_and_left_empty_is_removed(tmp_path: Path) -> None:
    """A command refused after the folder was opened (bad input found late) leaves nothing behind; a folder
    that existed before, or that got a file, stays."""
    made = tmp_path / "eval"
    with pytest.raises(UserError), open_run(made, flag="--eval-dir"):
        raise UserError("refused after opening")
    assert not made.exists()
    with open_run(made, flag="--eval-dir") as run:
        (run.path / "metrics.json").write_text("{}")
    assert sorted(p.name for p in made.iterdir()) == ["metrics.json"]
    existing = tmp_path / "existing"
    existing.mkdir()
    with open_run(existing):
        pass
    assert existing.is_dir()


def test_held_decisions_are_shown_when_made_and_logged_once_the_log_opens(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before the run's log exists (estimating, packing, decoding a folder), each decision reaches stderr as it
    is made; when the log opens it is written there too, without being shown on stderr a second time."""
    logger = logging.getLogger("simclr")
    with held_log_records(echo=True) as held:
        logger.info("image folder: 300 images take 45 MB decoded; held in memory")
        assert capsys.readouterr().err == "image folder: 300 images take 45 MB decoded; held in memory\n"
    setup_logging(tmp_path / "train.log", quiet=False, held=held)
    logger.info("run directory: somewhere")
    for handler in list(logger.handlers):
        handler.flush()
    assert capsys.readouterr().err == "run directory: somewhere\n"
    logged = (tmp_path / "train.log").read_text()
    assert "held in memory" in logged and "run directory: somewhere" in logged
    setup_logging(None, quiet=True)  # leave the logger without the test's file


def test_held_decisions_stay_quiet_without_echo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    logger = logging.getLogger("simclr")
    with held_log_records() as held:
        logger.info("a decision")
    assert capsys.readouterr().err == ""
    setup_logging(None, quiet=False, held=held)
    assert capsys.readouterr().err == "a decision\n"
    setup_logging(None, quiet=True)
