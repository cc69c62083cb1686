"""The labelled train and test splits an evaluation reads, each held in memory or streamed within a memory budget.

Small data is decoded into memory; packed data, or an image folder whose decoded images exceed the memory budget
(packed once, as pretraining packs it), is streamed from shards, and a streamed split that fits the budget after
all is decoded into memory once (faster to read again). Unlabelled images are left out, the image limits keep a
stratified subset, and a dataset without a test split holds out a stratified part of train as its test split.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor

from simclr.config import PretrainConfig
from simclr.data.memory_budget import decide_memory, default_memory_budget
from simclr.data.object_storage import is_url
from simclr.data.sampling import split_train_val, stratified_subset
from simclr.data.store import ImageStore, report_skipped
from simclr.data.streaming import SplitImages
from simclr.errors import UserError
from simclr.evaluation.options import EvalSessionOptions
from simclr.resolve import data_source
from simclr.settings import format_size

log = logging.getLogger("simclr")

HELD_OUT_TEST_FRACTION = 0.2
SPLITS = ("train", "test")


class _Loaded(NamedTuple):
    stores: dict[str, SplitImages]
    test_is_held_out: bool


class EvalSplits(Mapping[str, SplitImages]):
    """``splits["train"]`` and ``splits["test"]`` of one run's dataset, read on first use.

    ``image_size`` is the side images are decoded to (the backbone's); ``options`` say where the data is, how
    much of it to use and the memory budget."""

    def __init__(self, config: PretrainConfig, options: EvalSessionOptions, image_size: int) -> None:
        self.config = config
        self.options = options
        self.image_size = image_size

    def __getitem__(self, split: str) -> SplitImages:
        return self._loaded.stores[split]

    def __iter__(self) -> Iterator[str]:
        return iter(SPLITS)

    def __len__(self) -> int:
        return len(SPLITS)

    @property
    def test_is_held_out(self) -> bool:
        """True when the dataset has no test split and a part of train stands in for it."""
        return self._loaded.test_is_held_out

    @cached_property
    def memory_budget(self) -> int:
        """Bytes of decoded images (or of a linear probe's features) evaluation may hold in memory."""
        budget = self.options.memory_budget_bytes()
        return budget if budget is not None else default_memory_budget()

    def rows_in_memory(self, split: str, rows: Tensor, purpose: str) -> ImageStore:
        """The images ``rows`` of ``split`` decoded in memory, for methods that read them many times
        (fine-tuning, augmented views); a one-line error when they exceed the memory budget."""
        store = self[split].subset(rows)
        if store.decoded_bytes > self.memory_budget:
            raise UserError(
                f"{purpose} needs its {len(store)} {split} images at {store.image_size} px in memory "
                f"({format_size(store.decoded_bytes)} decoded, read many times), over the memory budget of "
                f"{format_size(self.memory_budget)}; use fewer images (--limit-{split}-images N, a smaller label "
                "fraction) or raise --memory-budget"
            )
        return store.load()

    def require_classes(self, method: str) -> None:
        """Classification methods need class labels; Spirograph has regression targets instead."""
        train = self["train"]
        if train.factors is not None or train.num_classes < 2:
            raise UserError(
                f"{method} needs class labels and {self.config.dataset} has none; "
                + (
                    "use 'simclr regress' for spirograph"
                    if train.factors is not None
                    else "use a labelled dataset with at least 2 classes"
                )
            )

    @cached_property
    def _loaded(self) -> _Loaded:
        train, test = self._read()
        report_skipped(train.skipped, "train")
        if test is not None:
            report_skipped(test.skipped, "test")
        if train.factors is None:
            train = self._labelled(train, "train")
            if test is not None:
                test = self._labelled(test, "test")
        held_out = test is None or len(test) == 0
        if held_out:
            keep, part = split_train_val(train.labels, HELD_OUT_TEST_FRACTION, self.options.seed + 1)
            train, test = train.subset(keep), train.subset(part)
            log.info(
                "no test split: holding out %d%% of train (%d images) as the test split",
                round(100 * HELD_OUT_TEST_FRACTION),
                len(test),
            )
        assert test is not None
        train = self._limit(train, self.options.limit_train_images)
        test = self._limit(test, self.options.limit_test_images)
        stores = {"train": self._held_or_streamed(train, "train"), "test": self._held_or_streamed(test, "test")}
        return _Loaded(stores, held_out)

    def _read(self) -> tuple[SplitImages, SplitImages | None]:
        """The train and test splits: packed data (or an image folder over the memory budget, packed once as
        pretraining packs it) as streamed stores, anything else decoded in memory."""
        config, opts, size = self.config, self.options, self.image_size
        source = replace(data_source(config), workers=opts.workers)
        if opts.data_dir is not None:  # --data-dir of the evaluation replaces the run's, local or remote
            url = opts.data_dir if is_url(opts.data_dir) else None
            source = replace(source, data_dir=None if url else Path(opts.data_dir), data_url=url)
        streamed = source.streamed(size, opts.memory_budget_bytes(), Path(config.pack_dir) if config.pack_dir else None)
        if streamed is not None:
            if opts.train_split == "valid":
                raise UserError("--train-split valid reads an image folder's valid/ in memory; this data is streamed")
            test = streamed.test.images_at(size, opts.workers) if streamed.test is not None else None
            return streamed.train.images_at(size, opts.workers), test
        if opts.train_split == "valid":
            train = source.load_valid(image_size=size, seed=opts.seed)
        else:
            train = source.load_train(labelled_only=True, image_size=size, seed=opts.seed)
        return train, source.load_test(image_size=size, seed=opts.seed)

    def _held_or_streamed(self, store: SplitImages, split: str) -> SplitImages:
        """A streamed split that fits the memory budget is decoded into memory once (faster to read again)."""
        if isinstance(store, ImageStore):
            return store
        decision = decide_memory(store.decoded_bytes, self.options.memory_budget_bytes())  # one process
        log.info(
            "%s split: %d images at %d px %s: %s",
            split,
            len(store),
            store.size,
            decision.summary(),
            "held in memory" if decision.fits else "streamed from the packed shards",
        )
        return store.load() if decision.fits else store

    def _labelled(self, store: SplitImages, split: str) -> SplitImages:
        keep = torch.nonzero(store.labels >= 0).flatten()
        if keep.numel() == 0:
            raise UserError(
                f"the {split} split of {self.config.dataset} has no labels, so it cannot be classified; "
                "use class sub-folders (DIR/<class>/*.jpg) or 'simclr embed' for unlabelled images"
            )
        return store.subset(keep) if keep.numel() < len(store) else store

    def _limit(self, store: SplitImages, limit: int | None) -> SplitImages:
        if limit is None or limit >= len(store):
            return store
        if limit <= 0:
            raise UserError(f"image limits must be positive, got {limit}")
        return store.subset(stratified_subset(store.labels, limit, self.options.seed))
