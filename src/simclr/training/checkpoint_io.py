"""Checkpoints that a kill cannot corrupt and a crafted file cannot exploit.

Lightning writes checkpoints in place, so a SIGKILL during the write leaves a truncated ``last.ckpt`` and
the run cannot be resumed. Here every checkpoint is written through :mod:`simclr.atomic` (a synced temporary
file in the same directory, renamed over the old one): a reader sees either the old or the new checkpoint,
never half. A full disk (or quota, or file size limit) ends the write with a one-line error
(:class:`~simclr.disk_full.DiskFull`: the checkpoint, the room it needs, the free space) and the previous
checkpoint in place, so that ``--resume`` continues once there is room.

Reading always passes ``weights_only=True`` to ``torch.load``, whatever the environment says
(``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` only changes the default): a checkpoint holds tensors and plain
containers, and unpickling anything else could run code from a crafted file.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from simclr.atomic import atomic_write
from simclr.errors import UserError


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to ``path`` through :func:`~simclr.atomic.atomic_write` (a synced temporary file, then a
    rename); a full disk is a one-line :class:`~simclr.disk_full.DiskFull` that keeps the previous checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # through a Python file: torch's writer then fails with the OSError (and its errno) as its context
    with atomic_write(path, what="checkpoint", fix="then continue with --resume") as tmp, open(tmp, "wb") as handle:
        torch.save(obj, handle)


def load_checkpoint_safely(path: Path) -> dict[str, Any]:
    """A Lightning checkpoint, loaded with ``weights_only=True``; anything else is a one-line UserError."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"{path} is not a readable simclr checkpoint ({reason}); it may be truncated or come from elsewhere"
        ) from None
    if not isinstance(checkpoint, dict) or not {"state_dict", "global_step"} <= checkpoint.keys():
        raise UserError(
            f"{path} is not a simclr checkpoint (no model state or step); pass the directory of a simclr run"
        )
    return checkpoint


class AtomicCheckpointIO(TorchCheckpointIO):
    """A Lightning CheckpointIO whose saves are atomic and whose loads are weights-only (module docstring)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        atomic_torch_save(checkpoint, Path(path))

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        return load_checkpoint_safely(Path(path))
