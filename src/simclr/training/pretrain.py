"""One pretraining run from a validated config, as phases in data-flow order.

:func:`run_pretraining` reads top to bottom: data -> views -> model -> loss and optimiser -> run directory
-> callbacks and loggers -> trainer -> fit. Everything that can fail on the user's input (data, views,
model, schedule) runs before the run directory is created, so a bad run leaves nothing on disk; the
backbone is exported by a callback at every epoch end and when training ends.
"""

from __future__ import annotations

import logging
import sys
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn
from torch.utils.data import Dataset

from simclr.config import PretrainConfig, describe_changes, resume_changes
from simclr.data.catalog import PYTHON_DATASET, DatasetInfo, dataset_info
from simclr.data.pairs import SameClassPartners
from simclr.data.python_dataset import dataset_class_name
from simclr.data.sampling import split_train_val, stratified_subset
from simclr.data.source import DataSource
from simclr.data.statistics import STANDARDIZE_SAMPLE, channel_statistics
from simclr.data.store import ImageStore, report_skipped
from simclr.data.streaming import PackedSplit
from simclr.data.subset_file import parse_subset_choice
from simclr.errors import UserError
from simclr.hardware import pick_device, resolve_precision, use_channels_last
from simclr.losses.ntxent import NTXentLoss
from simclr.models import CUSTOM_PREFIX, SimCLRModel, build_model, custom_backbone_name
from simclr.optim.schedules import scaled_learning_rate, warmup_steps_for
from simclr.resolve import (
    backbone_stem,
    data_source,
    gp_excluded_columns,
    gp_penalised_names,
    normalized_info,
    resolved_lr,
    resolved_weight_decay,
    view_config,
)
from simclr.rundir import BackboneMetadata, RunDir
from simclr.settings import config_to_dict
from simclr.tracking import finish_tracking, lightning_loggers, start_tracking
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
from simclr.training.checkpoint_io import AtomicCheckpointIO, load_checkpoint_safely
from simclr.training.datamodule import InMemoryDataModule, StreamingDataModule
from simclr.training.kept_backbones import KeptBackbones
from simclr.training.module import InvarianceSettings, OptimSettings, SimCLRModule
from simclr.training.online_probe import OnlineLinearProbe
from simclr.training.run_setup import check_writable, held_log_records, is_worker_process, open_run_dir
from simclr.training.validation import ValidationMonitor
from simclr.views.config import ViewConfig
from simclr.views.factory import build_views

log = logging.getLogger("simclr")

KNN_STREAMED_BYTES = 512 * 2**20  # per split: the kNN monitor of a streamed run holds this much decoded


@dataclass
class PretrainResult:
    run_dir: Path
    global_step: int
    final_loss: float | None
    knn_top1: float | None


@dataclass(frozen=True)
class Hardware:
    """Where and how the run computes, resolved once from the config."""

    gpu: bool
    precision: str
    devices: int | list[int] | str  # per machine
    num_nodes: int
    processes: int  # on all machines together: the global batch is batch_size x processes
    channels_last: bool
    sync_batchnorm: bool


@dataclass(frozen=True)
class TrainingData:
    """The training split (in memory, or packed shards streamed from disk), the labelled test split the
    kNN monitor uses, the dataset's constants at the size the views are made at, and the images held out
    of training for validation (``--val-fraction``)."""

    train: ImageStore | PackedSplit
    test: ImageStore | PackedSplit | None
    info: DatasetInfo
    image_size: int
    val: ImageStore | None = None

    @property
    def streamed(self) -> bool:
        return isinstance(self.train, PackedSplit)


