"""Opening a run directory for training: create or continue it, save the config, log into it."""

from __future__ import annotations

import dataclasses
import logging
import logging.handlers
import os
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from simclr.config import PretrainConfig
from simclr.errors import UserError
from simclr.rundir import RunDir
from simclr.settings import config_to_yaml

log = logging.getLogger("simclr")

RUN_DIR_ENV = "SIMCLR_RUN_DIR"  # hands the resolved directory to DDP worker processes
# What Lightning's launcher, torchrun and SLURM set in the processes of a multi-process run.
_RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID")


def is_worker_process() -> bool:
    """True in every process of a multi-process run but the first (global rank 0): the ones Lightning's
    launcher starts, and those torchrun or SLURM start on this and other machines. They use the run
    directory; only the first process creates it and writes its files."""
    return any(os.environ.get(name, "0") != "0" for name in _RANK_VARIABLES)


def default_run_dir(config: PretrainConfig) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    # timm:resnet18 -> timm-resnet18; custom:pkg.Net -> custom-pkg.Net (no colons or brackets in folder names)
    backbone = re.sub(r"[^\w.-]+", "-", config.backbone)
    return Path("runs") / f"{config.dataset}-{backbone}-{stamp}"


@contextmanager
def open_run_dir(
    config: PretrainConfig, *, quiet: bool = False, held: list[logging.LogRecord] | None = None
) -> Iterator[RunDir]:
    """The run directory, created (or, for ``--resume``, reopened) and claimed by this process for the run,
    with the run's log opened in it (``held`` records first; see :func:`setup_logging`).

    The claim is a lock file created atomically: a second process with the same ``--out``, or a ``--resume``
    of a run that is still training, stops with a one-line error, so one directory never holds two runs. A
    lock left by a process that died (SIGKILL, power loss) is reported and taken over, and the temporary
    files its interrupted writes left are removed. A fresh run refuses a directory that already holds a run,
    so nothing written earlier is overwritten. The processes a multi-process run adds use the directory
    without claiming or writing it.
    """
    if is_worker_process():
        shared = os.environ.get(RUN_DIR_ENV) or config.resume or config.out
        if not shared:
            raise UserError(
                "this is one of several processes (torchrun, SLURM): pass --out, a folder every process and "
                "machine reaches, so that they share one run directory"
            )
        setup_logging(None, quiet=True, held=held)
        yield RunDir(Path(shared))
        return
    run = RunDir(Path(config.resume or config.out or default_run_dir(config)))
    check_writable(run.path)
    run.path.mkdir(parents=True, exist_ok=True)
    takeover = run.claim()
    try:
        setup_logging(run.log, quiet=quiet, held=held)
        if takeover:
            log.warning("%s", takeover)
        if not config.resume and run.holds_run():
            raise UserError(
                f"{run.path} already holds a run; choose another --out or continue it with --resume {run.path}"
            )
        _remove_temporaries(run)
        run.checkpoints.mkdir(exist_ok=True)
        run.write_config(config_to_yaml(dataclasses.replace(config, resume=None, out=str(run.path))))
        os.environ[RUN_DIR_ENV] = str(run.path.resolve())
        yield run
    finally:
        run.release()


def check_writable(path: Path) -> None:
    """A one-line error, before any work, when ``path`` cannot become a run directory."""
    if path.exists() and not path.is_dir():
        raise UserError(f"--out {path} is a file, not a folder; choose another --out")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"--out {path} lies under the file {existing}; choose another --out")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(
            f"cannot create --out {path}: {existing} is not writable (permission denied); choose another --out"
        )


def _remove_temporaries(run: RunDir) -> None:
    """Remove what interrupted atomic writes left: this process holds the directory, so no one else is
    writing them."""
    leftovers = run.temporaries()
    if leftovers:
        size = sum(path.stat().st_size for path in leftovers)
        for path in leftovers:
            path.unlink(missing_ok=True)
        log.warning(
            "removed %d temporary file(s) (%.1f MB) left by interrupted writes: %s",
            len(leftovers),
            size / 2**20,
            ", ".join(path.name for path in leftovers[:3]) + (" ..." if len(leftovers) > 3 else ""),
        )


@contextmanager
def held_log_records() -> Iterator[list[logging.LogRecord]]:
    """Hold what the ``simclr`` logger says before the run's log exists (decisions made while loading the
    data), so :func:`setup_logging` can write it into the log once the run directory is there."""
    logger = logging.getLogger("simclr")
    holder = logging.handlers.BufferingHandler(capacity=100_000)
    previous_level, previous_handlers = logger.level, list(logger.handlers)
    for handler in previous_handlers:  # e.g. an earlier run's log in the same process: not this run's
        logger.removeHandler(handler)
    logger.addHandler(holder)
    logger.setLevel(logging.INFO)
    try:
        yield holder.buffer
    finally:
        logger.removeHandler(holder)
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
    if not quiet:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(stream)
    logger.propagate = False
    for record in held or []:
        logger.handle(record)
    return logger
