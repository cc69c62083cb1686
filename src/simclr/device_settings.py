"""Where a command computes: the device settings every command that runs a network shares.

:class:`Accelerator` is the one definition of ``--accelerator`` (pretraining, the autoencoder, every
evaluation command, embed, predict); :class:`ForwardPasses` adds the batch size of the commands that run a
backbone over images without training it (evaluation, embed, predict). :mod:`simclr.hardware` turns the
choice into a device, and :func:`check_batch_fits` refuses an image side at which one batch alone cannot fit
the machine's memory. This module imports no torch: the CLI builds its flags from it.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

from simclr.errors import UserError
from simclr.ranges import COUNT
from simclr.settings import format_size, setting

__all__ = ["ACCELERATORS", "Accelerator", "ForwardPasses", "accelerator_name", "check_batch_fits", "machine_memory"]

ACCELERATORS: tuple[str, ...] = ("auto", "cpu", "gpu")


def accelerator_name(text: str) -> str:
    """Parse ``--accelerator``: one of :data:`ACCELERATORS` (``cuda``, as Lightning spells a GPU, also passes:
    :func:`simclr.hardware.uses_gpu` reads it as ``gpu``)."""
    if text not in (*ACCELERATORS, "cuda"):
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(ACCELERATORS)}, got {text!r}")
    return text


@dataclass
class Accelerator:
    """Which device computes."""

    accelerator: str = setting(
        "where the network runs: auto (a GPU when one is visible), cpu or gpu",
        "auto",
        parse=accelerator_name,
        metavar="{" + ",".join(ACCELERATORS) + "}",
        group="hardware",
    )


@dataclass
class ForwardPasses(Accelerator):
    """Which device runs a backbone over images, and how many images it takes at once."""

    batch_size: int = setting("images per forward pass when computing features", 512, group="hardware", within=COUNT)


def machine_memory() -> int | None:
    """The physical memory of the machine in bytes (None where the system does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def check_batch_fits(images: int, side: int, what: str) -> None:
    """Refuse an image side at which ``images`` images (``what``: one batch of views, ...) as float32 pixels
    alone exceed the machine's memory, before anything is allocated: the network's activations need more
    still, so such a run can only end in the allocator's failure (``--image-size 100000`` asks for terabytes)."""
    memory = machine_memory()
    needed = images * 3 * side * side * 4
    if memory is not None and needed > memory:
        raise UserError(
            f"--image-size {side} needs {format_size(needed)} for {what} ({images} x 3 x {side} x {side} float32 "
            f"pixels), more than the machine's {format_size(memory)} of memory; use a smaller --image-size "
            "(or --batch-size)"
        )
