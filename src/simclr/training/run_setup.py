"""Opening a pretraining run's directory: a new one or the one ``--resume`` continues, with the config saved
in it; the processes a multi-process run adds share it without writing it. The generic part (the lock, the
log, leftover temporaries) is :func:`simclr.runs.open_run`."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from simclr.config import PretrainConfig
from simclr.errors import UserError
from simclr.rundir import RunDir
from simclr.runs import open_run, setup_logging
from simclr.settings import config_to_yaml
from simclr.training.module import FIX_NONFINITE, NonFiniteLossError

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
    config: PretrainConfig,
    *,
    quiet: bool = False,
    held: list[logging.LogRecord] | None = None,
    from_checkpoint: bool = True,
) -> Iterator[RunDir]:
    """The run directory, created (or, for ``--resume``, reopened) and claimed by this process for the run
    (:func:`simclr.runs.open_run`: one process per directory, the run's log, no leftover temporaries), with
    the config saved in it; ``held`` records go first in the log.

    A fresh run refuses a directory that already holds a run, so nothing written earlier is overwritten.
    ``from_checkpoint=False`` says a resumed run starts again from scratch, having found no checkpoint when it
    started; one that another process saved since (while this one loaded its data) is refused, not trained over.
    The processes a multi-process run adds use the directory without claiming or writing it.
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
    target = RunDir(Path(config.resume or config.out or default_run_dir(config)))
    check_writable(target.path)
    resuming = bool(config.resume)
    created = not target.path.exists()
    try:
        with open_run(
            target.path, may_hold_run=resuming, continue_with="--resume", log_file=target.log, quiet=quiet, held=held
        ) as run:
            if resuming and not from_checkpoint and run.last_checkpoint.is_file():
                raise UserError(
                    f"{run.path} already holds a run that another process checkpointed while this one loaded its "
                    "data; run the same command again to continue it"
                )
            run.checkpoints.mkdir(exist_ok=True)
            run.write_config(config_to_yaml(dataclasses.replace(config, resume=None, out=str(run.path))))
            os.environ[RUN_DIR_ENV] = str(run.path.resolve())
            yield run
    except NonFiniteLossError as exc:
        raise NonFiniteLossError(exc.what, after_nonfinite_loss(target, created=created)) from None


def after_nonfinite_loss(run: RunDir, *, created: bool) -> str:
    """What is left of a run stopped by a non-finite loss, and how to go on. Its last checkpoint holds the last
    good state when there is one; without one (the loss was not finite before the first save) nothing trained
    is worth keeping: a directory this run created is removed, so the same command with a lower --lr can
    start again, and one it did not create is left for ``--resume --resume-with-changes``."""
    if run.last_checkpoint.is_file():
        return (
            f"{run.last_checkpoint} still holds the last good state; {FIX_NONFINITE}, then continue with "
            f"--resume {run.path} --resume-with-changes"
        )
    if created:
        shutil.rmtree(run.path, ignore_errors=True)
        return f"no checkpoint was written, so {run.path} was removed; start again and {FIX_NONFINITE}"
    return (
        f"no checkpoint was written, so nothing trained was kept; {FIX_NONFINITE}, and start again with "
        f"--resume {run.path} --resume-with-changes"
    )


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
