"""The settings of ``simclr data pack`` (:mod:`simclr.data.packed`): how images are stored in the shards.

Where the images are read from, and how, are the shared reading settings of :mod:`simclr.data.reading`;
:class:`JpegQuality` is shared with the other command that writes JPEG files (``simclr data coco-crops``).
This module imports no numpy or PIL, so ``simclr data pack --help`` builds its flags without them.
"""

from __future__ import annotations

from dataclasses import dataclass

from simclr.data.reading import DataDir, DecodingWorkers, Download, FollowLinks
from simclr.errors import UserError
from simclr.settings import jpeg_quality, positive_int, setting

__all__ = ["JpegQuality", "PackConfig"]


@dataclass
class JpegQuality:
    """The quality of the JPEG files a command writes."""

    quality: int = setting("JPEG quality (1..100) of the images written", 95, parse=jpeg_quality)


@dataclass  # not frozen: the reading groups it inherits are the training configs' too, which are not
class PackConfig(JpegQuality, FollowLinks, DecodingWorkers, Download, DataDir):
    """The settings of ``simclr data pack`` (:mod:`simclr.data.packed`); ``data_dir`` is where a named
    dataset's files are (an image folder is named by its path)."""

    max_side: int = setting(
        "images whose longer side exceeds N pixels are downscaled to N once; 512 keeps 224 px crops sharp",
        512,
        parse=positive_int,
        metavar="N",
    )
    seed: int = setting("seed of the stored (shuffled) order", 0)

    def validate(self) -> None:
        """Reject a side or quality the packer cannot use, with the fix in the message."""
        if self.max_side < 16:
            raise UserError(f"--max-side must be at least 16 pixels, got {self.max_side}")
        if not 1 <= self.quality <= 100:
            raise UserError(f"--quality must be within 1..100, got {self.quality}")
