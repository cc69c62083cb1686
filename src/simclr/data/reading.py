"""How a dataset's files are found and read: the settings every command that loads a named dataset shares.

:class:`DataReading` is the one definition of where the data is (``data_dir``, ``download``), how it is
decoded (``workers``, ``follow_links``, ``resize``) and how much of the training split is used
(``limit_train_images``); the pretraining and autoencoder configs inherit it, so the fields have one type
and one help text everywhere and saved configs keep their flat keys. :class:`MemoryBudget` adds the size
above which a split is streamed instead of held. This module imports no torch, numpy or PIL: the CLI builds
its flags from it.
"""

from __future__ import annotations

from dataclasses import dataclass

from simclr.settings import parse_size, setting

__all__ = ["RESIZE_HELP", "RESIZE_MODES", "DataReading", "MemoryBudget"]

# How an image folder's images become squares: "crop" resizes the shorter side and cuts the centre (keeps
# the aspect ratio, loses the ends of the longer side); "squash" resizes both sides (keeps all the
# content, distorts the aspect ratio: seed 001 squashes its crops to 96 x 96).
RESIZE_MODES: tuple[str, ...] = ("crop", "squash")
RESIZE_HELP = (
    "image folders (and a Python Dataset's images): how an image becomes a square of --image-size: crop "
    "(shorter side resized, centre cut) or squash (both sides resized, the aspect ratio not kept; seed 001)"
)


@dataclass
class DataReading:
    """Where a dataset is and how its files are read (the ``data`` settings of every training command)."""

    data_dir: str | None = setting(
        "where the dataset is: its folder (cifar10/100 also accept DIR/{train,test}/<class>/*), or the URL of "
        "a packed dataset (s3://, gs://, ...)",
        None,
        group="data",
    )
    download: bool = setting("let torchvision download a missing dataset (needs a network)", False, group="data")
    workers: int = setting("processes decoding image files", 2, group="data")
    follow_links: bool = setting(
        "follow symbolic links that lead outside --data-dir (else skipped and listed)", False, group="data"
    )
    limit_train_images: int | None = setting(
        "train on a stratified subset of N training images (default: all)", None, metavar="N", group="data"
    )
    resize: str = setting(RESIZE_HELP, "crop", choices=RESIZE_MODES, group="data")


@dataclass
class MemoryBudget:
    """How much decoded data may be held in memory before a split is streamed instead."""

    memory_budget: str | None = setting(
        "an image folder whose decoded training split exceeds SIZE (e.g. 8GB) is packed once and streamed "
        "instead of held in memory (default: half of the available memory)",
        None,
        metavar="SIZE",
        group="data",
    )

    def memory_budget_bytes(self) -> int | None:
        """``memory_budget`` in bytes (None: the default, half of the available memory); unreadable text is a
        UserError."""
        return parse_size(self.memory_budget) if self.memory_budget is not None else None
