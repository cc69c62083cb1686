"""Opening a run-like directory to write in it: one process at a time, its log, no half-written leftovers.

Every command that writes a directory of its own (pretraining's run, ``simclr train-ae``'s run, a sweep's
folder, an evaluation's folder through :class:`~simclr.evaluation.session.EvalSession`) opens it with
:func:`open_run`, which

- claims it: a lock file (``.lock``: pid, host, process start) created atomically, so a second process that
  opens the same directory stops with a one-line error instead of interleaving its files with the first's;
  a lock whose process has died (SIGKILL, power loss) is reported and taken over;
- sends the ``simclr`` logger to the directory's log file (when it has one);
- removes the temporaries that atomic writes of killed processes left (:mod:`simclr.atomic`);
- and releases the lock when the block ends, however it ends.

What a directory is called and where its files go is :mod:`simclr.rundir`'s; what pretraining adds on top
(``--resume``, the saved config, the processes of a multi-process run) is
:mod:`simclr.training.run_setup`'s.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from simclr.errors import UserError
from simclr.paths import check_writable_folder
from simclr.process_lock import ended_on_this_host as _is_stale
from simclr.process_lock import process_start as _process_start
from simclr.process_lock import read_lock
from simclr.progress import StderrHandler
from simclr.rundir import RunDir

log = logging.getLogger("simclr")

__all__ = [
    "claim",
    "held_log_records",
    "live_holder",
    "open_run",
    "release",
    "setup_logging",
]


@contextmanager
def open_run(
    path: Path,
    *,
    may_hold_run: bool = True,
    continue_with: str | None = None,
    log_file: Path | None = None,
    quiet: bool = False,
    held: list[logging.LogRecord] | None = None,
    flag: str = "--out",
) -> Iterator[RunDir]:
    """Create ``path`` if needed, claim it for this process, and yield its :class:`~simclr.rundir.RunDir`;
    the claim is released when the block ends.

    ``may_hold_run=False`` refuses a directory that already holds a run (a saved config), so a fresh run
    never overwrites an earlier one; ``continue_with`` is the flag that continues that run instead
    (``--resume``), named in the error. ``log_file`` is where the ``simclr`` logger writes from now on
    (also to stderr unless ``quiet``; ``held`` records first, see :func:`held_log_records`); without one the
    logger is left as the caller set it. ``flag`` is the option that chose the directory, named in errors.
    A directory this call created and that is left empty (the command failed before writing) is removed, so a
    refused command leaves nothing behind.
    """
    check_writable_folder(path, flag)  # a file, or a folder this user may not write: one line, before any work
    run = RunDir(path)
    created = not run.path.exists()
    run.path.mkdir(parents=True, exist_ok=True)
    takeover = claim(run.path, flag=flag)
    try:
        if log_file is not None:
            setup_logging(log_file, quiet=quiet, held=held)
        if takeover:
            log.warning("%s", takeover)
        if not may_hold_run and run.holds_run():
            advice = f" or continue it with {continue_with} {run.path}" if continue_with else ""
            raise UserError(f"{run.path} already holds a run; choose another {flag}{advice}")
        remove_leftovers(run)
        yield run
    finally:
        release(run.path)
        if created and not any(run.path.iterdir()):
            run.path.rmdir()


def remove_leftovers(run: RunDir) -> list[Path]:
    """Remove what atomic writes of killed processes left in the run (this process holds the directory;
    a live writer's temporaries are kept), saying so in the log; returns what was removed."""
    leftovers = run.temporaries()
    size = 0
    for path in leftovers:
        try:
            size += path.stat().st_size
            path.unlink()
        except FileNotFoundError:  # its writer's directory was cleared meanwhile
            continue
    if leftovers:
        log.warning(
            "removed %d temporary file(s) (%.1f MB) left by interrupted writes: %s",
            len(leftovers),
            size / 2**20,
            ", ".join(path.name for path in leftovers[:3]) + (" ..." if len(leftovers) > 3 else ""),
        )
    return leftovers


# -- the lock --------------------------------------------------------------------------------------------
def claim(directory: Path, *, flag: str = "--out") -> str | None:
    """Create the directory's lock for this process (pid, host, start time); a UserError when a live process
    holds it. Returns a note to log when it took over the lock of a process that died."""
    lock = RunDir(directory).lock
    me = {"pid": os.getpid(), "host": socket.gethostname(), "start": _process_start(os.getpid()), "since": time.ctime()}
    takeover = None
    for _ in range(2):
        try:
            descriptor = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = read_lock(lock)
            if not _is_stale(holder):
                raise UserError(
                    f"{directory} is in use by process {holder.get('pid')} on {holder.get('host')} since "
                    f"{holder.get('since')}; wait for it to end or choose another {flag} "
                    f"(if that process is gone, delete {lock})"
                ) from None
            takeover = (
                f"{directory}: process {holder.get('pid')}, which trained here, ended without releasing the "
                "directory; taking it over"
            )
            lock.unlink(missing_ok=True)
            continue
        try:
            with os.fdopen(descriptor, "w") as handle:
                json.dump(me, handle)
        except OSError as exc:  # a full disk: an empty lock would name no holder; the error names the lock
            lock.unlink(missing_ok=True)
            raise OSError(exc.errno, exc.strerror, str(lock)) from None
        return takeover
    raise UserError(f"{directory} is being claimed by another process at the same time; choose another {flag}")


def release(directory: Path) -> None:
    """Remove the directory's lock if this process holds it."""
    lock = RunDir(directory).lock
    if read_lock(lock).get("pid") == os.getpid():
        lock.unlink(missing_ok=True)


def live_holder(directory: Path) -> dict[str, object] | None:
    """Who holds the directory now (its lock's content), or None when no live process does."""
    lock = RunDir(directory).lock
    holder = read_lock(lock)
    return holder if lock.exists() and not _is_stale(holder) else None


# -- the log ---------------------------------------------------------------------------------------------
@contextmanager
def held_log_records(*, echo: bool = False) -> Iterator[list[logging.LogRecord]]:
    """Hold what the ``simclr`` logger says before the run's log exists (decisions made while loading the
    data), so :func:`setup_logging` can write it into the log once the run directory is there.

    ``echo``: also show each line on stderr when it is said, so a long phase (estimating a folder, packing,
    decoding) never runs silent; :func:`setup_logging` then writes it to the log file without showing it twice.
    """
    logger = logging.getLogger("simclr")
    holder = logging.handlers.BufferingHandler(capacity=100_000)
    previous_level, previous_handlers = logger.level, list(logger.handlers)
    for handler in previous_handlers:  # e.g. an earlier run's log in the same process: not this run's
        logger.removeHandler(handler)
    holding: list[logging.Handler] = [holder, _ShownNow()] if echo else [holder]
    for handler in holding:
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield holder.buffer
    finally:
        for handler in holding:
            logger.removeHandler(handler)
        for handler in previous_handlers:
            logger.addHandler(handler)
        logger.setLevel(previous_level)


def setup_logging(
    log_file: Path | None, quiet: bool = False, held: list[logging.LogRecord] | None = None
) -> logging.Logger:
    """Log to ``log_file`` (the run's log; None in the processes that must not write it) and, unless
    quiet, to stderr; ``held`` records go first."""
    logger = logging.getLogger("simclr")
    logger.setLevel(logging.INFO)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    if log_file is not None:
        file_handler = logging.FileHandler(log_file)
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(file_handler)
    stream = None
    if not quiet:
        stream = StderrHandler()
        stream.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(stream)
    logger.propagate = False
    for record in held or []:
        for handler in logger.handlers:
            if handler is stream and getattr(record, _SHOWN, False):
                continue  # shown when it was said (held_log_records(echo=True))
            if record.levelno >= handler.level:
                handler.handle(record)
    return logger


_SHOWN = "simclr_shown_on_stderr"


class _ShownNow(StderrHandler):
    """Shows a held record on stderr at once and marks it, so it is not shown again when the log opens."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        setattr(record, _SHOWN, True)
        super().emit(record)
