"""How a dataset's files are found and read: the settings every command that reads images shares.

Each setting is defined once, in a group of its own, and a command's settings inherit the groups it offers:
:class:`DataDir` (where the data is), :class:`Download`, :class:`DecodingWorkers`, :class:`FollowLinks`,
:class:`TrainingImagesLimit`, :class:`Resize` and :class:`MemoryBudget` (the size above which a split is
streamed instead of held). :class:`DataReading` is the six a training command offers together; the
pretraining and autoencoder configs inherit it, so the fields have one type and one help text everywhere
and saved configs keep their flat keys. This module imports no torch, numpy or PIL: the CLI builds its
flags from it.
"""

from __future__ import annotations

from dataclasses import dataclass

from simclr.ranges import COUNT, NON_NEGATIVE, at_least
from simclr.settings import parse_size, setting

__all__ = [
    "IMAGE_SIDE",
    "MIN_IMAGE_SIDE",
    "RESIZE_HELP",
    "RESIZE_MODES",
    "DataDir",
    "DataReading",
    "DecodingWorkers",
    "Download",
    "FollowLinks",
    "MemoryBudget",
    "Resize",
    "TrainingImagesLimit",
]

# How an image folder's images become squares: "crop" resizes the shorter side and cuts the centre (keeps
# the aspect ratio, loses the ends of the longer side); "squash" resizes both sides (keeps all the
# content, distorts the aspect ratio: the sthalles/SimCLR fork squashes its crops to 96 x 96).
RESIZE_MODES: tuple[str, ...] = ("crop", "squash")

# The smallest side an image is read at: the CIFAR stem (the stem of small images) halves the resolution three
# times, so below 8 px its last stage sees less than one pixel of the image, only padding; and a crop of the
# smallest default scale (8% of the area) of a smaller image is under two pixels wide.
MIN_IMAGE_SIDE = 8
IMAGE_SIDE = at_least(MIN_IMAGE_SIDE, "the CIFAR stem halves an image three times")
RESIZE_HELP = (
    "image folders (and a Python Dataset's images): how an image becomes a square of --image-size: crop "
    "(shorter side resized, centre cut) or squash (both sides resized, the aspect ratio not kept; "
    "the sthalles/SimCLR fork)"
)


@dataclass
class DataDir:
    """Where the images are."""

    data_dir: str | None = setting(
        "where the images are: a dataset's folder (cifar10/100 also accept DIR/{train,test}/<class>/*), a "
        "folder of images, or the URL of a packed dataset (s3://, gs:// or azure://); evaluation commands default to "
        "their run's",
        None,
        group="data",
        path=True,
    )


@dataclass
class Download:
    """Whether a missing dataset may be downloaded."""

    download: bool = setting("let torchvision download a missing dataset (needs a network)", False, group="data")


@dataclass
class DecodingWorkers:
    """How many processes decode image files."""

    workers: int = setting(
        "processes decoding image files (at most the CPUs this process may use: more are not started)",
        2,
        group="data",
        within=NON_NEGATIVE,
    )


@dataclass
class FollowLinks:
    """Whether symbolic links out of the folder are read."""

    follow_links: bool = setting(
        "follow symbolic links that lead outside the folder being read (else skipped and listed)", False, group="data"
    )


@dataclass
class TrainingImagesLimit:
    """How much of the training split is used."""

    limit_train_images: int | None = setting(
        "use a stratified subset of N training images (default: all)",
        None,
        metavar="N",
        group="data",
        within=COUNT,
    )


@dataclass
class Resize:
    """How an image folder's images become squares."""

    resize: str = setting(RESIZE_HELP, "crop", choices=RESIZE_MODES, group="data")


# A dataclass puts the fields of the base listed last first: the saved config.yaml keeps this order.
@dataclass
class DataReading(Resize, TrainingImagesLimit, FollowLinks, DecodingWorkers, Download, DataDir):
    """Where a dataset is and how its files are read (the ``data`` settings of every training command)."""


@dataclass
class MemoryBudget:
    """How much decoded data may be held in memory before a split is streamed instead."""

    memory_budget: str | None = setting(
        "how much decoded data (e.g. 8GB) the processes of a machine may hold in memory together (each holds its "
        "copy): a split over it is streamed instead (an image folder is packed once for that), and an "
        "evaluation's linear probe whose features exceed it is fitted by mini-batch SGD (default: half of the "
        "machine's memory)",
        None,
        metavar="SIZE",
        group="data",
    )

    def memory_budget_bytes(self) -> int | None:
        """``memory_budget`` in bytes (None: the default, half of the machine's memory); unreadable text is a
        UserError."""
        return parse_size(self.memory_budget) if self.memory_budget is not None else None
