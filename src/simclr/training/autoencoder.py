"""Train the pixel autoencoder of SimCLR-AE and write its run directory.

Schliebitz et al. (arXiv:2408.14514), experiment 1: an :class:`~simclr.models.MLPAutoencoder` is fitted with
MSE on pixels in [0, 1], Adam (lr 1e-4) and ReduceLROnPlateau on the validation loss (factor 0.5,
patience 10, the settings the paper takes from arXiv:2206.08309). The validation images are carved out of
the training split. A plain loop is enough here: the model is two small MLPs and the data sits in memory.

The run directory holds ``config.yaml``, ``metrics.csv`` (epoch, train_loss, val_loss, lr), ``train.log``,
``autoencoder.safetensors`` (what ``simclr pretrain --head ae --ae-checkpoint`` reads) and
``reconstructions.png`` (originals above their reconstructions, to judge the fit by eye).
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor

from simclr.data import ImageStore, load_dataset, split_train_val
from simclr.errors import UserError
from simclr.figures import new_figure, save_figure
from simclr.models.autoencoder import AUTOENCODER_FILE, MLPAutoencoder, pixels, save_autoencoder
from simclr.training.rundir import setup_logging

log = logging.getLogger("simclr")

METRICS_FILE = "metrics.csv"
RECONSTRUCTIONS_FILE = "reconstructions.png"
METRIC_COLUMNS = ("epoch", "train_loss", "val_loss", "lr")
PLATEAU_FACTOR = 0.5
PLATEAU_PATIENCE = 10


@dataclass(frozen=True)
class AETrainConfig:
    """The settings of ``simclr train-ae``; saved as the run's ``config.yaml``."""

    dataset: str
    data_dir: str | None = None
    download: bool = False
    latent_dim: int = 512
    image_size: int | None = None
    epochs: int = 20
    batch_size: int = 256
    lr: float = 1e-4
    weight_decay: float = 0.0
    val_fraction: float = 0.1
    limit_train_images: int | None = None
    train_size: int | None = None
    seed: int = 0
    workers: int = 2
    accelerator: str = "auto"
    out: str | None = None

    def validate(self) -> None:
        """Every check that needs no data, so bad flags fail before anything is loaded or written."""
        positive = {
            "latent_dim": self.latent_dim,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
        }
        for name, value in (
            ("image_size", self.image_size),
            ("limit_train_images", self.limit_train_images),
            ("train_size", self.train_size),
        ):
            if value is not None:
                positive[name] = value
        for name, value in positive.items():
            if value < 1:
                raise UserError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
        if not self.lr > 0:
            raise UserError(f"--lr must be > 0, got {self.lr}; the paper uses 1e-4")
        if self.weight_decay < 0:
            raise UserError(f"--weight-decay must be >= 0, got {self.weight_decay}")
        if not 0.0 < self.val_fraction < 1.0:
            raise UserError(
                f"--val-fraction must be between 0 and 1 (exclusive), got {self.val_fraction}; pass e.g. 0.1"
            )
        if self.accelerator not in ("auto", "cpu", "gpu"):
            raise UserError(f"unknown accelerator {self.accelerator!r}; use auto, cpu or gpu")
        if self.accelerator == "gpu" and not torch.cuda.is_available():
            raise UserError("--accelerator gpu but no CUDA device is visible; use --accelerator cpu")


@dataclass
class AEResult:
    run_dir: Path
    train_loss: float
    val_loss: float


def default_ae_run_dir(config: AETrainConfig) -> Path:
    return Path("runs") / f"ae-{config.dataset}-{config.latent_dim}-{time.strftime('%Y%m%d-%H%M%S')}"


def _check_out(run_dir: Path) -> None:
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise UserError(f"{run_dir} already exists and is not empty; choose another --out")