def run_pretraining(
    config: PretrainConfig,
    quiet: bool = False,
    extra_callbacks: list[L.Callback] | None = None,
    resumed_changes: dict[str, tuple[Any, Any]] | None = None,
    *,
    dataset: Dataset[Any] | None = None,
    backbone: nn.Module | None = None,
) -> PretrainResult:
    """Train SimCLR as configured and return where the run directory is.

    ``extra_callbacks`` lets benchmarks and tests observe the run without changing it. ``resumed_changes``
    are settings a ``--resume-with-changes`` changed (recorded in the run). ``dataset`` and ``backbone`` are
    what only Python can pass (:func:`pretrain`). A SIGINT or SIGTERM during training saves the checkpoint and
    raises :class:`~simclr.errors.Interrupted`.
    """
    config = with_python_inputs(config, dataset, backbone)
    resume_step = check_run_target(config)
    config = pin_subset_file(config)
    hardware = resolve_hardware(config)
    with held_log_records() as decisions:  # written to the run's log once it exists
        data = load_training_data(config, dataset)
        config = with_measured_normalization(config, data)
        data = replace(data, info=normalized_info(config, data.info))
        views_config = view_config(config, data.info, data.image_size)
        views = build_views(
            data.image_size, views_config, config.n_views, rerender=data.info.regression, streamed=data.streamed
        )
        datamodule = build_datamodule(config, data, views_config)
        check_labels_for_probe(config, data)
    model = build_seeded_model(config, data.image_size, hardware, backbone)
    loss = build_loss(config)
    optim = plan_optimisation(config, len(data.train), hardware.processes)

    with open_run_dir(config, quiet=quiet, held=decisions) as run:
        describe_run(config, run, data, hardware, optim)
        record_environment(config, run, hardware, optim)
        event = record_resumed_changes(run, resume_step, resumed_changes or {})
        callbacks = build_callbacks(config, run, data, model, optim, quiet, event) + list(extra_callbacks or [])
        loggers = lightning_loggers(config.logger, run)
        trainer = build_trainer(config, hardware, optim, callbacks, loggers, run)
        if not is_worker_process():
            start_tracking(loggers, run, config_to_dict(config))
        module = SimCLRModule(
            model,
            views,
            loss,
            optim,
            seed=config.seed,
            channels_last=hardware.channels_last,
            invariance=invariance_settings(config),
        )
        trainer.fit(module, datamodule=datamodule, ckpt_path=run.last_checkpoint if config.resume else None)
        if not is_worker_process():
            finish_tracking(loggers, run)
        return finish(trainer, run)


def with_python_inputs(
    config: PretrainConfig, dataset: Dataset[Any] | None, backbone: nn.Module | None
) -> PretrainConfig:
    """The config that says what came from Python (saved in config.yaml): ``dataset: python`` with the
    Dataset's class, ``backbone: custom:<module.Class>``; validated again when changed. A config that names
    them without the objects (``simclr pretrain --resume`` of such a run) is refused: only Python holds them."""
    changed = config
    resuming = f", with config.resume={config.resume!r}" if config.resume else ""
    if dataset is not None:
        changed = replace(changed, dataset=PYTHON_DATASET, dataset_class=dataset_class_name(dataset))
    elif config.dataset == PYTHON_DATASET:
        what = f"a Python Dataset ({config.dataset_class})" if config.dataset_class else "'python', a Python Dataset"
        raise UserError(
            f"the data is {what}, which only Python can pass: simclr.pretrain(config, dataset=...){resuming} "
            "(docs/API.md)"
        )
    if backbone is not None:
        changed = replace(changed, backbone=custom_backbone_name(backbone))
    elif config.backbone.startswith(CUSTOM_PREFIX):
        raise UserError(
            f"the backbone is a module of your own ({config.backbone[len(CUSTOM_PREFIX) :]}), which only Python "
            f"can pass: simclr.pretrain(config, backbone=module){resuming} (docs/API.md)"
        )
    if changed != config:
        changed.validate()
    return changed


def check_run_target(config: PretrainConfig) -> int | None:
    """Before any work: ``--out`` must be able to become a run directory, and ``--resume`` needs a readable
    checkpoint (read weights-only: it may be anyone's file); returns the step it resumes from."""
    if not config.resume:
        if config.out:
            check_writable(Path(config.out))
        return None
    checkpoint = RunDir(Path(config.resume)).last_checkpoint
    if not checkpoint.is_file():
        raise UserError(
            f"cannot resume: {checkpoint} does not exist; pass the directory of a run that saved a checkpoint"
        )
    return int(load_checkpoint_safely(checkpoint)["global_step"])


