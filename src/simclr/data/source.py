"""Where a run's data comes from, the one way every command loads a split of it, and the decision to
stream it instead (packed data, or an image folder bigger than the memory budget)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from simclr.data.catalog import load_dataset, resolve_image_size
from simclr.data.folder_listing import find_split_folder
from simclr.data.image_sizes import FolderEstimate, default_image_size, estimate_folder
from simclr.data.imagefolder import load_split_folder
from simclr.data.imagenet import IMAGENET_SUBSETS, list_imagenet
from simclr.data.memory_budget import decide_memory, is_first_local_process
from simclr.data.object_storage import describe_chunk_cache, find_remote_split, is_url, require_remote_split
from simclr.data.pack_cache import automatic_pack
from simclr.data.pack_format import find_packed_split, is_packed, wait_for_packer
from simclr.data.pack_settings import PackConfig
from simclr.data.python_dataset import read_dataset
from simclr.data.reading import DataReading
from simclr.data.store import ImageStore
from simclr.data.streaming import PackedSplit, hold_packed_split, packed_image_size
from simclr.errors import UserError

log = logging.getLogger("simclr")


@dataclass(frozen=True)
class DataSource:
    """A dataset by name and place, with what loading it needs: pretraining, evaluation and the autoencoder
    all describe their data this way and load it through :meth:`load_train` and :meth:`load_test`.

    ``spirograph_train_size`` / ``spirograph_test_size`` say how many Spirograph images to generate; other
    datasets ignore them. ``python_dataset`` is the Dataset object of a run whose config says ``python``
    (:mod:`simclr.data.python_dataset`): its training split, without a test split.
    """

    dataset: str
    data_dir: Path | None = None
    download: bool = False
    workers: int = 2
    spirograph_train_size: int | None = None
    spirograph_test_size: int | None = None
    data_url: str | None = None  # a packed dataset in object storage (s3://, gs://, ...), streamed by litdata
    follow_links: bool = False  # follow symbolic links out of an image folder
    resize: str = "crop"  # how an image folder's images become squares (reading.RESIZE_MODES)
    python_dataset: Dataset[Any] | None = None

    def streamed(
        self,
        image_size: int | None,
        memory_budget: int | None = None,
        pack_dir: Path | None = None,
        local_processes: int = 1,
    ) -> StreamedData | None:
        """The splits to stream, or None when the training split is held in memory.

        Packed data (``--dataset packed``, or an image folder that holds packed shards) always streams. An
        image folder or ImageNet whose decoded training split, once per process of the machine
        (``local_processes``, each holding a copy), would exceed ``memory_budget`` bytes (default: half of the
        machine's memory) is packed once (:func:`~simclr.data.pack_cache.automatic_pack`: into ``pack_dir`` or
        a cache entry keyed by the folder's content, by one process while the others wait) and streamed. The
        verdict depends on fixed numbers only, so every process of the machine reaches the same one; the first
        logs it with the estimate.
        """
        if self.data_url is not None:
            return _remote(self.data_url, image_size)
        if self.data_dir is None:
            return None
        root = self.data_dir.expanduser()
        if self.dataset == "packed" or (self.dataset == "imagefolder" and is_packed(root)):
            return _packed(root, image_size)
        estimate = self._estimate(root, image_size)
        if estimate is None or estimate.images == 0:
            return None  # an empty folder is the loader's one-line error, with nothing decided before it
        decision = decide_memory(estimate.decoded_bytes, memory_budget, local_processes)
        if is_first_local_process():
            log.info(
                "%s %s: %d images at %dx%d px %s: %s",
                "image folder" if self.dataset == "imagefolder" else self.dataset,
                root,
                estimate.images,
                estimate.height,
                estimate.width,
                decision.summary(),
                "held in memory" if decision.fits else "packed once and streamed (--memory-budget to change)",
            )
        if decision.fits:
            return None
        packed = automatic_pack(self._pack_source(root), root, pack_dir, self._pack_config(root))
        return _packed(packed, image_size or max(estimate.height, estimate.width))

    def _estimate(self, root: Path, image_size: int | None) -> FolderEstimate | None:
        """The decoded size of the training split of the datasets that may outgrow memory (image folders and
        ImageNet, counted from their file lists); None for the others, which are always held."""
        if self.dataset == "imagefolder":
            return estimate_folder(root, image_size, follow_external_links=self.follow_links)
        if self.dataset in IMAGENET_SUBSETS:
            files, _, _ = list_imagenet("train", root, subset=IMAGENET_SUBSETS[self.dataset])
            side = resolve_image_size(self.dataset, image_size) or 0
            return FolderEstimate(len(files), side, side)
        return None

    def _pack_source(self, root: Path) -> str:
        """What ``simclr data pack`` reads: the folder itself, or the dataset's name (its files under root)."""
        return str(root.resolve()) if self.dataset == "imagefolder" else self.dataset

    def _pack_config(self, root: Path) -> PackConfig:
        data_dir = None if self.dataset == "imagefolder" else str(root)
        return PackConfig(data_dir=data_dir, workers=max(1, self.workers), follow_links=self.follow_links)

    @classmethod
    def from_reading(
        cls,
        dataset: str,
        reading: DataReading,
        *,
        spirograph_sizes: tuple[int | None, int | None] = (None, None),
        python_dataset: Dataset[Any] | None = None,
    ) -> DataSource:
        """Dataset ``dataset`` read as ``reading`` says (a ``data_dir`` with ``://`` is the URL of a packed
        dataset); ``spirograph_sizes`` are the generated train and test sizes, ``python_dataset`` the Dataset a
        ``python`` dataset stands for."""
        data_dir = reading.data_dir
        url = data_dir if data_dir and is_url(data_dir) else None
        return cls(
            dataset,
            Path(data_dir) if data_dir and not url else None,
            download=reading.download,
            workers=reading.workers,
            spirograph_train_size=spirograph_sizes[0],
            spirograph_test_size=spirograph_sizes[1],
            data_url=url,
            follow_links=reading.follow_links,
            resize=reading.resize,
            python_dataset=python_dataset,
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

    def load_valid(self, *, image_size: int | None = None, seed: int = 0) -> ImageStore:
        """The ``valid/`` split of an image folder laid out as ``train/``, ``valid/`` and ``test/``
        (the sthalles/SimCLR fork's probe trains there), with the train split's class numbering."""
        root = self.data_dir
        if self.dataset != "imagefolder" or root is None or not (root / "test").is_dir():
            raise UserError(
                "--train-split valid needs an image folder with valid/ and test/ sub-folders (and train/); "
                "check --data-dir or use --train-split train"
            )
        if find_split_folder(root, "val") is None:
            raise UserError(f"no valid/ folder in {root}; use --train-split train")
        return load_split_folder(
            root,
            "val",
            image_size=image_size,
            workers=self.workers,
            seed=seed,
            follow_external_links=self.follow_links,
            resize=self.resize,
        )

    def _load(self, split: str, image_size: int | None, limit: int | None, seed: int) -> ImageStore | None:
        if self.data_url is not None:  # the commands that hold their data (train-ae) read a remote pack whole
            streamed = _remote(self.data_url, image_size)
            folder_split = "train" if split.startswith("train") else "test"
            packed = streamed.train if folder_split == "train" else streamed.test
            if packed is None:
                return None
            return hold_packed_split(packed, folder_split, streamed.image_size, limit, self.workers)
        if self.python_dataset is not None:
            if split == "test":
                return None
            return read_dataset(self.python_dataset, image_size, self.resize, limit=limit, seed=seed)
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
            follow_links=self.follow_links,
            resize=self.resize,
        )


@dataclass(frozen=True)
class StreamedData:
    """The splits a run streams, and the size its views are cut at."""

    train: PackedSplit
    test: PackedSplit | None
    image_size: int


def _packed(root: Path, image_size: int | None) -> StreamedData:
    """The packed splits under ``root`` (``simclr data pack``'s output)."""
    wait_for_packer(root)
    train = find_packed_split(root, "train")
    if train is None:
        raise UserError(f"{root} holds no packed dataset; create one with 'simclr data pack SRC {root}'")
    test = find_packed_split(root, "test")
    return StreamedData(PackedSplit(train), PackedSplit(test) if test else None, image_size or packed_image_size(root))


def _remote(url: str, image_size: int | None) -> StreamedData:
    """A packed dataset in object storage (:mod:`simclr.data.object_storage`), streamed by litdata."""
    train = require_remote_split(url)
    test = find_remote_split(url, "test")
    split = PackedSplit(train)
    log.info(describe_chunk_cache())
    if image_size is None:
        image_size = default_image_size([split.info.median_shorter_side])
    return StreamedData(split, PackedSplit(test) if test else None, image_size)
