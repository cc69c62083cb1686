"""One evaluation of one run: its frozen backbone, its dataset's labelled splits, cached features.

Features are computed once per (weights, dataset, split, subset, augmentation) and cached in the
evaluation folder (:attr:`simclr.rundir.EvalDir.features`) so linear-eval, kNN, the plots and the report
reuse them; the cache key includes the backbone's SHA-256, so retrained weights never reuse stale features.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from simclr.data.catalog import DatasetInfo, dataset_info
from simclr.data.sampling import split_train_val, stratified_subset
from simclr.data.source import default_memory_budget
from simclr.data.store import ImageStore, report_skipped
from simclr.data.streaming import SplitImages
from simclr.errors import UserError
from simclr.evaluation.features import extract_features
from simclr.evaluation.heads import Classifier
from simclr.evaluation.loading import LoadedBackbone, RunRef, load_backbone
from simclr.evaluation.options import EvalOptions
from simclr.evaluation.results import record_result
from simclr.evaluation.saved_classifier import ClassifierMetadata, save_classifier
from simclr.evaluation.view_features import ViewEncoder
from simclr.hardware import autocast_dtype_for, pick_device
from simclr.resolve import backbone_stem, data_source, normalized_info
from simclr.resolve import view_config as resolve_view_config
from simclr.settings import format_size
from simclr.tracking import report_evaluation
from simclr.views.config import ViewConfig
from simclr.views.spirograph import GENERATIVE_NAMES

log = logging.getLogger("simclr")

HELD_OUT_TEST_FRACTION = 0.2
SPLITS = ("train", "test")

Progress = Callable[[str, int, int], None]
"""``progress(task, done, total)``: how far a long part of an evaluation is (``simclr evaluate`` passes the
``advance`` of :func:`simclr.commands.common.progress_bar`)."""


@dataclass
class SplitFeatures:
    """Frozen features of one split with their targets: class labels (``labels``) or, for Spirograph,
    the generative factors (``factors``)."""

    features: Tensor
    labels: Tensor
    factors: Tensor | None


class EvalSession:
    """Loads lazily: the backbone on first use, each split on first use, features from the cache.

    ``progress``, when given, is told how far feature extraction and each stage (:meth:`stage`) are; without
    it (the default for library callers) stages are logged as they start and nothing else is reported.
    """

    def __init__(self, ref: RunRef, options: EvalOptions | None = None, progress: Progress | None = None) -> None:
        self.ref = ref
        self.options = options or EvalOptions()
        self.progress = progress
        self.config = ref.config
        self.device = pick_device(self.options.accelerator)
        self.autocast_dtype = autocast_dtype_for(self.device)
        self._backbone: LoadedBackbone | None = None
        self._stores: dict[str, SplitImages] | None = None
        self.test_is_held_out = False

    # -- the model --------------------------------------------------------------------------------
    @property
    def backbone(self) -> LoadedBackbone:
        if self._backbone is None:
            self._backbone = load_backbone(self.ref, random_weights=self.options.random_weights, seed=self.options.seed)
            self._backbone.module.to(self.device)
            if self.device.type == "cpu" or self.config.channels_last:
                self._backbone.module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        return self._backbone

    @property
    def image_size(self) -> int:
        return self.backbone.image_size(self.config)

    @property
    def info(self) -> DatasetInfo:
        store = self.stores["train"] if self.config.dataset in ("imagefolder", "packed") else None
        return normalized_info(self.config, dataset_info(self.config.dataset, self.image_size, store=store))

    # -- the data ---------------------------------------------------------------------------------
    @property
    def stores(self) -> dict[str, SplitImages]:
        if self._stores is None:
            self._stores = self._load_stores()
        return self._stores

    @cached_property
    def memory_budget(self) -> int:
        """Bytes of decoded images (or of a linear probe's features) evaluation may hold in memory."""
        budget = self.options.memory_budget
        return budget if budget is not None else default_memory_budget()

    def _load_stores(self) -> dict[str, SplitImages]:
        train, test = self._load_splits()
        report_skipped(train.skipped, "train")
        if test is not None:
            report_skipped(test.skipped, "test")
        if train.factors is None:
            train = self._labelled(train, "train")
            if test is not None:
                test = self._labelled(test, "test")
        if test is None or len(test) == 0:
            keep, held_out = split_train_val(train.labels, HELD_OUT_TEST_FRACTION, self.options.seed + 1)
            train, test = train.subset(keep), train.subset(held_out)
            self.test_is_held_out = True
            log.info(
                "no test split: holding out %d%% of train (%d images) as the test split",
                round(100 * HELD_OUT_TEST_FRACTION),
                len(test),
            )
        train = self._limit(train, self.options.limit_train_images)
        test = self._limit(test, self.options.limit_test_images)
        return {"train": self._held_or_streamed(train, "train"), "test": self._held_or_streamed(test, "test")}

    def _load_splits(self) -> tuple[SplitImages, SplitImages | None]:
        """The train and test splits: packed data (or an image folder over the memory budget, packed once as
        pretraining packs it) as streamed stores, anything else decoded in memory."""
        config, opts = self.config, self.options
        source = replace(data_source(config), workers=opts.workers)
        if opts.data_dir is not None:  # --data-dir of the evaluation replaces the run's, local or remote
            source = replace(source, data_dir=opts.data_dir, data_url=None)
        streamed = source.streamed(
            self.image_size,
            opts.memory_budget,
            Path(config.pack_dir) if config.pack_dir else None,
        )
        if streamed is not None:
            if opts.train_split == "valid":
                raise UserError("--train-split valid reads an image folder's valid/ in memory; this data is streamed")
            test = streamed.test.images_at(self.image_size, opts.workers) if streamed.test is not None else None
            return streamed.train.images_at(self.image_size, opts.workers), test
        if opts.train_split == "valid":
            train = source.load_valid(image_size=self.image_size, seed=opts.seed)
        else:
            train = source.load_train(labelled_only=True, image_size=self.image_size, seed=opts.seed)
        return train, source.load_test(image_size=self.image_size, seed=opts.seed)

    def _held_or_streamed(self, store: SplitImages, split: str) -> SplitImages:
        """A streamed split that fits the memory budget is decoded into memory once (faster to read again)."""
        if isinstance(store, ImageStore):
            return store
        fits = store.decoded_bytes <= self.memory_budget
        log.info(
            "%s split: %d images at %d px take %s decoded; memory budget %s: %s",
            split,
            len(store),
            store.size,
            format_size(store.decoded_bytes),
            format_size(self.memory_budget),
            "held in memory" if fits else "streamed from the packed shards",
        )
        return store.load() if fits else store

    def rows_in_memory(self, split: str, rows: Tensor, purpose: str) -> ImageStore:
        """The images ``rows`` of ``split`` decoded in memory, for methods that read them many times
        (fine-tuning, augmented views); a one-line error when they exceed the memory budget."""
        store = self.stores[split].subset(rows)
        if store.decoded_bytes > self.memory_budget:
            raise UserError(
                f"{purpose} needs its {len(store)} {split} images at {store.image_size} px in memory "
                f"({format_size(store.decoded_bytes)} decoded, read many times), over the memory budget of "
                f"{format_size(self.memory_budget)}; use fewer images (--limit-{split}-images N, a smaller label "
                "fraction) or raise --memory-budget"
            )
        return store.load()

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

    def require_classes(self, method: str) -> None:
        """Classification methods need class labels; Spirograph has regression targets instead."""
        if self.stores["train"].factors is not None or self.stores["train"].num_classes < 2:
            raise UserError(
                f"{method} needs class labels and {self.config.dataset} has none; "
                + (
                    "use 'simclr regress' for spirograph"
                    if self.stores["train"].factors is not None
                    else "use a labelled dataset with at least 2 classes"
                )
            )

    # -- features ---------------------------------------------------------------------------------
    def _cache_file(self, split: str, variant: dict[str, Any]) -> Path:
        store = self.stores[split]
        key = {
            "backbone": self.backbone.sha256,
            "dataset": self.config.dataset,
            "split": split,
            "n": len(store),
            "size": self.image_size,
            "held_out": self.test_is_held_out,
            "limits": [self.options.limit_train_images, self.options.limit_test_images],
            "seed": self.options.seed,
            "data_dir": str(self.options.data_dir) if self.options.data_dir is not None else None,
            "train_split": self.options.train_split,
            **variant,
        }
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        return self.ref.eval.features / f"{split}-{digest}.pt"

    def features(self, split: str, tta: int = 0, fresh_nuisance: bool = False) -> SplitFeatures:
        """Frozen features of ``split`` (``train`` or ``test``).

        ``tta`` > 1 averages the features of that many augmented views per image (Foster et al. 2020's
        feature averaging); ``fresh_nuisance`` renders Spirograph images with newly drawn nuisance parameters
        (Foster et al. 2020's regression protocol) instead of using the stored pictures.
        """
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}")
        store = self.stores[split]
        variant = {"tta": tta, "fresh_nuisance": fresh_nuisance}
        path = self._cache_file(split, variant)
        if self.options.use_cache and path.is_file():
            # memory-mapped: the features of a big split are paged in as a fit reads them
            cached = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            return SplitFeatures(cached["features"], cached["labels"], cached.get("factors"))
        feats = self._compute(store, split, tta, fresh_nuisance)
        result = SplitFeatures(
            feats, store.labels.clone(), store.factors.clone() if store.factors is not None else None
        )
        if self.options.use_cache:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            torch.save({"features": result.features, "labels": result.labels, "factors": result.factors}, tmp)
            os.replace(tmp, path)
        return result

    def _compute(self, store: SplitImages, split: str, tta: int, fresh_nuisance: bool) -> Tensor:
        if tta > 1 or (store.factors is not None and fresh_nuisance):
            generator = torch.Generator().manual_seed(self.options.seed * 1000 + SPLITS.index(split) + 1)
            held = self.rows_in_memory(split, torch.arange(len(store)), "test-time augmentation")
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
        if self.stores["train"].factors is not None:
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

    # -- progress -------------------------------------------------------------------------------------
    def counter(self, task: str, total: int) -> Callable[[int], None] | None:
        """An ``on_batch(rows)`` for :func:`~simclr.evaluation.features.extract_features` that reports
        ``task: done/total`` to :attr:`progress`; None when nobody asked for progress."""
        progress = self.progress
        if progress is None:
            return None
        done = 0

        def on_batch(rows: int) -> None:
            nonlocal done
            done += rows
            progress(task, done, total)

        return on_batch

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """One stage of an evaluation (a probe, a study, the plots): ``name: 0/1`` as it starts and ``1/1`` when
        it is done, or a log line as it starts when there is no :attr:`progress` to tell."""
        if self.progress is None:
            log.info("%s: %s ...", self.ref.run.name, name)
            yield
            return
        self.progress(name, 0, 1)
        yield
        self.progress(name, 1, 1)

    # -- descriptions and results -------------------------------------------------------------------
    def dataset_block(self) -> dict[str, Any]:
        info = self.info
        train = self.stores["train"]
        block: dict[str, Any] = {"name": info.name, "image_size": info.image_size, "num_classes": info.num_classes}
        if train.factors is not None:
            block["targets"] = list(GENERATIVE_NAMES)
        else:
            block["class_names"] = list(train.class_names)
        if self.options.train_split == "valid":
            block["train_split"] = "the folder's valid/ (classifiers fitted there, as seed 001's probe)"
        if self.test_is_held_out:
            block["test_split"] = (
                f"held out: {round(100 * HELD_OUT_TEST_FRACTION)}% of train (seed {self.options.seed + 1})"
            )
        return block

    def base_protocol(self) -> dict[str, Any]:
        """Protocol fields every result carries."""
        backbone = self.backbone.describe()
        return {
            "backbone_sha256": backbone["sha256"],
            "weights": backbone["weights"],
            "backbone_epoch": backbone["epoch"],
            "backbone_step": backbone["global_step"],
            "seed": self.options.seed,
            "n_train": len(self.stores["train"]),
            "n_test": len(self.stores["test"]),
            "test_split": "held-out part of train" if self.test_is_held_out else "official test split",
            "limit_train_images": self.options.limit_train_images,
            "limit_test_images": self.options.limit_test_images,
        }

    def architecture(self) -> tuple[str, str | None]:
        """``(backbone name, stem)`` of the run's backbone (its file's metadata, else the run's config); the stem
        is None for a timm model or a module of one's own."""
        meta = self.backbone.metadata
        return meta.backbone or self.config.backbone, meta.stem or backbone_stem(self.config, self.image_size)

    def save_classifier(
        self,
        protocol: str,
        model: Classifier,
        head: dict[str, Any],
        *,
        image_size: int,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
        feature_dim: int,
        architecture: tuple[str, str | None] | None = None,
    ) -> Path:
        """Keep what ``protocol`` trained as ``EVAL_DIR/<protocol>/classifier...`` for ``simclr predict``.
        ``architecture`` (name, stem) is given for a backbone that is not the run's (the supervised baseline);
        the backbone's weights are then included, as they are for any backbone that trained or was randomly
        initialised. The run's own backbone, frozen, is referenced by path and SHA-256 instead of copied."""
        name, stem = architecture or self.architecture()
        referenced = architecture is None and model.freeze_backbone and not self.options.random_weights
        metadata = ClassifierMetadata(
            protocol=protocol,
            class_names=tuple(self.stores["train"].class_names),
            mean=mean,
            std=std,
            image_size=image_size,
            decode_size=self.image_size,
            backbone=name,
            stem=stem,
            feature_dim=feature_dim,
            head=head,
            backbone_sha256=self.backbone.sha256,
        )
        backbone_path = self.ref.backbone_path if referenced else None
        path = save_classifier(self.ref.eval.classifier(protocol), model, metadata, backbone_path=backbone_path)
        log.info("%s: classifier saved to %s", protocol, path)
        return path

    def record(self, key: str, entry: dict[str, Any]) -> Path:
        """Add a result to the evaluation's metrics.json, and its numbers to the run's tracker (if it has one)."""
        path = record_result(
            self.ref.eval,
            key,
            entry,
            run_dir=self.ref.run.path,
            dataset=self.dataset_block(),
            backbone=self.backbone.describe(),
        )
        if self.ref.writes_to_run:
            report_evaluation(self.ref.run, {key: entry})
        return path