def record_resumed_changes(run: RunDir, step: int | None, changes: dict[str, tuple[Any, Any]]) -> str | None:
    """Log settings a resume changed and append them to the run's config history; returns the note that
    marks their first step in the metrics."""
    if not changes or step is None or is_worker_process():
        return None
    note = f"settings changed on resume: {describe_changes(changes)}"
    log.warning("%s (from step %d; recorded in %s)", note, step, run.config_history.name)
    run.record_config_change(step, changes)
    return note


def resolve_hardware(config: PretrainConfig) -> Hardware:
    """Device kind, precision, process count, memory format and BatchNorm synchronisation."""
    gpu = pick_device(config.accelerator).type == "cuda"
    devices = _parse_devices(config.devices)
    if isinstance(devices, list):
        processes = len(devices)
    elif devices == "auto":
        processes = torch.cuda.device_count() if gpu else 1
    else:
        processes = int(devices)
    several = processes * config.num_nodes > 1
    if config.sync_batchnorm and several and not gpu:
        raise UserError(
            "--sync-batchnorm needs GPUs (torch's SyncBatchNorm has no CPU implementation); "
            "drop it to keep per-process BatchNorm statistics on CPUs"
        )
    return Hardware(
        gpu=gpu,
        precision=resolve_precision(config.precision, gpu),
        devices=devices,
        num_nodes=config.num_nodes,
        processes=processes * config.num_nodes,
        channels_last=use_channels_last(config.channels_last, gpu, config.lambda_gp > 0),
        # with synchronised statistics, N processes compute the forward pass of one process on the global
        # batch; torch's SyncBatchNorm runs on GPUs only, so processes on CPUs keep per-process statistics
        sync_batchnorm=config.sync_batchnorm if config.sync_batchnorm is not None else several and gpu,
    )


def _parse_devices(value: str) -> int | list[int] | str:
    text = str(value).strip()
    if text == "auto":
        return "auto"
    if text.isdigit():
        return int(text)
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserError(f"--devices {value!r} is not a count or a list like 0,1") from None


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


def load_training_data(config: PretrainConfig, dataset: Dataset[Any] | None = None) -> TrainingData:
    """The training split, and the labelled test split when the kNN monitor will use it: streamed when the
    data is packed or an image folder exceeds the memory budget (:meth:`DataSource.streamed`), else in memory
    (``dataset``, a Python Dataset, is read into memory whole)."""
    source = data_source(config, dataset)
    budget = config.memory_budget_bytes()
    streamed = source.streamed(config.image_size, budget, Path(config.pack_dir) if config.pack_dir else None)
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


def check_labels_for_probe(config: PretrainConfig, data: TrainingData) -> None:
    """Before the run directory exists: ``--online-probe`` learns from the labels, so it needs them."""
    if config.online_probe and not data.train.has_labels:
        raise UserError(f"--online-probe needs labelled data; this {config.dataset} data has no labels, drop the flag")


def with_measured_normalization(config: PretrainConfig, data: TrainingData) -> PretrainConfig:
    """``--standardize``: the config with the training split's per-channel statistics, measured once per run (a
    resumed run keeps what its config.yaml holds), on at most :data:`STANDARDIZE_SAMPLE` evenly spaced images."""
    if not config.standardize or config.normalization_mean is not None:
        return config
    train = data.train if isinstance(data.train, ImageStore) else data.train.images_at(data.image_size, config.workers)
    if len(train) > STANDARDIZE_SAMPLE:
        train = train.subset(torch.linspace(0, len(train) - 1, STANDARDIZE_SAMPLE).round().long())
    mean, std = channel_statistics(train.batches(1024))
    log.info("--standardize: mean %s, std %s over %d training images (kept in the run's config)", mean, std, len(train))
    return replace(config, normalization_mean=mean, normalization_std=std)


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


