"""The run directory: where everything a run produces lives, and the log file inside it."""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import time
from pathlib import Path

from simclr.config import PretrainConfig, config_to_yaml
from simclr.errors import UserError

RUN_DIR_ENV = "SIMCLR_RUN_DIR"  # hands the resolved directory to DDP worker processes
LOG_FILE = "train.log"
CHECKPOINT = Path("checkpoints") / "last.ckpt"


def is_worker_process() -> bool:
    """True in the extra processes a DDP launcher starts (they must not create or rewrite files)."""
    return os.environ.get("LOCAL_RANK", "0") != "0" or os.environ.get("NODE_RANK", "0") != "0"


def default_run_dir(config: PretrainConfig) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{config.dataset}-{config.backbone}-{stamp}"


def checkpoint_path(run_dir: Path) -> Path:
    return run_dir / CHECKPOINT


def prepare_run_dir(config: PretrainConfig) -> Path:
    """Create (or, for ``--resume``, check) the run directory and save ``config.yaml`` in it.

    A fresh run refuses a directory that already holds a run, so nothing written earlier is overwritten.
    """
    inherited = os.environ.get(RUN_DIR_ENV)
    if inherited and is_worker_process():
        return Path(inherited)
    if config.resume:
        run_dir = Path(config.resume)  # run_pretraining already checked that last.ckpt exists
    else:
        run_dir = Path(config.out) if config.out else default_run_dir(config)
        if (run_dir / "config.yaml").exists():
            raise UserError(
                f"{run_dir} already holds a run; choose another --out or continue it with --resume {run_dir}"
            )
        run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "checkpoints").mkdir(exist_ok=True)
    saved = dataclasses.replace(config, resume=None, out=str(run_dir))
    tmp = run_dir / ".config.yaml.tmp"
    tmp.write_text(config_to_yaml(saved))
    os.replace(tmp, run_dir / "config.yaml")
    os.environ[RUN_DIR_ENV] = str(run_dir.resolve())
    return run_dir


def setup_logging(run_dir: Path, quiet: bool = False) -> logging.Logger:
    """Log to ``RUN_DIR/train.log`` and (unless quiet) to stderr."""
    logger = logging.getLogger("simclr")
    logger.setLevel(logging.INFO)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    file_handler = logging.FileHandler(run_dir / LOG_FILE)
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(file_handler)
    if not quiet:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(stream)
    logger.propagate = False
    return logger
