"""Where a run's data comes from, and the one way every command loads a split of it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from simclr.data.registry import load_dataset
from simclr.data.store import ImageStore
from simclr.errors import UserError

if TYPE_CHECKING:
    from simclr.config import AutoencoderConfig, PretrainConfig


@dataclass(frozen=True)
class DataSource:
    """A dataset by name and place, with what loading it needs: pretraining, evaluation and the autoencoder
    all describe their data this way and load it through :meth:`load_train` and :meth:`load_test`.

    ``spirograph_train_size`` / ``spirograph_test_size`` say how many Spirograph images to generate; other
    datasets ignore them.
    """

    dataset: str
    data_dir: Path | None = None
    download: bool = False
    workers: int = 2
    spirograph_train_size: int | None = None
    spirograph_test_size: int | None = None

    @classmethod
    def of(cls, config: PretrainConfig | AutoencoderConfig) -> DataSource:
        """The data a pretraining or autoencoder config names."""
        return cls(
            config.dataset,
            Path(config.data_dir) if config.data_dir else None,
            download=config.download,
            workers=config.workers,
            spirograph_train_size=config.train_size,
            spirograph_test_size=getattr(config, "test_size", None),  # the autoencoder needs no test split
        )

    def load_train(
        self, *, labelled_only: bool = False, image_size: int | None = None, limit: int | None = None, seed: int = 0
    ) -> ImageStore:
        """The training split (``labelled_only``: without STL-10's unlabelled images); missing data is a
        UserError naming the folder."""
        store = self._load("train_labeled" if labelled_only else "train", image_size, limit, seed)
        if store is None:
            raise UserError(f"dataset {self.dataset} has no training split in {self.data_dir}; check --data-dir")
        return store

    def load_test(self, *, image_size: int | None = None, limit: int | None = None, seed: int = 0) -> ImageStore | None:
        """The test split, or None when the dataset has none (an image folder without ``test/``)."""
        return self._load("test", image_size, limit, seed)

    def _load(self, split: str, image_size: int | None, limit: int | None, seed: int) -> ImageStore | None:
        return load_dataset(
            self.dataset,
            split,
            self.data_dir,
            download=self.download,
            image_size=image_size,
            limit=limit,
            seed=seed,
            workers=self.workers,
            spirograph_size=self.spirograph_train_size,
            spirograph_test_size=self.spirograph_test_size,
        )
