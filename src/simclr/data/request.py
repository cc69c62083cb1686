"""What a dataset loader is asked for: one split, where the files are, and how to decode them.

Every loader of the catalog (:mod:`simclr.data.catalog`) takes one :class:`LoadRequest`; the catalog
builds it once per load, with the image size already resolved for the dataset and the dataset's own
splits that make the one asked for (its :class:`SplitPolicy`), so no loader repeats those decisions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from simclr.errors import UserError

__all__ = ["SPLITS", "LoadRequest", "SplitPolicy", "check_split"]

# Our splits: "train" (pretraining), "train_labeled" (labelled training data for evaluation: the same as
# "train" except where a dataset adds unlabelled images to train) and "test".
SPLITS = ("train", "train_labeled", "test")


def check_split(split: str) -> str:
    """``split`` when it is one of :data:`SPLITS`, else a UserError naming them."""
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    return split


@dataclass(frozen=True)
class SplitPolicy:
    """Which of a dataset's own splits make ours.

    ``train`` and ``test`` name the source's splits joined into our ``train`` and ``test`` (official
    validation splits join ``train``: a command that wants validation carves it with ``--val-fraction``);
    ``labelled_train`` those of ``train_labeled`` when it differs from ``train`` (STL-10's train split
    without its unlabelled images). ``held_out`` > 0 (with empty ``train`` and ``test``): the set has no
    official split, and ``test`` is a seeded stratified cut of that fraction of the whole set.
    """

    train: tuple[str, ...] = ("train",)
    test: tuple[str, ...] = ("test",)
    labelled_train: tuple[str, ...] | None = None
    held_out: float = 0.0
    described: str = ""  # how the README states splits that are not the source's own (generated, a folder)

    def source_splits(self, split: str) -> tuple[str, ...]:
        """The source's splits that make our ``split`` (``()`` for a seeded cut)."""
        if check_split(split) == "test":
            return self.test
        if split == "train_labeled" and self.labelled_train is not None:
            return self.labelled_train
        return self.train

    def describe(self) -> str:
        """``train + val / test`` as docs/DATASETS.md's table shows it."""
        if self.described:
            return self.described
        if self.held_out:
            kept = round(100 * (1 - self.held_out))
            return f"{kept}% / {100 - kept}% seeded cut"
        train = " + ".join(self.train)
        if self.labelled_train is not None:
            train += f" (labelled: {' + '.join(self.labelled_train)})"
        return f"{train} / {' + '.join(self.test)}"


@dataclass(frozen=True)
class LoadRequest:
    """One split of a dataset to load into memory.

    ``image_size`` is the side of the square images, resolved by the catalog (None: the images' own size,
    for datasets without one, such as image folders); ``limit`` keeps a stratified subset of that many
    images chosen with ``seed``; ``source_splits`` are the dataset's own splits that make ``split`` (see
    :class:`SplitPolicy`). ``generated_train_size`` / ``generated_test_size`` are the sizes of a generated
    dataset's splits (Spirograph; default: the dataset's own).
    """

    split: str
    data_dir: Path | None = None
    download: bool = False
    image_size: int | None = None
    limit: int | None = None
    seed: int = 0
    workers: int = 0
    follow_links: bool = False
    resize: str = "crop"
    source_splits: tuple[str, ...] = ()
    generated_train_size: int | None = None
    generated_test_size: int | None = None

    @property
    def folder_split(self) -> str:
        """``test`` or ``train``: the sub-folder of a ``train/`` + ``test/`` layout this split reads."""
        return "test" if self.split == "test" else "train"

    def resolved_size(self) -> int:
        """``image_size`` of a dataset that has a default one (the catalog always resolves it)."""
        if self.image_size is None:
            raise ValueError(f"a {self.split} request of a dataset with a default size needs its image_size")
        return self.image_size
