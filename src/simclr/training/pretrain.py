"""One pretraining run from a validated config: data -> views -> model -> Lightning fit -> run directory."""

from __future__ import annotations

import csv
import logging
import statistics
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import RichProgressBar

from simclr.config import PretrainConfig
from simclr.data import (
    ImageStore,
    dataset_info,
    load_dataset,
    report_skipped,
    split_train_val,
    stratified_subset,
)
from simclr.errors import UserError
from simclr.losses import NTXentLoss
from simclr.models import SimCLRModel, build_backbone, build_head, resolve_stem
from simclr.optim import scaled_learning_rate, warmup_steps_for
from simclr.training.callbacks import (
    BackboneExport,
    KNNMonitor,
    LastCheckpoint,
    MetricsCSV,
    ProgressLog,
)
from simclr.training.checkpoint_io import AtomicCheckpointIO
from simclr.training.datamodule import InMemoryDataModule
from simclr.training.hardware import resolve_precision, use_channels_last, uses_gpu
from simclr.training.module import InvarianceSettings, OptimSettings, SimCLRModule
from simclr.training.rundir import (
    checkpoint_path,
    is_worker_process,
    prepare_run_dir,
    setup_logging,
)
from simclr.views.factory import build_views

log = logging.getLogger("simclr")


@dataclass
class PretrainResult:
    run_dir: Path
    global_step: int
    final_loss: float | None
    knn_top1: float | None


def build_model(config: PretrainConfig, image_size: int) -> SimCLRModel:
    """Backbone with the stem for this image size, followed by the configured projection head."""
    backbone, feature_dim = build_backbone(config.backbone, resolve_stem(config.stem, image_size))
    head, out_dim = build_head(
        config.head,
        feature_dim,
        out_dim=config.head_out_dim,
        hidden_dim=config.head_hidden_dim,
        num_layers=config.head_layers,
        batch_norm=config.head_batch_norm,
        ae_checkpoint=config.ae_checkpoint,
        freeze_input=config.freeze_head_input,
        activation=config.head_activation,
    )
    return SimCLRModel(backbone, head, feature_dim, out_dim)


def _load_splits(config: PretrainConfig) -> tuple[ImageStore, ImageStore | None]:
    data_dir = Path(config.data_dir) if config.data_dir else None
    common: dict[str, Any] = dict(
        data_dir=data_dir,
        download=config.download,
        image_size=config.image_size,
        seed=config.seed,
        workers=config.workers,
    )
    if config.dataset == "spirograph":
        common.update(spirograph_size=config.train_size, spirograph_test_size=config.test_size)
    train = load_dataset(config.dataset, "train", limit=config.limit_train_images, **common)
    if train is None:
        raise UserError(f"dataset {config.dataset} has no training split in {config.data_dir}; check --data-dir")
    test = None
    if train.has_labels and config.knn_every_epochs > 0:
        test = load_dataset(config.dataset, "test", **common)
    return train, test


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


def _loggers(config: PretrainConfig, run_dir: Path) -> list[Any]:
    if config.logger == "tensorboard":
        try:
            import tensorboard  # noqa: F401
            from lightning.pytorch.loggers import TensorBoardLogger
        except ImportError:
            raise UserError(
                "--logger tensorboard needs the tensorboard package; pip install 'simclr[tensorboard]'"
            ) from None
        return [TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version="")]
    if config.logger == "mlflow":
        import os

        try:
            import mlflow  # noqa: F401
            from lightning.pytorch.loggers import MLFlowLogger
        except ImportError:
            raise UserError("--logger mlflow needs the mlflow package; pip install 'simclr[mlflow]'") from None
        uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(run_dir / 'mlflow.db').resolve()}"
        return [MLFlowLogger(experiment_name="simclr", run_name=run_dir.name, tracking_uri=uri)]
    return []


