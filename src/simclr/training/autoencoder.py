"""Train the pixel autoencoder of SimCLR-AE and write its run directory.

Schliebitz et al. (arXiv:2408.14514), experiment 1: an :class:`~simclr.models.autoencoder.MLPAutoencoder`
is fitted with MSE on pixels in [0, 1], Adam (lr 1e-4) and ReduceLROnPlateau on the validation loss (factor
0.5, patience 10, the settings the paper takes from arXiv:2206.08309). The validation images are carved out of
the training split; the test split's MSE is measured once at the end, as the paper reports it. With
``--standardize`` the encoder's input is Z-scored with the training split's per-channel statistics (the
reconstruction target stays the pixels in [0, 1], the range of the decoder's sigmoid). A plain loop is enough
here: the model is two small MLPs and the data sits in memory.

The run directory (:class:`~simclr.rundir.RunDir`, opened as every run is: one writer, its log) holds the
config, the metrics (epoch, train_loss, val_loss, lr; written as pretraining's are, and the test MSE in a last
row), the log, environment.yaml, the autoencoder's weights (what ``simclr pretrain --head ae --ae-checkpoint``
reads) and a picture of originals above their reconstructions, to judge the fit by eye. ``--logger`` sends the
settings, every epoch's row and the test MSE to the tracker, as pretraining does.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from simclr.autoencoder_config import AutoencoderConfig
from simclr.data.sampling import split_train_val
from simclr.data.statistics import channel_statistics
from simclr.data.store import ImageStore
from simclr.errors import UserError
from simclr.figures import new_figure, save_figure
from simclr.hardware import pick_device
from simclr.models.autoencoder import MLPAutoencoder, pixels, save_autoencoder
from simclr.resolve import data_source
from simclr.rundir import RunDir
from simclr.runs import open_run
from simclr.settings import config_to_dict, config_to_yaml
from simclr.tracking import finish_tracking, lightning_loggers, start_tracking
from simclr.training.metrics_file import MetricsFile
from simclr.training.run_record import record_environment

log = logging.getLogger("simclr")

METRIC_COLUMNS = ("epoch", "train_loss", "val_loss", "lr", "test_mse")
PLATEAU_FACTOR = 0.5
PLATEAU_PATIENCE = 10


@dataclass
class AEResult:
    run_dir: Path
    train_loss: float
    val_loss: float
    test_mse: float | None  # None for a dataset without a test split


@dataclass(frozen=True)
class InputScaling:
    """``--standardize``: the encoder sees ``(pixels - mean) / std`` per channel; None in its place: the pixels."""

    mean: Tensor  # (1, C, 1, 1)
    std: Tensor

    @classmethod
    def measured(cls, images: Tensor) -> InputScaling:
        mean, std = channel_statistics(images.split(256))
        return cls(torch.tensor(mean).view(1, -1, 1, 1), torch.tensor(std).view(1, -1, 1, 1))

    def __call__(self, target: Tensor) -> Tensor:
        return (target - self.mean.to(target.device)) / self.std.to(target.device)


def encoder_input(target: Tensor, scaling: InputScaling | None) -> Tensor:
    return target if scaling is None else scaling(target)


def default_ae_run_dir(config: AutoencoderConfig) -> Path:
    return Path("runs") / f"ae-{config.dataset}-{config.latent_dim}-{time.strftime('%Y%m%d-%H%M%S')}"


def _check_out(run_dir: Path) -> None:
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise UserError(f"{run_dir} already exists and is not empty; choose another --out")


def reconstruction_loss(
    model: MLPAutoencoder,
    images: Tensor,
    batch_size: int = 256,
    device: torch.device | None = None,
    scaling: InputScaling | None = None,
) -> float:
    """Mean squared error per pixel of ``model`` on uint8 ``images`` (the validation and test metric)."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            target = pixels(images[start : start + batch_size], device)
            rebuilt = model(encoder_input(target, scaling))
            total += float(torch.nn.functional.mse_loss(rebuilt, target, reduction="sum"))
            count += target.numel()
    model.train(was_training)
    return total / max(count, 1)


