"""One evaluation of one run: its frozen backbone on a device, its dataset's labelled splits, their features.

Everything loads on first use: the backbone (:mod:`simclr.evaluation.loading`), the splits
(:class:`~simclr.evaluation.splits.EvalSplits`), and the features of each split, computed once per (weights,
dataset, split, subset, augmentation) and kept in the evaluation folder
(:class:`~simclr.evaluation.feature_cache.FeatureCache`) so that linear-eval, kNN, the plots and the report reuse
them. What a result records about the session is in :mod:`simclr.evaluation.recording`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from functools import cached_property
from typing import Any

import torch
from torch import Tensor

from simclr.data.catalog import DatasetInfo, dataset_info
from simclr.data.streaming import SplitImages
from simclr.evaluation.feature_cache import FeatureCache, SplitFeatures
from simclr.evaluation.features import extract_features
from simclr.evaluation.loading import LoadedBackbone, RunRef, load_backbone
from simclr.evaluation.options import EvalSessionOptions
from simclr.evaluation.splits import SPLITS, EvalSplits
from simclr.evaluation.view_features import ViewEncoder
from simclr.hardware import autocast_dtype_for, pick_device
from simclr.progress import Progress, batch_counter, stage
from simclr.resolve import normalized_info
from simclr.resolve import view_config as resolve_view_config
from simclr.runs import open_run
from simclr.views.config import ViewConfig


class EvalSession:
    """The run (``ref``), the evaluation's settings (``options``), the device, and what loads from them.

    ``progress``, when given, is told how far feature extraction and each stage (:meth:`stage`) are; without
    it (the default for library callers) stages are logged as they start and nothing else is reported.

    Used as a context manager (as every command uses it), the session holds its evaluation folder while it
    runs (:func:`simclr.runs.open_run`): a second evaluation writing the same folder stops with a one-line
    error instead of interleaving its results, and the temporaries of a killed evaluation are removed.
    """

    def __init__(
        self, ref: RunRef, options: EvalSessionOptions | None = None, progress: Progress | None = None
    ) -> None:
        self.ref = ref
        self.options = options or EvalSessionOptions()
        self.progress = progress
        self.config = ref.config
        self.device = pick_device(self.options.accelerator)
        self.autocast_dtype = autocast_dtype_for(self.device)
        self.cache = FeatureCache(ref.eval.features, enabled=self.options.use_cache)
        self._held = ExitStack()

    def __enter__(self) -> EvalSession:
        self._held.enter_context(open_run(self.ref.eval.path, flag="--eval-dir"))
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._held.close()

    @cached_property
    def backbone(self) -> LoadedBackbone:
        """The run's backbone (or its random-weights twin), frozen, on the session's device."""
        loaded = load_backbone(self.ref, random_weights=self.options.random_weights, seed=self.options.seed)
        loaded.module.to(self.device)
        if self.device.type == "cpu" or self.config.channels_last:
            loaded.module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        return loaded

    @property
    def image_size(self) -> int:
        return self.backbone.image_size(self.config)

    @cached_property
    def splits(self) -> EvalSplits:
        """The labelled ``train`` and ``test`` splits, decoded at the backbone's image size."""
        return EvalSplits(self.config, self.options, self.image_size)

    @property
    def info(self) -> DatasetInfo:
        store = self.splits["train"] if self.config.dataset in ("imagefolder", "packed") else None
        return normalized_info(self.config, dataset_info(self.config.dataset, self.image_size, store=store))

    def features(self, split: str, tta: int = 0, fresh_nuisance: bool = False) -> SplitFeatures:
        """Frozen features of ``split`` (``train`` or ``test``), from the cache when it has them.

        ``tta`` > 1 averages the features of that many augmented views per image (Foster et al. 2020's
        feature averaging); ``fresh_nuisance`` renders Spirograph images with newly drawn nuisance parameters
        (Foster et al. 2020's regression protocol) instead of using the stored pictures.
        """
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}")
        store = self.splits[split]

        def compute() -> SplitFeatures:
            factors = store.factors.clone() if store.factors is not None else None
            return SplitFeatures(self._encode(store, split, tta, fresh_nuisance), store.labels.clone(), factors)

        return self.cache.get(split, self._cache_key(split, tta, fresh_nuisance), compute)

    def _cache_key(self, split: str, tta: int, fresh_nuisance: bool) -> dict[str, Any]:
        """Everything the features of ``split`` depend on."""
        options = self.options
        return {
            "backbone": self.backbone.sha256,
            "dataset": self.config.dataset,
            "split": split,
            "n": len(self.splits[split]),
            "size": self.image_size,
            "held_out": self.splits.test_is_held_out,
            "limits": [options.limit_train_images, options.limit_test_images],
            "seed": options.seed,
            "data_dir": str(options.data_dir) if options.data_dir is not None else None,
            "train_split": options.train_split,
            "tta": tta,
            "fresh_nuisance": fresh_nuisance,
        }

    def _encode(self, store: SplitImages, split: str, tta: int, fresh_nuisance: bool) -> Tensor:
        """The features of every image of ``store``: of the stored images, or averaged over fresh views."""
        if tta > 1 or (store.factors is not None and fresh_nuisance):
            generator = torch.Generator().manual_seed(self.options.seed * 1000 + SPLITS.index(split) + 1)
            held = self.splits.rows_in_memory(split, torch.arange(len(store)), "test-time augmentation")
            passes = max(1, tta)
            task = f"{split} ({'re-rendered' if store.factors is not None else 'augmented'}, {passes} per image)"
            on_batch = self.counter(task, passes * len(store))
            return self.view_encoder().averaged(held, generator, passes, on_batch)
        info = self.info
        return extract_features(
            self.backbone.module,
            store.batches(self.options.batch_size),
            info.mean,
            info.std,
            batch_size=self.options.batch_size,
            device=self.device,
            autocast_dtype=self.autocast_dtype,
            on_batch=self.counter(split, len(store)),
        )

    def view_encoder(self, view_config: ViewConfig | None = None) -> ViewEncoder:
        """Fresh views of this run's data: re-renders for Spirograph, else ``view_config`` (default: the
        run's own augmentation)."""
        if self.splits["train"].factors is not None:
            config = None
        else:
            config = view_config or resolve_view_config(self.config, self.info, self.image_size)
        return ViewEncoder(
            self.backbone.module,
            image_size=self.image_size,
            device=self.device,
            autocast_dtype=self.autocast_dtype,
            batch_size=self.options.batch_size,
            view_config=config,
        )

    def counter(self, task: str, total: int) -> Callable[[int], None] | None:
        """An ``on_batch(rows)`` for :func:`~simclr.evaluation.features.extract_features` that reports
        ``task: done/total`` to :attr:`progress`; None when nobody asked for progress."""
        return batch_counter(self.progress, task, total)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """One stage of an evaluation (a probe, a study, the plots), reported to :attr:`progress` (or logged)."""
        with stage(self.progress, name, owner=self.ref.run.name):
            yield