def _quiet_lightning() -> None:
    """Lightning's banners (GPU/TPU availability, tips) and a torch-internal deprecation warning are noise
    for simclr users: our own log says what hardware and precision the run uses."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=r".*weights_only.*")


def _devices(value: str) -> Any:
    text = str(value).strip()
    if text == "auto":
        return "auto"
    if text.isdigit():
        return int(text)
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserError(f"--devices {value!r} is not a count or a list like 0,1") from None


def describe_gradient_penalty(config: PretrainConfig) -> str:
    """One line saying what ``--lambda-gp`` penalises, so a run's log records the penalty's scope.

    On Spirograph the shape parameter h takes 91-99.9% of the seed's first-order penalty, and in every
    shortened run we made the full penalty raised the conditional variance (docs/REPRODUCING.md,
    "Invariance"); the line points there while h is penalised.
    """
    names = config.gp_penalised_names()
    line = (
        f"gradient penalty: lambda {config.lambda_gp:g} over {', '.join(names)}; "
        f"{config.gp_draws} re-draws, clamp {config.gp_upper_limit:g}, "
        f"{'normalised' if config.gp_normalization else 'raw'} features"
    )
    if "h" in names and dataset_info(config.dataset).regression:
        line += " (h dominates this penalty on Spirograph: see docs/REPRODUCING.md, Invariance; --gp-exclude h leaves it out)"
    return line


def penalty_saturation_note(metrics_csv: Path, upper_limit: float) -> str | None:
    """A warning when the penalty sat at its clamp on some steps of the run (``metrics.csv``), else None.

    The seed clamps the penalty at ``--gp-upper-limit`` (1 for CIFAR-10), and a clamped penalty adds no
    gradient: on a fresh ResNet-50 the CIFAR-10 penalty starts above 1, so a short run with the seed's
    setting is plain SimCLR. The log says so instead of letting ``gradient_penalty = 1`` look like success.
    """
    with open(metrics_csv, newline="") as handle:
        values = [
            float(row["gradient_penalty_unclamped"])
            for row in csv.DictReader(handle)
            if row.get("gradient_penalty_unclamped")
        ]
    saturated = sum(value > upper_limit for value in values)
    if not saturated:
        return None
    return (
        f"gradient penalty: above its clamp (--gp-upper-limit {upper_limit:g}) on {saturated} of {len(values)} steps, "
        f"where it adds no gradient (median unclamped value {statistics.median(values):.3g}, column "
        "gradient_penalty_unclamped of metrics.csv); raise --gp-upper-limit if the penalty should act there"
    )


def run_pretraining(
    config: PretrainConfig, quiet: bool = False, extra_callbacks: list[L.Callback] | None = None
) -> PretrainResult:
    """Train SimCLR as configured and return where the run directory is.

    ``extra_callbacks`` lets benchmarks and tests observe the run without changing it.
    """
    if config.resume and not checkpoint_path(Path(config.resume)).is_file():
        raise UserError(
            f"cannot resume: {checkpoint_path(Path(config.resume))} does not exist; "
            "pass the directory of a run that saved a checkpoint"
        )
    gpu = uses_gpu(config.accelerator)
    precision = resolve_precision(config.precision, gpu)
    info = dataset_info(config.dataset, config.image_size)
    train, test = _load_splits(config)  # before creating anything: bad data leaves no trace on disk
    image_size = int(train.images.shape[-1])
    L.seed_everything(config.seed, workers=False, verbose=False)  # the model's initial weights depend on it
    model = build_model(config, image_size)  # so does a bad head (e.g. --head ae with a wrong checkpoint)

    run_dir = prepare_run_dir(config)
    setup_logging(run_dir, quiet=quiet or is_worker_process())
    _quiet_lightning()
    report_skipped(train, "train")
    if test is not None:
        report_skipped(test, "test")
    log.info("run directory: %s", run_dir)
    log.info(
        "dataset %s: %d training images of %dpx%s",
        config.dataset,
        len(train),
        image_size,
        f", {len(test)} test images" if test is not None else "",
    )

    views, input_key = build_views(config, info, image_size)
    channels_last = use_channels_last(config.channels_last, gpu, config.lambda_gp > 0)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    elif config.channels_last:
        log.info("memory format: contiguous, not channels_last (faster for the gradient penalty on the CPU)")

    trainer_devices = _devices(config.devices)
    strategy = config.strategy
    show_bar = sys.stderr.isatty() and not quiet
    callbacks: list[L.Callback] = [RichProgressBar()] if show_bar else []
    metrics = MetricsCSV(run_dir / "metrics.csv")
    callbacks.append(metrics)
    knn_sets = _knn_sets(config, train, test)
    if knn_sets is not None:
        bank, queries = knn_sets
        callbacks.append(
            KNNMonitor(
                bank,
                queries,
                bank.num_classes,
                info.mean,
                info.std,
                metrics,
                every_epochs=config.knn_every_epochs,
                k=config.knn_k,
                temperature=config.knn_temperature,
            )
        )
    trainer = L.Trainer(
        accelerator="gpu" if gpu else "cpu",
        devices=trainer_devices,
        strategy=strategy,
        precision=precision,  # type: ignore[arg-type]
        max_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        logger=_loggers(config, run_dir) or False,
        callbacks=callbacks,
        enable_checkpointing=False,
        enable_progress_bar=show_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        sync_batchnorm=config.sync_batchnorm,
        use_distributed_sampler=False,
        log_every_n_steps=max(1, config.log_every_steps),
        plugins=[AtomicCheckpointIO()],
        default_root_dir=str(run_dir),
    )
    world = trainer.num_devices * trainer.num_nodes
    steps_per_epoch = len(train) // (config.batch_size * world)
    if steps_per_epoch < 1:
        raise UserError(
            f"{len(train)} training images are fewer than one batch of {config.batch_size} x {world} process(es); "
            "lower --batch-size or use more images"
        )
    total_steps = steps_per_epoch * config.epochs
    base_lr, rule = config.resolved_lr()
    optim = OptimSettings(
        name=config.optimizer,
        peak_lr=scaled_learning_rate(base_lr, config.batch_size * world, rule),
        weight_decay=config.resolved_weight_decay(),
        momentum=config.momentum,
        nesterov=config.nesterov,
        total_steps=total_steps,
        warmup_steps=warmup_steps_for(config.warmup_epochs, steps_per_epoch, total_steps),
    )
    log.info(
        "%s, %s stem, head %s; %s lr %.4g (base %g, %s scaling, batch %d x %d), wd %g, warmup %d of %d steps; precision %s",
        config.backbone,
        resolve_stem(config.stem, image_size),
        config.head,
        optim.name,
        optim.peak_lr,
        base_lr,
        rule,
        config.batch_size,
        world,
        optim.weight_decay,
        optim.warmup_steps,
        total_steps,
        precision,
    )
    if config.lambda_gp > 0:
        log.info("%s", describe_gradient_penalty(config))
    metadata = {
        "backbone": config.backbone,
        "stem": resolve_stem(config.stem, image_size),
        "feature_dim": str(model.feature_dim),
        "dataset": config.dataset,
        "image_size": str(image_size),
    }
    trainer.callbacks.extend(  # type: ignore[attr-defined]
        [
            LastCheckpoint(checkpoint_path(run_dir), config.checkpoint_every_steps),
            BackboneExport(run_dir / "backbone.safetensors", metadata),
            ProgressLog(config.log_every_steps, min(total_steps, config.max_steps or total_steps)),
            *(extra_callbacks or []),
        ]
    )
    if config.compile:
        model = torch.compile(model)  # type: ignore[assignment]
    module = SimCLRModule(
        model,
        views,
        NTXentLoss(temperature=config.temperature, gather_distributed=config.gather_distributed),
        optim,
        seed=config.seed,
        input_key=input_key,
        channels_last=channels_last,
        invariance=InvarianceSettings(
            config.lambda_gp,
            config.gp_upper_limit,
            config.gp_draws,
            config.gp_normalization,
            config.gp_excluded_columns(),
        ),
    )
    datamodule = InMemoryDataModule(train, config.batch_size, config.seed)
    ckpt = checkpoint_path(run_dir) if config.resume else None
    if ckpt is not None:
        log.info("resuming from %s", ckpt)
    trainer.fit(module, datamodule=datamodule, ckpt_path=str(ckpt) if ckpt else None)
    final_loss = trainer.callback_metrics.get("train_loss")
    knn = trainer.callback_metrics.get("knn_top1")
    if config.lambda_gp > 0 and trainer.global_rank == 0:
        saturation = penalty_saturation_note(run_dir / "metrics.csv", config.gp_upper_limit)
        if saturation:
            log.warning("%s", saturation)
    log.info("finished at step %d; run directory: %s", trainer.global_step, run_dir)
    return PretrainResult(
        run_dir=run_dir,
        global_step=trainer.global_step,
        final_loss=float(final_loss) if final_loss is not None else None,
        knn_top1=float(knn) if knn is not None else None,
    )