def train_epoch(
    model: MLPAutoencoder,
    images: Tensor,
    optimizer: torch.optim.Optimizer,
    batch_size: int,
    generator: torch.Generator,
    device: torch.device | None = None,
    scaling: InputScaling | None = None,
) -> float:
    """One pass over ``images`` in a random order; returns the mean training MSE per pixel."""
    device = device or next(model.parameters()).device
    model.train()
    order = torch.randperm(len(images), generator=generator)
    total, count = 0.0, 0
    for start in range(0, len(images), batch_size):
        target = pixels(images[order[start : start + batch_size]], device)
        loss = torch.nn.functional.mse_loss(model(encoder_input(target, scaling)), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * target.numel()
        count += target.numel()
    return total / max(count, 1)


def fit_autoencoder(
    model: MLPAutoencoder,
    train: Tensor,
    val: Tensor,
    epochs: int,
    batch_size: int = 256,
    lr: float = 1e-4,
    weight_decay: float = 0.0,
    seed: int = 0,
    on_epoch: Any = None,
    scaling: InputScaling | None = None,
) -> list[dict[str, float]]:
    """Adam + ReduceLROnPlateau(val loss) for ``epochs``; returns one metrics row per epoch.

    ``on_epoch(row)`` is called after every epoch (the run writes ``metrics.csv`` and logs from it).
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=PLATEAU_FACTOR, patience=PLATEAU_PATIENCE)
    generator = torch.Generator().manual_seed(seed)
    history: list[dict[str, float]] = []
    for epoch in range(epochs):
        lr_now = float(optimizer.param_groups[0]["lr"])
        train_loss = train_epoch(model, train, optimizer, batch_size, generator, scaling=scaling)
        val_loss = reconstruction_loss(model, val, batch_size, scaling=scaling)
        scheduler.step(val_loss)
        row = {"epoch": float(epoch), "train_loss": train_loss, "val_loss": val_loss, "lr": lr_now}
        history.append(row)
        if on_epoch is not None:
            on_epoch(row)
    return history


def plot_reconstructions(
    model: MLPAutoencoder, images: Tensor, out: Path, max_images: int = 8, scaling: InputScaling | None = None
) -> Path:
    """A two-row PNG: original images on top, their reconstructions below (written atomically)."""
    shown = images[:max_images]
    if len(shown) < 1:
        raise ValueError("plot_reconstructions needs at least one image")
    model.eval()
    with torch.no_grad():
        device = next(model.parameters()).device
        originals = pixels(shown, device)
        rebuilt = model(encoder_input(originals, scaling)).clamp(0.0, 1.0)
    figure = new_figure(1.4 * len(shown) + 0.8, 3.2)
    axes = figure.subplots(2, len(shown), squeeze=False)
    for row, (title, stack) in enumerate((("original", originals), ("reconstruction", rebuilt))):
        for col in range(len(shown)):
            ax = axes[row][col]
            ax.imshow(
                stack[col].permute(1, 2, 0).cpu().float().numpy(),
                vmin=0.0,
                vmax=1.0,
                interpolation="nearest",
            )
            ax.set_xticks([])
            ax.set_yticks([])
        axes[row][0].set_ylabel(title, fontsize=9)
    return save_figure(figure, out)


def _load_images(config: AutoencoderConfig) -> tuple[ImageStore, ImageStore | None]:
    """The training split, and the test split at its image size (None for a dataset without one)."""
    source = data_source(config)
    train = source.load_train(image_size=config.image_size, limit=config.limit_train_images, seed=config.seed)
    size = int(train.images.shape[-1])
    return train, source.load_test(image_size=size, seed=config.seed)


def run_ae_training(config: AutoencoderConfig, quiet: bool = False) -> AEResult:
    """Validate, load the data, then open the run directory (:func:`simclr.runs.open_run`: this process
    alone writes it, into its log) and train; bad input leaves nothing on disk."""
    config.validate()
    device = pick_device(config.accelerator)
    target = RunDir(Path(config.out) if config.out else default_ae_run_dir(config))
    _check_out(target.path)
    store, test = _load_images(config)
    train_idx, val_idx = split_train_val(store.labels, config.val_fraction, config.seed)
    train_images, val_images = store.images[train_idx], store.images[val_idx]
    scaling = InputScaling.measured(train_images) if config.standardize else None

    with open_run(target.path, may_hold_run=False, log_file=target.log, quiet=quiet) as run:
        image_size = int(store.images.shape[-1])
        saved = dataclasses.replace(config, out=str(run.path), image_size=image_size)
        run.write_config(config_to_yaml(saved))
        torch.manual_seed(config.seed)
        channels, height, width = (int(v) for v in store.images.shape[1:])
        model = MLPAutoencoder((channels, height, width), config.latent_dim).to(device)
        log.info("run directory: %s", run.path)
        log.info(
            "dataset %s: %d training + %d validation + %s test images of %dpx; latent %d; %s",
            config.dataset,
            len(train_images),
            len(val_images),
            len(test) if test is not None else "no",
            height,
            config.latent_dim,
            device,
        )
        if scaling is not None:
            log.info(
                "--standardize: encoder input Z-scored with mean %s, std %s",
                scaling.mean.flatten().tolist(),
                scaling.std.flatten().tolist(),
            )
        resolved = {"image_size": image_size, "device": str(device), "train_images": len(train_images)}
        record_environment(run, resolved)
        loggers = lightning_loggers(config.logger, run, config.experiment)
        start_tracking(loggers, run, config_to_dict(saved), resolved)
        history = _fit_into(run, model, train_images, val_images, config, scaling, loggers)
        test_mse = _test_into(run, model, test, config, scaling, loggers)
        save_autoencoder(model, run.autoencoder, config.dataset)
        plot_reconstructions(model, val_images, run.reconstructions, scaling=scaling)
        for logger in loggers:
            logger.finalize("success")
        finish_tracking(loggers, run)
        log.info("finished; run directory: %s", run.path)
    return AEResult(run.path, history[-1]["train_loss"], history[-1]["val_loss"], test_mse)


def _test_into(
    run: RunDir,
    model: MLPAutoencoder,
    test: ImageStore | None,
    config: AutoencoderConfig,
    scaling: InputScaling | None,
    loggers: list[Any],
) -> float | None:
    """The test split's MSE per pixel, in the log, the last row of ``metrics.csv`` and the trackers."""
    if test is None:
        log.info("%s has no test split: no test MSE", config.dataset)
        return None
    test_mse = reconstruction_loss(model, test.images, config.batch_size, scaling=scaling)
    MetricsFile(run.metrics, METRIC_COLUMNS).append([{"epoch": config.epochs - 1, "test_mse": test_mse}])
    for logger in loggers:
        logger.log_metrics({"test_mse": test_mse}, step=config.epochs)
    log.info("test MSE %.5f over %d images", test_mse, len(test))
    return test_mse


def _fit_into(
    run: RunDir,
    model: MLPAutoencoder,
    train_images: Tensor,
    val_images: Tensor,
    config: AutoencoderConfig,
    scaling: InputScaling | None,
    loggers: list[Any],
) -> list[dict[str, float]]:
    """:func:`fit_autoencoder` with the run's settings, one row of ``metrics.csv``, of each tracker and one log
    line per epoch."""
    metrics = MetricsFile(run.metrics, METRIC_COLUMNS)
    metrics.start()

    def on_epoch(row: dict[str, float]) -> None:
        metrics.append([dict(row, epoch=int(row["epoch"]))])
        for logger in loggers:
            logger.log_metrics({key: value for key, value in row.items() if key != "epoch"}, step=int(row["epoch"]))
        log.info(
            "epoch %d/%d  train_loss %.5f  val_loss %.5f  lr %.3g",
            int(row["epoch"]) + 1,
            config.epochs,
            row["train_loss"],
            row["val_loss"],
            row["lr"],
        )

    return fit_autoencoder(
        model,
        train_images,
        val_images,
        config.epochs,
        config.batch_size,
        config.lr,
        config.weight_decay,
        config.seed,
        on_epoch,
        scaling,
    )
