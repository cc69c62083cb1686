"""The callbacks of a pretraining run, in the order Lightning calls them: progress, metrics, the kNN monitor,
validation, the online probe, kept backbones, the checkpoint, the backbone export, the penalty's report and
the clean stop on a signal.
"""

from __future__ import annotations

import logging
import sys

import lightning as L
import torch

from simclr.config import PretrainConfig
from simclr.data.sampling import split_train_val, stratified_subset
from simclr.data.store import ImageStore
from simclr.data.streaming import PackedSplit
from simclr.models.backbone_file import BackboneMetadata
from simclr.models.simclr_model import SimCLRModel
from simclr.resolve import backbone_stem
from simclr.rundir import RunDir
from simclr.training.callbacks import (
    BackboneExport,
    GradientPenaltyReport,
    IntervalProgressBar,
    KNNMonitor,
    LastCheckpoint,
    MetricsCSV,
    ProgressLog,
    StopOnSignal,
)
from simclr.training.kept_backbones import KeptBackbones
from simclr.training.online_probe import OnlineLinearProbe
from simclr.training.plan import OptimSettings, lead_in_epochs
from simclr.training.run_record import describe_gradient_penalty
from simclr.training.time_budget import TrainingTime
from simclr.training.training_data import TrainingData
from simclr.training.validation import EarlyStopOnValidation, ValidationMonitor

log = logging.getLogger("simclr")

KNN_STREAMED_BYTES = 512 * 2**20  # per split: the kNN monitor of a streamed run holds this much decoded


def build_callbacks(
    config: PretrainConfig,
    run: RunDir,
    data: TrainingData,
    model: SimCLRModel,
    optim: OptimSettings,
    quiet: bool,
    event: str | None = None,
) -> list[L.Callback]:
    """Progress, metrics, the training time (and its budget), the kNN monitor, checkpoints, the backbone export,
    the penalty's report and the clean stop on a signal; the order is the order Lightning calls them in."""
    # the step's values are read from the device only every log_every_steps steps (no per-step synchronisation)
    metrics = MetricsCSV(run.metrics, event_at_start=event, every_steps=config.log_every_steps)
    callbacks: list[L.Callback] = [IntervalProgressBar(metrics)] if _show_progress_bar(quiet) else []
    # before the monitors (whose epoch-end time is not training) and the checkpoint (which saves its count)
    training_time = TrainingTime(
        run,
        config.time_budget_seconds(),
        optim.total_steps,
        config.max_steps,
        lead_in_epochs(config),
        optim.steps_per_epoch,
    )
    callbacks += [metrics, training_time]
    knn_sets = _knn_sets(config, *_knn_stores(config, data))
    if knn_sets is not None:
        bank, queries = knn_sets
        callbacks.append(
            KNNMonitor(
                bank,
                queries,
                bank.num_classes,
                data.info.mean,
                data.info.std,
                metrics,
                every_epochs=config.knn_every_epochs,
                k=config.knn_k,
                temperature=config.knn_temperature,
            )
        )
    validation = None
    if data.val is not None:
        validation = ValidationMonitor(data.val, config.batch_size, config.temperature, config.seed, metrics)
        callbacks.append(validation)
        if config.patience > 0:  # after the validation it reads
            callbacks.append(EarlyStopOnValidation(validation, config.patience, config.min_delta, run.last_checkpoint))
    metadata = BackboneMetadata(
        backbone=config.backbone,
        stem=backbone_stem(config, data.image_size),
        feature_dim=model.feature_dim,
        dataset=config.dataset,
        image_size=data.image_size,
        mean=data.info.mean,
        std=data.info.std,
    )
    if config.online_probe:
        val = None  # the probe is scored on the labelled validation images
        if data.val is not None and data.val.has_labels:
            val = data.val.subset(torch.nonzero(data.val.labels >= 0).flatten())
        classes = len(data.train.class_names)  # an in-memory store and a packed split both name their classes
        callbacks.append(OnlineLinearProbe(model.feature_dim, classes, metrics, val, data.info.mean, data.info.std))
    callbacks.append(training_time.resume_marker())  # the epoch-end monitors are done: training time counts again
    if config.keep_every_epochs > 0 or config.save_top_k > 0:  # after the validation it ranks by
        callbacks.append(KeptBackbones(run, metadata, config.keep_every_epochs, config.save_top_k, validation))
    callbacks += [
        LastCheckpoint(run.last_checkpoint, config.checkpoint_every_steps),
        BackboneExport(run.backbone, metadata),
        ProgressLog(config.log_every_steps, min(optim.total_steps, config.max_steps or optim.total_steps), metrics),
    ]
    if config.lambda_gp > 0:
        callbacks.append(GradientPenaltyReport(describe_gradient_penalty(config), run.metrics, config.gp_upper_limit))
    callbacks.append(StopOnSignal(run))
    return callbacks


def _show_progress_bar(quiet: bool) -> bool:
    return sys.stderr.isatty() and not quiet


def _knn_stores(config: PretrainConfig, data: TrainingData) -> tuple[ImageStore, ImageStore | None]:
    """The splits the kNN monitor draws from, in memory: a streamed split contributes its first samples
    (a random subset: packs are stored shuffled; a streamed Python Dataset's first items), as many as fit in
    :data:`KNN_STREAMED_BYTES`."""
    if isinstance(data.train, ImageStore):
        assert not isinstance(data.test, PackedSplit)
        return data.train, data.test
    if config.knn_every_epochs <= 0 or not data.train.has_labels:
        return ImageStore(torch.empty(0, 3, 1, 1, dtype=torch.uint8), torch.empty(0), []), None
    count = min(config.knn_max_images, KNN_STREAMED_BYTES // (3 * data.image_size**2))
    bank = data.train.load_first(count, data.image_size, config.workers)
    queries = None
    if isinstance(data.test, PackedSplit):
        queries = data.test.load_first(count, data.image_size, config.workers)
    log.info("kNN monitor: %d bank and %d query images decoded from the streamed splits", len(bank), len(queries or []))
    return bank, queries


def _knn_sets(
    config: PretrainConfig, train: ImageStore, test: ImageStore | None
) -> tuple[ImageStore, ImageStore] | None:
    """Bank and queries of the kNN monitor: the labelled train/test splits, or a held-out part of train."""
    if config.knn_every_epochs <= 0 or not train.has_labels:
        return None
    labelled = train.subset(torch.nonzero(train.labels >= 0).flatten())
    if test is not None and test.has_labels:
        bank, queries = labelled, test.subset(torch.nonzero(test.labels >= 0).flatten())
    else:
        bank_idx, query_idx = split_train_val(labelled.labels, 0.1, config.seed)
        bank, queries = labelled.subset(bank_idx), labelled.subset(query_idx)
    cap = config.knn_max_images
    if len(bank) > cap:
        bank = bank.subset(stratified_subset(bank.labels, cap, config.seed))
    if len(queries) > cap:
        queries = queries.subset(stratified_subset(queries.labels, cap, config.seed))
    return bank, queries
