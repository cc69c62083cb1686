"""Reading the batches of a torch DataLoader whose workers decode images: started so that a stop signal to the
process group stops the run rather than the workers, ended when reading stops, and a worker's UserError kept to
its one line."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from torch.utils.data import DataLoader

from simclr.errors import UserError
from simclr.stop_signals import starting_helpers

__all__ = ["batches_from_workers"]


def batches_from_workers(loader: DataLoader[Any]) -> Iterator[Any]:
    """The batches of ``loader`` (its ``worker_init_fn`` ignoring stop signals), its workers started within
    :func:`~simclr.stop_signals.starting_helpers` and ended when the reading ends, early or not.

    A UserError raised in a worker reaches this process as torch raises it again: the same class, its message
    the worker's whole traceback; it is raised here with its one line."""
    with starting_helpers():
        batches = iter(loader)
    try:
        yield from batches
    except UserError as exc:
        marker = f"{type(exc).__name__}: "
        message = str(exc)
        if "\nOriginal Traceback" not in message or marker not in message:
            raise
        raise type(exc)(message.rsplit(marker, 1)[1].strip()) from None
    finally:
        # An error raised in a worker leaves the iterator referenced by its traceback, and its workers alive,
        # until the cyclic garbage collector runs; they ignore SIGTERM, so multiprocessing's exit handler, which
        # terminates and then joins them, would wait forever. They are ended here.
        end_workers = getattr(batches, "_shutdown_workers", None)  # torch's multi-process iterator only
        if end_workers is not None:
            end_workers()