def build_datamodule(config: PretrainConfig, data: TrainingData, view_config: ViewConfig) -> L.LightningDataModule:
    """Batches of the training split: drawn by index from memory, or streamed with views cut per image (in
    the loader workers, or on the training device with ``--decode device``)."""
    if isinstance(data.train, PackedSplit):
        if config.positives == "class":
            raise UserError(
                "--positives class needs the training images in memory, and this run streams them; raise "
                "--memory-budget or drop --positives class"
            )
        subsample = min(1.0, config.limit_train_images / len(data.train)) if config.limit_train_images else 1.0
        if config.decode == "device":
            log.info("decoding and cropping the streamed images in batches on the training device (--decode device)")
        return StreamingDataModule(
            data.train,
            config.batch_size,
            config.n_views,
            view_config,
            config.seed,
            config.workers,
            subsample,
            decode_on_device=config.decode == "device",
        )
    if config.decode == "device":
        log.warning(
            "--decode device applies to streamed data; this run holds its images in memory, decoded once, and "
            "crops them on the device already"
        )
    partners = None
    if config.positives == "class":
        partners = SameClassPartners(data.train.labels, data.train.class_names)
        log.info("positives: a view of another image of the same class, drawn every epoch (--positives class)")
    return InMemoryDataModule(data.train, config.batch_size, config.seed, partners)


def build_seeded_model(
    config: PretrainConfig, image_size: int, hardware: Hardware, backbone: nn.Module | None = None
) -> SimCLRModel:
    """The network with its initial weights drawn from ``config.seed`` (a ``backbone`` passed from Python keeps
    its own), in the run's memory format (and compiled when asked)."""
    L.seed_everything(config.seed, workers=False, verbose=False)
    model = build_model(config, image_size, backbone)
    if hardware.channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    if config.compile:
        # in place (nn.Module.compile): the state dict keeps its names, so checkpoints and backbones are the
        # same with and without --compile; dynamic=False as every batch has one shape (drop_last)
        model.compile(dynamic=False, backend=config.compile_backend)
    return model


def build_loss(config: PretrainConfig) -> NTXentLoss:
    """NT-Xent at the run's temperature; with ``--compile`` its loss-and-accuracy call is compiled too (the
    normalisation, the logits and the log-sum-exp fuse into a few kernels)."""
    loss = NTXentLoss(temperature=config.temperature, gather_distributed=config.gather_distributed)
    if config.compile:
        loss.loss_and_accuracy = torch.compile(  # type: ignore[method-assign]
            loss.loss_and_accuracy, dynamic=False, backend=config.compile_backend
        )
    return loss


def plan_optimisation(config: PretrainConfig, train_images: int, processes: int) -> OptimSettings:
    """The optimiser and its warmup + cosine schedule, with the learning rate scaled by the global batch."""
    global_batch = config.batch_size * processes
    steps_per_epoch = train_images // global_batch
    if steps_per_epoch < 1:
        raise UserError(
            f"{train_images} training images are fewer than one batch of {config.batch_size} x {processes} "
            "process(es); lower --batch-size or use more images"
        )
    total_steps = steps_per_epoch * config.epochs
    base_lr, rule = resolved_lr(config)
    return OptimSettings(
        name=config.optimizer,
        peak_lr=scaled_learning_rate(base_lr, global_batch, rule),
        weight_decay=resolved_weight_decay(config),
        momentum=config.momentum,
        nesterov=config.nesterov,
        total_steps=total_steps,
        warmup_steps=warmup_steps_for(config.warmup_epochs, steps_per_epoch, total_steps),
        steps_per_epoch=steps_per_epoch,
        decay=config.schedule,
        final_ratio=config.final_lr_ratio,
    )


def invariance_settings(config: PretrainConfig) -> InvarianceSettings:
    return InvarianceSettings(
        config.lambda_gp,
        config.gp_upper_limit,
        config.gp_draws,
        config.gp_normalization,
        gp_excluded_columns(config),
    )


