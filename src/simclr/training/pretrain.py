"""One pretraining run from a validated config, as phases in data-flow order.

:func:`run_pretraining` reads top to bottom: data -> views -> model -> loss and optimiser -> run directory
-> callbacks and loggers -> trainer -> fit. Everything that can fail on the user's input (data, views,
model, schedule) runs before the run directory is created, so a bad run leaves nothing on disk; the
backbone is exported by a callback at every epoch end and when training ends.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import lightning as L
import torch
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
from simclr.losses.ntxent import NTXentLoss
from simclr.model_from_config import build_model
from simclr.models.backbones import CUSTOM_PREFIX, custom_backbone_name
from simclr.models.simclr_model import SimCLRModel
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
from simclr.training.module import OptimSettings, PretrainingModule
from simclr.training.plan import (
    Hardware,
    invariance_settings,
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
    check_labels_for_probe,
    load_training_data,
    pin_subset_file,
    planned_train_images,
    with_measured_normalization,
)
from simclr.views.config import ViewConfig
from simclr.views.factory import build_views

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
) -> PretrainResult:
    """Train SimCLR as configured and return where the run directory is.

    ``extra_callbacks`` lets benchmarks and tests observe the run without changing it. ``resumed_changes``
    are settings a ``--resume-with-changes`` changed (recorded in the run). ``dataset`` and ``backbone`` are
    what only Python can pass (:func:`simclr.api.pretrain`). A SIGINT or SIGTERM during training saves the
    checkpoint and raises :class:`~simclr.errors.Interrupted`.
    """
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
        views = build_views(
            data.image_size, views_config, config.n_views, rerender=data.info.regression, streamed=data.streamed
        )
        datamodule = build_datamodule(config, data, views_config)
        check_labels_for_probe(config, data)
    model = build_seeded_model(config, data.image_size, hardware, backbone)
    loss = build_loss(config)
    optim = plan_optimisation(config, planned_train_images(config, data, hardware.processes), hardware.processes)

    with open_run_dir(config, quiet=quiet, held=decisions, from_checkpoint=resume_step is not None) as run:
        describe_run(config, run, data, hardware, optim)
        resolved = resolved_settings(config, hardware, optim, views_config)
        record_environment(run, resolved)
        event = None if is_worker_process() else record_changes(run, resume_step, resumed_changes or {})
        callbacks = build_callbacks(config, run, data, model, optim, quiet, event) + list(extra_callbacks or [])
        loggers = lightning_loggers(config.logger, run, config.experiment)
        trainer = build_trainer(config, hardware, optim, callbacks, loggers, run)
        if not is_worker_process():
            start_tracking(loggers, run, config_to_dict(config), resolved)
        module = PretrainingModule(
            model,
            views,
            loss,
            optim,
            seed=config.seed,
            channels_last=hardware.channels_last,
            invariance=invariance_settings(config),
        )
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


def build_seeded_model(
    config: PretrainConfig, image_size: int, hardware: Hardware, backbone: nn.Module | None = None
) -> SimCLRModel:
    """The network with its initial weights drawn from ``config.seed`` (a ``backbone`` passed from Python keeps
    its own), in the run's memory format (and compiled when asked)."""
    L.seed_everything(config.seed, workers=False, verbose=False)
    model = build_model(config, image_size, backbone)
    if backbone is None:  # a module of one's own was tried on the image size already (measure_feature_dim)
        check_backbone_takes(model.backbone, config.backbone, image_size)
    if hardware.channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    if config.compile:
        # in place (nn.Module.compile): the state dict keeps its names, so checkpoints and backbones are the
        # same with and without --compile; dynamic=False as every batch has one shape (drop_last)
        model.compile(dynamic=False, backend=config.compile_backend)
    return model


def check_backbone_takes(backbone: nn.Module, name: str, image_size: int) -> None:
    """A one-line error, before the run directory exists, when ``backbone`` cannot take the run's images (a
    timm ViT made for 224 px, given 32 px ones, fails its first step with an AssertionError): one forward
    pass of two black images on the CPU, in eval mode and without gradients, so no BatchNorm statistics
    change and no random numbers are drawn."""
    images = torch.zeros(2, 3, image_size, image_size)
    training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad():
            backbone(images)
    except Exception as exc:  # whatever a model raises on an input it was not made for
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        made_for = getattr(backbone, "pretrained_cfg", {}).get("input_size")  # timm's models say theirs
        hint = f" (--image-size {made_for[-1]})" if made_for and made_for[-1] != image_size else ""
        raise UserError(
            f"backbone {name} cannot take {image_size} px images ({type(exc).__name__}: {reason}); pass the image "
            f"size it was made for{hint}, or choose another --backbone"
        ) from None
    finally:
        backbone.train(training)


def build_loss(config: PretrainConfig) -> NTXentLoss:
    """NT-Xent at the run's temperature; with ``--compile`` its loss-and-accuracy call is compiled too (the
    normalisation, the logits and the log-sum-exp fuse into a few kernels)."""
    loss = NTXentLoss(temperature=config.temperature, gather_distributed=config.gather_distributed)
    if config.compile:
        loss.loss_and_accuracy = torch.compile(  # type: ignore[method-assign]
            loss.loss_and_accuracy, dynamic=False, backend=config.compile_backend
        )
    return loss


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