def reconstruction_loss(
    model: MLPAutoencoder, images: Tensor, batch_size: int = 256, device: torch.device | None = None
) -> float:
    """Mean squared error per pixel of ``model`` on uint8 ``images`` (the validation metric)."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            target = pixels(images[start : start + batch_size], device)
            total += float(torch.nn.functional.mse_loss(model(target), target, reduction="sum"))
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
) -> float:
    """One pass over ``images`` in a random order; returns the mean training MSE per pixel."""
    device = device or next(model.parameters()).device
    model.train()
    order = torch.randperm(len(images), generator=generator)
    total, count = 0.0, 0
    for start in range(0, len(images), batch_size):
        target = pixels(images[order[start : start + batch_size]], device)
        loss = torch.nn.functional.mse_loss(model(target), target)
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
        train_loss = train_epoch(model, train, optimizer, batch_size, generator)
        val_loss = reconstruction_loss(model, val, batch_size)
        scheduler.step(val_loss)
        row = {"epoch": float(epoch), "train_loss": train_loss, "val_loss": val_loss, "lr": lr_now}
        history.append(row)
        if on_epoch is not None:
            on_epoch(row)
    return history


def plot_reconstructions(model: MLPAutoencoder, images: Tensor, out: Path, max_images: int = 8) -> Path:
    """A two-row PNG: original images on top, their reconstructions below (written atomically)."""
    shown = images[:max_images]
    if len(shown) < 1:
        raise ValueError("plot_reconstructions needs at least one image")
    model.eval()
    with torch.no_grad():
        device = next(model.parameters()).device
        originals = pixels(shown, device)
        rebuilt = model(originals).clamp(0.0, 1.0)
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


def _load_images(config: AETrainConfig) -> ImageStore:
    extra: dict[str, Any] = {"spirograph_size": config.train_size} if config.dataset == "spirograph" else {}
    store = load_dataset(
        config.dataset,
        "train",
        data_dir=Path(config.data_dir) if config.data_dir else None,
        download=config.download,
        image_size=config.image_size,
        limit=config.limit_train_images,
        seed=config.seed,
        workers=config.workers,
        **extra,
    )
    if store is None:
        raise UserError(f"dataset {config.dataset} has no training split in {config.data_dir}; check --data-dir")
    return store


def _write_metrics_row(path: Path, row: dict[str, float]) -> None:
    new = not path.exists()
    with path.open("a", newline="") as handle:
        writer = csv.writer(handle)
        if new:
            writer.writerow(METRIC_COLUMNS)
        writer.writerow(
            [
                int(row["epoch"]),
                f"{row['train_loss']:.6g}",
                f"{row['val_loss']:.6g}",
                f"{row['lr']:.6g}",
            ]
        )


def run_ae_training(config: AETrainConfig, quiet: bool = False) -> AEResult:
    """Validate, load the data, then create the run directory and train; bad input leaves nothing on disk."""
    config.validate()
    run_dir = Path(config.out) if config.out else default_ae_run_dir(config)
    _check_out(run_dir)
    store = _load_images(config)
    train_idx, val_idx = split_train_val(store.labels, config.val_fraction, config.seed)
    train_images, val_images = store.images[train_idx], store.images[val_idx]

    run_dir.mkdir(parents=True, exist_ok=True)
    saved = dataclasses.replace(config, out=str(run_dir), image_size=int(store.images.shape[-1]))
    (run_dir / "config.yaml").write_text(yaml.safe_dump(dataclasses.asdict(saved), sort_keys=False))
    setup_logging(run_dir, quiet=quiet)
    torch.manual_seed(config.seed)
    use_gpu = config.accelerator == "gpu" or (config.accelerator == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if use_gpu else "cpu")
    channels, height, width = (int(v) for v in store.images.shape[1:])
    model = MLPAutoencoder((channels, height, width), config.latent_dim).to(device)
    log.info("run directory: %s", run_dir)
    log.info(
        "dataset %s: %d training + %d validation images of %dpx; latent %d; %s",
        config.dataset,
        len(train_images),
        len(val_images),
        height,
        config.latent_dim,
        device,
    )

    def on_epoch(row: dict[str, float]) -> None:
        _write_metrics_row(run_dir / METRICS_FILE, row)
        log.info(
            "epoch %d/%d  train_loss %.5f  val_loss %.5f  lr %.3g",
            int(row["epoch"]) + 1,
            config.epochs,
            row["train_loss"],
            row["val_loss"],
            row["lr"],
        )

    history = fit_autoencoder(
        model,
        train_images,
        val_images,
        config.epochs,
        config.batch_size,
        config.lr,
        config.weight_decay,
        config.seed,
        on_epoch,
    )
    save_autoencoder(model, run_dir / AUTOENCODER_FILE, config.dataset)
    plot_reconstructions(model, val_images, run_dir / RECONSTRUCTIONS_FILE)
    log.info("finished; run directory: %s", run_dir)
    return AEResult(run_dir=run_dir, train_loss=history[-1]["train_loss"], val_loss=history[-1]["val_loss"])