def describe_run(
    config: PretrainConfig, run: RunDir, data: TrainingData, hardware: Hardware, optim: OptimSettings
) -> None:
    """The decisions of this run, in its log: data, network, schedule, hardware."""
    _quiet_lightning()
    for split, store in (("train", data.train), ("test", data.test)):
        if isinstance(store, ImageStore):
            report_skipped(store, split)
        elif isinstance(store, PackedSplit) and store.info.skipped:
            log.warning("%s: %d file(s) were skipped when packing, listed in %s", split, store.info.skipped, store.path)
    log.info("run directory: %s", run.path)
    if isinstance(data.train, PackedSplit):
        log.info("streaming the training split from %s with %d loader process(es)", data.train.path, config.workers)
    if config.resume:
        log.info("resuming from %s", run.last_checkpoint)
    tests = f", {len(data.test)} test images" if data.test is not None else ""
    tests += f", {len(data.val)} held out for validation" if data.val is not None else ""
    train_images = len(data.train)
    dataset = config.dataset if config.dataset_class is None else f"{config.dataset_class} (a Python Dataset)"
    log.info("dataset %s: %d training images of %dpx%s", dataset, train_images, data.image_size, tests)
    base_lr, rule = resolved_lr(config)
    stem = backbone_stem(config, data.image_size)
    log.info(
        "%s%s, head %s; %s lr %.4g (base %g, %s scaling by the global batch %d = %d per process x %d "
        "process(es) on %d machine(s)), wd %g, warmup %d of %d steps, then %s; precision %s",
        config.backbone,
        f", {stem} stem" if stem else "",
        config.head,
        optim.name,
        optim.peak_lr,
        base_lr,
        rule,
        config.batch_size * hardware.processes,
        config.batch_size,
        hardware.processes,
        hardware.num_nodes,
        optim.weight_decay,
        optim.warmup_steps,
        optim.total_steps,
        "constant" if optim.decay == "constant" else f"cosine to {optim.final_ratio:g} x the peak",
        hardware.precision,
    )
    planned_warmup = round(config.warmup_epochs * optim.steps_per_epoch)
    if optim.warmup_steps != planned_warmup:
        log.info(
            "warmup: %g epochs (%d steps) do not fit in a run of %d steps; warming up for %d steps (10%%) instead",
            config.warmup_epochs,
            planned_warmup,
            optim.total_steps,
            optim.warmup_steps,
        )
    if config.channels_last and not hardware.channels_last:
        log.info("memory format: contiguous, not channels_last (faster for the gradient penalty on the CPU)")
    if hardware.processes > 1:
        log.info("BatchNorm statistics: %s", "synchronised" if hardware.sync_batchnorm else "per process")


