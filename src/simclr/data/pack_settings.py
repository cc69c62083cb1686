"""The settings of ``simclr data pack`` (:mod:`simclr.data.packed`): how images are stored in the shards.

This module imports no numpy or PIL, so ``simclr data pack --help`` builds its flags without them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from simclr.errors import UserError
from simclr.settings import jpeg_quality, positive_int, setting

__all__ = ["PackConfig"]


@dataclass(frozen=True)
class PackConfig:
    """The settings of ``simclr data pack`` (:mod:`simclr.data.packed`)."""

    max_side: int = setting(
        "images whose longer side exceeds N pixels are downscaled to N once; 512 keeps 224 px crops sharp",
        512,
        parse=positive_int,
        metavar="N",
    )
    quality: int = setting("JPEG quality of the images that are re-encoded", 95, parse=jpeg_quality)
    workers: int = setting("processes packing in parallel", 2)
    seed: int = setting("seed of the stored (shuffled) order", 0)
    data_dir: Path | None = setting("SRC a dataset name: where its files are", None)
    download: bool = setting("SRC a torchvision dataset: download it first (needs a network)", False)
    follow_links: bool = setting("follow symbolic links that lead outside SRC (else skipped and listed)", False)

    def validate(self) -> None:
        """Reject a side or quality the packer cannot use, with the fix in the message."""
        if self.max_side < 16:
            raise UserError(f"--max-side must be at least 16 pixels, got {self.max_side}")
        if not 1 <= self.quality <= 100:
            raise UserError(f"--quality must be within 1..100, got {self.quality}")
