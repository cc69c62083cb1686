"""The data a pretraining run trains on: the training split (in memory or streamed), the test split the kNN
monitor scores, the images held out for validation, and what is measured on them once (the ``--standardize``
statistics, the subset file's hash).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from simclr.config import PretrainConfig
from simclr.data.catalog import DatasetInfo, dataset_info
from simclr.data.memory_budget import local_processes
from simclr.data.python_stream import PythonStream, stream_python_dataset
from simclr.data.sampling import split_train_val, stratified_subset
from simclr.data.source import DataSource
from simclr.data.statistics import STANDARDIZE_SAMPLE, channel_statistics
from simclr.data.store import ImageStore
from simclr.data.streaming import PackedImages, PackedSplit
from simclr.data.subset_file import parse_subset_choice
from simclr.errors import UserError
from simclr.resolve import data_source

log = logging.getLogger("simclr")

STREAMED_SAMPLE_BYTES = 512 * 2**20  # what --standardize holds of a streamed Python Dataset


@dataclass(frozen=True)
class TrainingData:
    """The training split (in memory, or packed shards streamed from disk), the labelled test split the
    kNN monitor uses, the dataset's constants at the size the views are made at, and the images held out
    of training for validation (``--val-fraction``)."""

    train: ImageStore | PackedSplit | PythonStream
    test: ImageStore | PackedSplit | None
    info: DatasetInfo
    image_size: int
    val: ImageStore | None = None

    @property
    def streamed(self) -> bool:
        """Whether the views' crops are cut per image in the loader workers (packed shards); a streamed Python
        Dataset comes as batches of squares, cropped on the device as data held in memory is."""
        return isinstance(self.train, PackedSplit)

    @property
    def train_images(self) -> int | None:
        """The training images of an epoch; None for an IterableDataset without ``len()``."""
        return self.train.length if isinstance(self.train, PythonStream) else len(self.train)


def load_training_data(
    config: PretrainConfig, dataset: Dataset[Any] | None = None, processes_per_machine: int = 1
) -> TrainingData:
    """The training split, and the labelled test split when the kNN monitor will use it: streamed when the
    data is packed or an image folder exceeds the memory budget (:meth:`DataSource.streamed`), else in memory.
    ``dataset``, a Python Dataset, is read into memory whole, unless it is an IterableDataset or exceeds the
    memory budget: then it streams (:func:`~simclr.data.python_stream.stream_python_dataset`).
    ``processes_per_machine``: the run's processes on each machine (its ``--devices``), which each hold their
    own copy of data held in memory: the memory decision counts them all (``LOCAL_WORLD_SIZE`` where torchrun
    set it)."""
    source = data_source(config, dataset)
    budget = config.memory_budget_bytes()
    if dataset is not None:
        stream = stream_python_dataset(
            dataset, config.image_size, config.resize, budget, local_processes(processes_per_machine)
        )
        if stream is not None:
            return _python_stream_data(config, stream)
    pack_dir = Path(config.pack_dir) if config.pack_dir else None
    streamed = source.streamed(config.image_size, budget, pack_dir, local_processes(processes_per_machine))
    if streamed is not None:
        if config.subset is not None or config.resize != "crop":
            raise UserError(
                "--subset and --resize squash apply to data held in memory; this dataset is streamed from packed "
                "shards (views are cut from the packed images)"
            )
        if config.val_fraction > 0:
            raise UserError(
                "--val-fraction needs the training images in memory; this run streams them, so drop --val-fraction"
            )
        packed_test = streamed.test if streamed.train.has_labels and config.knn_every_epochs > 0 else None
        info = dataset_info(config.dataset, streamed.image_size)
        return TrainingData(streamed.train, packed_test, info, streamed.image_size)
    if config.subset is not None:
        train = load_subset_part(source, config)
    else:
        train = source.load_train(image_size=config.image_size, limit=config.limit_train_images, seed=config.seed)
    size = int(train.images.shape[-1])
    test = None
    if train.has_labels and config.knn_every_epochs > 0:
        test = source.load_test(image_size=size, seed=config.seed)
    info = dataset_info(config.dataset, size, store=train)
    val = None
    if config.val_fraction > 0:  # stratified by label (unlabelled images count as one class), seeded
        train_idx, val_idx = split_train_val(train.labels, config.val_fraction, config.seed)
        train, val = train.subset(train_idx), train.subset(val_idx)
    return TrainingData(train, test, info, size, val)


def _python_stream_data(config: PretrainConfig, stream: PythonStream) -> TrainingData:
    """The training data of a streamed Python Dataset, with what it cannot do refused in one line."""
    if config.limit_train_images is not None or config.val_fraction > 0:
        raise UserError(
            f"{stream.name} is streamed, so limit_train_images and val_fraction do not apply (they need the images "
            "in memory); pass a torch.utils.data.Subset of it instead"
        )
    if stream.length is None:
        if config.max_steps is None:
            raise UserError(
                f"{stream.name} is an IterableDataset without len(), so the run cannot plan its epochs; set "
                "max_steps in the config, or give the Dataset a __len__"
            )
        log.info(
            "the schedule spans max_steps %d steps, as %d epoch(s) of %d steps (the Dataset has no len())",
            config.max_steps,
            config.epochs,
            _lengthless_epoch_steps(config),
        )
    info = dataset_info(config.dataset, stream.image_size)
    return TrainingData(stream, None, info, stream.image_size)


def planned_train_images(config: PretrainConfig, data: TrainingData, processes: int) -> int:
    """The images of an epoch the schedule is planned with: the training split's, or, for an IterableDataset
    without ``len()``, epochs of ``max_steps / epochs`` steps, so that the schedule spans ``max_steps``."""
    if data.train_images is not None:
        return data.train_images
    return _lengthless_epoch_steps(config) * config.batch_size * processes


def _lengthless_epoch_steps(config: PretrainConfig) -> int:
    """The steps of one epoch of an IterableDataset without ``len()``: ``max_steps / epochs``, rounded up."""
    assert config.max_steps is not None  # _python_stream_data refused the run without it
    return -(-config.max_steps // config.epochs)


def load_subset_part(source: DataSource, config: PretrainConfig) -> ImageStore:
    """The part of the labelled training split that ``--subset FILE:PART`` names (then ``--limit-train-images``,
    stratified, within it)."""
    assert config.subset is not None
    choice = parse_subset_choice(config.subset)
    labelled = source.load_train(labelled_only=True, image_size=config.image_size, seed=config.seed)
    train = labelled.subset(choice.load(config.dataset, len(labelled)))
    log.info("training on the %s part of %s: %d of %d images", choice.part, choice.path, len(train), len(labelled))
    if config.limit_train_images is not None and config.limit_train_images < len(train):
        train = train.subset(stratified_subset(train.labels, config.limit_train_images, config.seed))
    return train


def pin_subset_file(config: PretrainConfig) -> PretrainConfig:
    """The config with its subset file's SHA-256 (saved in the run); a resumed run whose file has changed
    since it started is refused, since its images would no longer be the ones it trained on."""
    if config.subset is None:
        return config
    choice = parse_subset_choice(config.subset)
    if not choice.path.expanduser().is_file():
        raise UserError(f"subset file {choice.path} does not exist; write one with 'simclr data split'")
    sha = choice.sha256()
    if config.subset_sha256 is not None and config.subset_sha256 != sha:
        raise UserError(
            f"subset file {choice.path} changed since this run started (SHA-256 {config.subset_sha256[:12]}... "
            f"then, {sha[:12]}... now); restore it or start a new run"
        )
    return replace(config, subset_sha256=sha)


def with_measured_normalization(config: PretrainConfig, data: TrainingData) -> PretrainConfig:
    """``--standardize``: the config with the training split's per-channel statistics, measured once per run (a
    resumed run keeps what its config.yaml holds), on at most :data:`STANDARDIZE_SAMPLE` evenly spaced images."""
    if not config.standardize or config.normalization_mean is not None:
        return config
    if isinstance(data.train, ImageStore):
        train: ImageStore | PackedImages = data.train
    elif isinstance(data.train, PythonStream):
        # the first images (an IterableDataset is read in order), held at once: at most STREAMED_SAMPLE_BYTES
        count = min(STANDARDIZE_SAMPLE, STREAMED_SAMPLE_BYTES // (3 * data.image_size**2))
        train = data.train.load_first(count, data.image_size)
    else:
        train = data.train.images_at(data.image_size, config.workers)
    if len(train) > STANDARDIZE_SAMPLE:
        train = train.subset(torch.linspace(0, len(train) - 1, STANDARDIZE_SAMPLE).round().long())
    mean, std = channel_statistics(train.batches(1024))
    log.info("--standardize: mean %s, std %s over %d training images (kept in the run's config)", mean, std, len(train))
    return replace(config, normalization_mean=mean, normalization_std=std)


def check_labels_present(config: PretrainConfig, data: TrainingData) -> None:
    """Before the run directory exists: ``--online-probe`` and ``--loss supcon`` learn from the labels, so they
    need them."""
    if config.loss == "supcon" and not data.train.has_labels:
        raise UserError(
            f"--loss supcon pairs images of the same class; this {config.dataset} data has no labels: use a folder "
            "with class sub-folders, or --loss ntxent"
        )
    if config.online_probe and not data.train.has_labels:
        raise UserError(f"--online-probe needs labelled data; this {config.dataset} data has no labels, drop the flag")
    if config.online_probe and isinstance(data.train, PythonStream) and not data.train.class_names:
        raise UserError(
            f"online_probe on a streamed {data.train.name} needs its classes counted before training: give it a "
            "classes attribute (a list of class names, as torchvision's datasets have)"
        )