def _quiet_lightning() -> None:
    """Lightning's banners (GPU/TPU availability, tips) and a torch-internal deprecation warning are noise
    for simclr users: our own log says what hardware and precision the run uses."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=r".*weights_only.*")
    # litdata shards a streamed split by rank and worker itself, so its length is exact
    warnings.filterwarnings("ignore", message=r".*IterableDataset. has .__len__. defined.*")


def build_callbacks(
    config: PretrainConfig,
    run: RunDir,
    data: TrainingData,
    model: SimCLRModel,
    optim: OptimSettings,
    quiet: bool,
    event: str | None = None,
) -> list[L.Callback]:
    """Progress, metrics, the kNN monitor, checkpoints, the backbone export, the penalty's report and the
    clean stop on a signal; the order is the order Lightning calls them in."""
    # the step's values are read from the device only every log_every_steps steps (no per-step synchronisation)
    metrics = MetricsCSV(run.metrics, event_at_start=event, every_steps=config.log_every_steps)
    callbacks: list[L.Callback] = [IntervalProgressBar(metrics)] if _show_progress_bar(quiet) else []
    callbacks.append(metrics)
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
    (a random subset: packs are stored shuffled), as many as fit in :data:`KNN_STREAMED_BYTES`."""
    if not isinstance(data.train, PackedSplit):
        assert not isinstance(data.test, PackedSplit)
        return data.train, data.test
    if config.knn_every_epochs <= 0 or not data.train.has_labels:
        return ImageStore(torch.empty(0, 3, 1, 1, dtype=torch.uint8), torch.empty(0), []), None
    count = min(config.knn_max_images, KNN_STREAMED_BYTES // (3 * data.image_size**2))
    bank = data.train.load_first(count, data.image_size, config.workers)
    queries = None
    if isinstance(data.test, PackedSplit):
        queries = data.test.load_first(count, data.image_size, config.workers)
    log.info("kNN monitor: %d bank and %d query images decoded from the packed splits", len(bank), len(queries or []))
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


def describe_gradient_penalty(config: PretrainConfig) -> str:
    """One line saying what ``--lambda-gp`` penalises, so a run's log records the penalty's scope.

    On Spirograph the first-order penalty over the shape parameter h dominates the others
    (docs/REPRODUCING.md, "Invariance"), so the line says so while h is penalised.
    """
    names = gp_penalised_names(config)
    line = (
        f"gradient penalty: lambda {config.lambda_gp:g} over {', '.join(names)}; "
        f"{config.gp_draws} re-draws, clamp {config.gp_upper_limit:g}, "
        f"{'normalised' if config.gp_normalization else 'raw'} features"
    )
    if "h" in names and dataset_info(config.dataset).regression:
        line += (
            " (h dominates this penalty on Spirograph: see docs/REPRODUCING.md, Invariance; "
            "--gp-exclude h leaves it out)"
        )
    return line


def build_trainer(
    config: PretrainConfig,
    hardware: Hardware,
    optim: OptimSettings,
    callbacks: list[L.Callback],
    loggers: list[Any],
    run: RunDir,
) -> L.Trainer:
    """The Lightning trainer. It always gets a step budget (the schedule's steps unless ``--max-steps`` says
    fewer): Lightning then restores a checkpoint from anywhere in an epoch exactly, where with an epoch budget
    alone a run resumed twice (from an epoch's end, then mid-epoch) restarted its epoch counters and trained
    a batch too many (tests/training/test_hardening.py, the SIGKILL test)."""
    return L.Trainer(
        accelerator="gpu" if hardware.gpu else "cpu",
        devices=hardware.devices,
        num_nodes=hardware.num_nodes,
        strategy=config.strategy,
        precision=hardware.precision,  # type: ignore[arg-type]
        max_epochs=config.epochs,
        max_steps=min(config.max_steps or optim.total_steps, optim.total_steps),
        logger=loggers or False,
        callbacks=callbacks,
        enable_checkpointing=False,  # LastCheckpoint writes the one checkpoint a run keeps
        enable_progress_bar=any(isinstance(callback, IntervalProgressBar) for callback in callbacks),
        enable_model_summary=False,
        num_sanity_val_steps=0,
        sync_batchnorm=hardware.sync_batchnorm,
        use_distributed_sampler=False,  # the in-memory loader shards by rank itself
        # an epoch shorter than the interval still sends the trackers its scalars (and Lightning stays quiet)
        log_every_n_steps=max(1, min(config.log_every_steps, optim.steps_per_epoch)),
        plugins=[AtomicCheckpointIO()],
        default_root_dir=str(run.path),
    )


def finish(trainer: L.Trainer, run: RunDir) -> PretrainResult:
    metrics = next(callback for callback in trainer.callbacks if isinstance(callback, MetricsCSV))  # type: ignore[attr-defined]
    final_loss = metrics.last.get("train_loss")
    knn = trainer.callback_metrics.get("knn_top1")
    log.info("finished at step %d; run directory: %s", trainer.global_step, run.path)
    return PretrainResult(
        run_dir=run.path,
        global_step=trainer.global_step,
        final_loss=float(final_loss) if final_loss is not None else None,
        knn_top1=float(knn) if knn is not None else None,
    )


def pretrain(
    config: PretrainConfig,
    *,
    quiet: bool = True,
    dataset: Dataset[Any] | None = None,
    backbone: nn.Module | str | None = None,
    resume_with_changes: bool = False,
) -> PretrainResult:
    """Pretrain from Python as ``simclr pretrain`` does from the command line, and return the run's result.

    ``config`` is validated first (a :class:`PretrainConfig` built by hand skips :func:`build_config`'s
    checks); ``quiet`` (the default here, unlike the CLI) keeps the progress bar off a notebook's output.

    ``dataset``: train on a map-style torch ``Dataset`` of your own instead of the config's dataset. Each item
    is an image (a PIL image of any mode, or a ``(C, H, W)`` tensor with 1, 3 or 4 channels, uint8 or float
    in [0, 1]) or an ``(image, label)`` pair; labels feed the kNN monitor and ``online_probe``. The whole
    Dataset is read once, in this process, into memory as uint8 squares of ``config.image_size`` (made as an
    image folder's are: gray repeated, alpha on black, shorter side resized and centre cut; default: the
    images' own size when they are all one square), so it costs 3 x size^2 bytes per image (50,000 at 32 px:
    150 MB; at 224 px: 7.5 GB) and the time of one pass over ``dataset[i]``. Data bigger than memory belongs in
    an image folder or packed shards, streamed by the CLI's ``--dataset imagefolder`` / ``packed``. The run's
    config.yaml records ``dataset: python`` and the Dataset's class; normalisation uses ImageNet's statistics
    unless ``config.standardize`` measures your images'.

    ``backbone``: an ``nn.Module`` mapping ``(B, 3, H, W)`` images to ``(B, D)`` features (its ``feature_dim``
    or timm's ``num_features`` attribute, when it has one, must agree with one dry forward pass), trained in
    place; backbone.safetensors then names it ``custom:<module.Class>`` and
    ``load_backbone(run, module=YourModule())`` loads it. Or a name, as ``config.backbone`` takes it:
    ``"timm:<model>"`` builds that timm model (``num_classes=0``; needs ``pip install timm``), which
    ``load_backbone(run)`` rebuilds.

    ``config.resume``: continue that run directory. The config must train as the run's config.yaml does
    (build it with ``replace(RunDir(run).read_config(), resume=run)``, or keep the one that started the run);
    a change, a Dataset of another class or another backbone among them, is refused unless
    ``resume_with_changes`` (then it is recorded in the run, as ``--resume-with-changes`` does). A run that
    trained on a Python Dataset or backbone resumes from here only (``simclr pretrain --resume`` refuses it):
    pass them again.

    For example (docs/API.md has more)::

        images = torch.randint(0, 256, (1024, 3, 32, 32), dtype=torch.uint8)  # or a Dataset of PIL images
        result = pretrain(PretrainConfig(epochs=10, out="runs/mine"), dataset=TensorDataset(images, labels),
                          backbone="timm:resnet18")
    """
    if isinstance(backbone, str):
        config, backbone = replace(config, backbone=backbone), None
    config.validate()
    changes: dict[str, tuple[Any, Any]] = {}
    if config.resume:
        saved = RunDir(Path(config.resume)).read_config()
        config = with_saved_measurements(config, saved)
        changes = resume_changes(
            with_python_inputs(config, dataset, backbone),
            saved,
            allowed=resume_with_changes,
            switch="resume_with_changes=True",
        )
    return run_pretraining(config, quiet=quiet, resumed_changes=changes, dataset=dataset, backbone=backbone)


def with_saved_measurements(config: PretrainConfig, saved: PretrainConfig) -> PretrainConfig:
    """A resumed config with what the run measured when it started (its subset file's hash, ``--standardize``
    statistics) where the config leaves them unset, as the command line's resume reads them from config.yaml:
    the subset file is checked against the hash, and the statistics are not measured afresh."""
    measured = ("subset_sha256", "normalization_mean", "normalization_std")
    kept = {name: getattr(saved, name) for name in measured if getattr(config, name) is None}
    if config.subset != saved.subset:  # another subset file (a recorded change): its hash is pinned afresh
        kept.pop("subset_sha256", None)
    return replace(config, **kept)


def record_environment(config: PretrainConfig, run: RunDir, hardware: Hardware, optim: OptimSettings) -> None:
    """``environment.yaml``: what ``auto`` and ``null`` settings became here, and the machine and versions
    (rewritten at every start, so a resumed run records where it continued)."""
    if is_worker_process():
        return
    import yaml

    from simclr.environment import environment_record
    from simclr.rundir import write_text_atomic

    base_lr, rule = resolved_lr(config)
    resolved = {
        "precision": hardware.precision,
        "accelerator": "gpu" if hardware.gpu else "cpu",
        "processes": hardware.processes,
        "global_batch": config.batch_size * hardware.processes,
        "optimizer": optim.name,
        "lr": optim.peak_lr,
        "base_lr": base_lr,
        "lr_scaling": rule,
        "weight_decay": optim.weight_decay,
        "warmup_steps": optim.warmup_steps,
        "total_steps": optim.total_steps,
        "channels_last": hardware.channels_last,
        "sync_batchnorm": hardware.sync_batchnorm,
    }
    record = {"resolved": resolved, "environment": environment_record()}
    write_text_atomic(run.environment, yaml.safe_dump(record, sort_keys=False))
