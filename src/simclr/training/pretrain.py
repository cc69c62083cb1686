"""One pretraining run from a validated config, as phases in data-flow order.

:func:`run_pretraining` reads top to bottom: data -> schedule -> the Lightning module (views, model, loss and
optimiser: :meth:`SimCLRModule.from_config`) -> run directory -> callbacks and loggers -> trainer -> fit.
Everything that can fail on the user's input (data, views, model, schedule, the caller's Trainer options)
runs before the run directory is created, so a bad run leaves nothing on disk; the backbone is exported by
a callback at every epoch end and when training ends.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import Logger
from lightning.pytorch.plugins.environments import SLURMEnvironment
from torch import nn
from torch.utils.data import Dataset

from simclr.config import PretrainConfig
from simclr.data.catalog import PYTHON_DATASET
from simclr.data.pairs import SameClassPartners
from simclr.data.python_dataset import dataset_class_name
from simclr.data.python_stream import PythonStream
from simclr.data.streaming import PackedSplit
from simclr.errors import UserError
from simclr.models.backbones import CUSTOM_PREFIX, custom_backbone_name
from simclr.resolve import (
    normalized_info,
    view_config,
)
from simclr.rundir import RunDir
from simclr.runs import held_log_records
from simclr.settings import config_to_dict
from simclr.tracking import finish_tracking, lightning_loggers, start_tracking
from simclr.training.callbacks import IntervalProgressBar, MetricsCSV
from simclr.training.checkpoint_io import AtomicCheckpointIO
from simclr.training.datamodule import InMemoryDataModule, PythonStreamDataModule, StreamingDataModule
from simclr.training.module import SimCLRModule
from simclr.training.plan import (
    Hardware,
    OptimSettings,
    is_slurm_job_step,
    plan_optimisation,
    resolve_hardware,
)
from simclr.training.resume import Changes, continue_same_run, record_changes, starting_step
from simclr.training.run_callbacks import build_callbacks
from simclr.training.run_record import describe_run, record_environment, resolved_settings
from simclr.training.run_setup import check_writable, is_worker_process, open_run_dir
from simclr.training.training_data import (
    TrainingData,
    check_labels_present,
    load_training_data,
    pin_subset_file,
    planned_train_images,
    with_measured_normalization,
)
from simclr.views.config import ViewConfig

log = logging.getLogger("simclr")


@dataclass
class PretrainResult:
    """Where a pretraining run is, the step it stopped at, and its last loss and kNN accuracy."""

    run_dir: Path
    global_step: int
    final_loss: float | None
    knn_top1: float | None


def run_pretraining(
    config: PretrainConfig,
    quiet: bool = False,
    extra_callbacks: list[L.Callback] | None = None,
    resumed_changes: Changes | None = None,
    *,
    dataset: Dataset[Any] | None = None,
    backbone: nn.Module | None = None,
    extra_loggers: list[Logger] | None = None,
    trainer_kwargs: dict[str, Any] | None = None,
) -> PretrainResult:
    """Train SimCLR as configured and return where the run directory is.

    ``extra_callbacks`` and ``extra_loggers`` join the run's own (benchmarks and tests observe the run with
    them; :func:`simclr.api.pretrain` passes the user's); ``trainer_kwargs`` are further ``L.Trainer`` options,
    none of those simclr sets (:func:`check_trainer_additions`). ``resumed_changes`` are settings a
    ``--resume-with-changes`` changed (recorded in the run). ``dataset`` and ``backbone`` are what only Python
    can pass (:func:`simclr.api.pretrain`). A SIGINT or SIGTERM during training saves the checkpoint and raises
    :class:`~simclr.errors.Interrupted`.
    """
    check_trainer_additions(extra_callbacks or [], extra_loggers or [], trainer_kwargs or {}, config)
    config = with_python_inputs(config, dataset, backbone)
    if config.out and not config.resume:
        check_writable(Path(config.out))
    # decisions are shown as they are made, and written to the run's log once it exists
    with held_log_records(echo=not quiet and not is_worker_process()) as decisions:
        config = continue_same_run(config)
        resume_step = starting_step(config)
        config = pin_subset_file(config)
        hardware = resolve_hardware(config)
        data = load_training_data(config, dataset, hardware.processes // hardware.num_nodes)
        config = with_measured_normalization(config, data)
        data = replace(data, info=normalized_info(config, data.info))
        views_config = view_config(config, data.info, data.image_size)
        datamodule = build_datamodule(config, data, views_config)
        check_labels_present(config, data)
    optim = plan_optimisation(config, planned_train_images(config, data, hardware.processes), hardware.processes)
    module = SimCLRModule.from_config(
        config,
        image_size=data.image_size,
        steps_per_epoch=optim.steps_per_epoch,
        processes=hardware.processes,
        backbone=backbone,
        streamed=data.streamed,
        channels_last=hardware.channels_last,
        info=data.info,
    )

    with open_run_dir(config, quiet=quiet, held=decisions, from_checkpoint=resume_step is not None) as run:
        parameters = module.model.parameter_counts()
        describe_run(config, run, data, hardware, optim, parameters)
        resolved = resolved_settings(config, hardware, optim, views_config, parameters)
        record_environment(run, resolved)
        event = None if is_worker_process() else record_changes(run, resume_step, resumed_changes or {})
        callbacks = build_callbacks(config, run, data, module.model, optim, quiet, event) + list(extra_callbacks or [])
        loggers = lightning_loggers(config.logger, run, config.experiment)
        trainer = build_trainer(
            config, hardware, optim, callbacks, loggers + list(extra_loggers or []), run, trainer_kwargs or {}
        )
        if not is_worker_process():
            start_tracking(loggers, run, config_to_dict(config), resolved)
        trainer.fit(module, datamodule=datamodule, ckpt_path=run.last_checkpoint if resume_step is not None else None)
        if not is_worker_process():
            finish_tracking(loggers, run)
        return result_of(trainer, run)


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
    if isinstance(data.train, PythonStream):
        if config.positives == "class":
            raise UserError("positives='class' needs the training images in memory; this Dataset is streamed")
        return PythonStreamDataModule(data.train, config.batch_size, config.seed, config.workers)
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


# The Trainer options simclr sets from the config or the run's plan, with what a user sets instead; a
# ``trainer_kwargs`` key among them is refused (docs/API.md lists them)
SIMCLR_TRAINER_OPTIONS: dict[str, str] = {
    "accelerator": "config.accelerator",
    "devices": "config.devices",
    "num_nodes": "config.num_nodes",
    "strategy": "config.strategy",
    "precision": "config.precision",
    "max_epochs": "config.epochs",
    "min_epochs": "config.epochs",
    "max_steps": "config.max_steps",
    "min_steps": "config.max_steps",
    "fast_dev_run": "config.max_steps",
    "limit_train_batches": "config.limit_train_images",
    "overfit_batches": "config.limit_train_images",
    "accumulate_grad_batches": "config.batch_size (the schedule and NT-Xent's negatives count whole batches)",
    "logger": "pretrain(loggers=[...])",
    "callbacks": "pretrain(callbacks=[...])",
    "enable_checkpointing": "config.checkpoint_every_steps, or a ModelCheckpoint in pretrain(callbacks=[...])",
    "enable_progress_bar": "pretrain(quiet=False)",
    "enable_model_summary": "a ModelSummary in pretrain(callbacks=[...])",
    "default_root_dir": "config.out",
    "sync_batchnorm": "config.sync_batchnorm",
    "deterministic": "config.deterministic",
    "use_distributed_sampler": "config.devices (simclr's loaders give each process its share)",
    "log_every_n_steps": "config.log_every_steps",
    "num_sanity_val_steps": "config.val_fraction (simclr validates at epoch ends)",
    "plugins": "config.precision (simclr's checkpoints need its own atomic, weights-only CheckpointIO)",
}


def check_trainer_additions(
    callbacks: list[Any], loggers: list[Any], trainer_kwargs: dict[str, Any], config: PretrainConfig
) -> None:
    """One-line errors, before any work, for callbacks or loggers that are not Lightning's and for Trainer
    options that simclr sets itself (:data:`SIMCLR_TRAINER_OPTIONS`), that ``L.Trainer`` does not take, or that
    clip the gradients when ``config.clip_grad_norm`` does."""
    for what, items, kind in (("callbacks", callbacks, L.Callback), ("loggers", loggers, Logger)):
        for item in items:
            if not isinstance(item, kind):
                raise UserError(
                    f"{what} holds an item of type {type(item).__name__}, not a lightning {kind.__name__}; pass "
                    f"instances of {kind.__module__}.{kind.__name__} subclasses"
                )
    taken = inspect.signature(L.Trainer.__init__).parameters
    for key in trainer_kwargs:
        if key in SIMCLR_TRAINER_OPTIONS:
            raise UserError(
                f"trainer_kwargs[{key!r}] is set by simclr; use {SIMCLR_TRAINER_OPTIONS[key]} instead (docs/API.md)"
            )
        if key not in taken:
            raise UserError(f"trainer_kwargs[{key!r}] is not an option of lightning.Trainer; check its spelling")
        if key.startswith("gradient_clip") and config.clip_grad_norm is not None:
            raise UserError(
                f"trainer_kwargs[{key!r}] and config.clip_grad_norm both clip the gradients; set only one of them"
            )


def build_trainer(
    config: PretrainConfig,
    hardware: Hardware,
    optim: OptimSettings,
    callbacks: list[L.Callback],
    loggers: list[Any],
    run: RunDir,
    trainer_kwargs: dict[str, Any] | None = None,
) -> L.Trainer:
    """The Lightning trainer, with simclr's options (:func:`simclr_trainer_options`) and the caller's
    ``trainer_kwargs`` (none of simclr's: :func:`check_trainer_additions`)."""
    return L.Trainer(
        **simclr_trainer_options(config, hardware, optim, callbacks, loggers, run), **(trainer_kwargs or {})
    )


def simclr_trainer_options(
    config: PretrainConfig,
    hardware: Hardware,
    optim: OptimSettings,
    callbacks: list[L.Callback],
    loggers: list[Any],
    run: RunDir,
) -> dict[str, Any]:
    """The Trainer options simclr sets (each one in :data:`SIMCLR_TRAINER_OPTIONS`). The Trainer always gets a
    step budget (the schedule's steps unless ``--max-steps`` says fewer): Lightning then restores a checkpoint
    from anywhere in an epoch exactly, where with an epoch budget alone a run resumed twice (from an epoch's end,
    then mid-epoch) restarted its epoch counters and trained a batch too many (tests/training/test_hardening.py,
    the SIGKILL test)."""
    return dict(
        accelerator="gpu" if hardware.gpu else "cpu",
        devices=hardware.devices,
        num_nodes=hardware.num_nodes,
        strategy=config.strategy,
        precision=hardware.precision,
        max_epochs=config.epochs,
        max_steps=min(config.max_steps or optim.total_steps, optim.total_steps),
        logger=loggers or False,
        callbacks=callbacks,
        # LastCheckpoint writes the one checkpoint a run keeps; Lightning wants this on for a user's ModelCheckpoint
        enable_checkpointing=any(isinstance(callback, ModelCheckpoint) for callback in callbacks),
        enable_progress_bar=any(isinstance(callback, IntervalProgressBar) for callback in callbacks),
        enable_model_summary=False,
        num_sanity_val_steps=0,
        sync_batchnorm=hardware.sync_batchnorm,
        # Lightning then sets torch.use_deterministic_algorithms and cuBLAS's workspace; None leaves a caller's choice
        deterministic=True if config.deterministic else None,
        # only when asked for: otherwise a Lightning user's trainer_kwargs may clip (check_trainer_additions)
        **(
            {"gradient_clip_val": config.clip_grad_norm, "gradient_clip_algorithm": "norm"}
            if config.clip_grad_norm
            else {}
        ),
        use_distributed_sampler=False,  # the in-memory loader shards by rank itself
        # an epoch shorter than the interval still sends the trackers its scalars (and Lightning stays quiet)
        log_every_n_steps=max(1, min(config.log_every_steps, optim.steps_per_epoch)),
        # under SLURM, Lightning's requeueing stays off: on SIGUSR1 it would save an hpc_ckpt beside the run's
        # checkpoint and requeue the job itself; SIGTERM and the recipe of docs/SCALING.md do that here
        plugins=[AtomicCheckpointIO(), *([SLURMEnvironment(auto_requeue=False)] if is_slurm_job_step() else [])],
        default_root_dir=str(run.path),
    )


def result_of(trainer: L.Trainer, run: RunDir) -> PretrainResult:
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
