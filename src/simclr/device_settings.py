"""Where a command computes: the device settings every command that runs a network shares.

:class:`Accelerator` is the one definition of ``--accelerator`` (pretraining, the autoencoder, every
evaluation command, embed, predict); :class:`ForwardPasses` adds the batch size of the commands that run a
backbone over images without training it (evaluation, embed, predict). :mod:`simclr.hardware` turns the
choice into a device. This module imports no torch: the CLI builds its flags from it.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from simclr.settings import positive_int, setting

__all__ = ["ACCELERATORS", "Accelerator", "ForwardPasses", "accelerator_name"]

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

    batch_size: int = setting(
        "images per forward pass when computing features", 512, parse=positive_int, group="hardware"
    )
