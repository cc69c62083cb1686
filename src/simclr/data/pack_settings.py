"""The settings of ``simclr data pack`` (:mod:`simclr.data.packed`): how images are stored in the shards.

Where the images are read from, and how, are the shared reading settings of :mod:`simclr.data.reading`;
:class:`JpegQuality` is shared with the other command that writes JPEG files (``simclr data coco-crops``).
This module imports no numpy or PIL, so ``simclr data pack --help`` builds its flags without them.
"""

from __future__ import annotations

from dataclasses import dataclass

from simclr.data.reading import DataDir, DecodingWorkers, Download, FollowLinks
from simclr.ranges import SEED, Range, at_least
from simclr.settings import check_values, setting

__all__ = ["JpegQuality", "PackConfig"]


@dataclass
class JpegQuality:
    """The quality of the JPEG files a command writes."""

    quality: int = setting("JPEG quality (1..100) of the images written", 95, within=Range(1, 100))


@dataclass  # not frozen: the reading groups it inherits are the training configs' too, which are not
class PackConfig(JpegQuality, FollowLinks, DecodingWorkers, Download, DataDir):
    """The settings of ``simclr data pack`` (:mod:`simclr.data.packed`); ``data_dir`` is where a named
    dataset's files are (an image folder is named by its path)."""

    max_side: int = setting(
        "images whose longer side exceeds N pixels are downscaled to N once; 512 keeps 224 px crops sharp",
        512,
        metavar="N",
        within=at_least(16, "smaller images are not worth packing"),
    )
    seed: int = setting("seed of the stored (shuffled) order", 0, within=SEED)

    def validate(self) -> None:
        """Every number against its range: the packer also takes settings built in Python, not from flags."""
        check_values(self)
