"""Checkpoint writing that a kill cannot corrupt.

Lightning writes checkpoints in place, so a SIGKILL during the write leaves a truncated ``last.ckpt`` and
the run cannot be resumed. Writing to a temporary file in the same directory, syncing it and renaming it
over the old file is atomic on POSIX: a reader sees either the old or the new checkpoint, never half.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to ``path`` via a synced temporary file and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


class AtomicCheckpointIO(TorchCheckpointIO):
    """A Lightning CheckpointIO whose saves are atomic (see module docstring)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        atomic_torch_save(checkpoint, Path(path))
