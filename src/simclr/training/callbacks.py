"""Lightning callbacks of a pretraining run: metrics file, checkpoints, kNN monitor, export, progress."""

from __future__ import annotations

import csv
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from safetensors.torch import save_file

from simclr.data import ImageStore
from simclr.evaluation.features import extract_features
from simclr.evaluation.knn import knn_accuracy

log = logging.getLogger("simclr")

METRIC_COLUMNS = (
    "step",
    "epoch",
    "train_loss",
    "lr",
    "img_per_s",
    "knn_top1",
    "gradient_penalty",
    "gradient_penalty_unclamped",
)


class MetricsCSV(L.Callback):
    """``metrics.csv`` in the run directory: one row per step, plus kNN rows at epoch ends.

    On resume, rows the killed run wrote after its last checkpoint are dropped, so the file holds exactly
    one curve with no duplicated steps.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_rank != 0:
            return
        kept: list[dict[str, str]] = []
        if self.path.exists():
            with open(self.path, newline="") as handle:
                kept = [row for row in csv.DictReader(handle) if int(row["step"]) < trainer.global_step]
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=METRIC_COLUMNS)
            writer.writeheader()
            writer.writerows(kept)
        os.replace(tmp, self.path)

    def write(self, trainer: L.Trainer, **values: Any) -> None:
        if trainer.global_rank != 0:
            return
        row = {name: "" for name in METRIC_COLUMNS}
        row.update({key: _format(value) for key, value in values.items()})
        with open(self.path, "a", newline="") as handle:
            csv.DictWriter(handle, fieldnames=METRIC_COLUMNS).writerow(row)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        metrics = trainer.callback_metrics
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.write(
            trainer,
            step=trainer.global_step - 1,
            epoch=trainer.current_epoch,
            train_loss=float(loss),
            **{
                name: _logged(metrics, name)
                for name in ("lr", "img_per_s", "gradient_penalty", "gradient_penalty_unclamped")
            },
        )


def _backbone(pl_module: L.LightningModule) -> torch.nn.Module:
    backbone = pl_module.model.backbone  # type: ignore[union-attr]
    assert isinstance(backbone, torch.nn.Module)
    return backbone


def _logged(metrics: dict[str, Any], name: str) -> float:
    """A value the module logged this step, or NaN (an empty cell) when it logs no such metric."""
    return float(metrics[name]) if name in metrics else math.nan


def _format(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return str(value)


class KNNMonitor(L.Callback):
    """Online weighted kNN accuracy (k=200, T=0.1 by default) of the backbone at epoch ends.

    It only reads the backbone (eval mode, no gradients), so it cannot change training.
    """

    def __init__(
        self,
        bank: ImageStore,
        queries: ImageStore,
        num_classes: int,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
        metrics: MetricsCSV,
        every_epochs: int = 1,
        k: int = 200,
        temperature: float = 0.1,
        batch_size: int = 512,
    ) -> None:
        self.bank, self.queries = bank, queries
        self.num_classes = num_classes
        self.mean, self.std = mean, std
        self.metrics = metrics
        self.every_epochs = every_epochs
        self.k, self.temperature = k, temperature
        self.batch_size = batch_size
        self.last_top1: float | None = None

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if (trainer.current_epoch + 1) % self.every_epochs != 0:
            return
        backbone = _backbone(pl_module)
        dtype = torch.bfloat16 if "bf16" in str(trainer.precision) else None
        start = time.perf_counter()
        bank = extract_features(
            backbone, self.bank.images, self.mean, self.std, self.batch_size, pl_module.device, dtype
        )
        queries = extract_features(
            backbone, self.queries.images, self.mean, self.std, self.batch_size, pl_module.device, dtype
        )
        top1 = knn_accuracy(
            bank, self.bank.labels, queries, self.queries.labels, self.num_classes, self.k, self.temperature
        )
        self.last_top1 = top1
        pl_module.log("knn_top1", top1, prog_bar=True, rank_zero_only=True)
        self.metrics.write(trainer, step=trainer.global_step - 1, epoch=trainer.current_epoch, knn_top1=top1)
        log.info(
            "epoch %d: knn_top1 %.4f (k=%d, T=%g, bank %d, queries %d, %.1fs)",
            trainer.current_epoch,
            top1,
            self.k,
            self.temperature,
            len(self.bank),
            len(self.queries),
            time.perf_counter() - start,
        )


class LastCheckpoint(L.Callback):
    """Keeps ``checkpoints/last.ckpt`` current: every N steps and at every epoch end, written atomically."""

    def __init__(self, path: Path, every_steps: int) -> None:
        self.path = path
        self.every_steps = every_steps

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        last_of_epoch = batch_idx + 1 >= trainer.num_training_batches
        if self.every_steps > 0 and trainer.global_step % self.every_steps == 0 and not last_of_epoch:
            trainer.save_checkpoint(self.path)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        trainer.save_checkpoint(self.path)


def export_backbone(backbone: torch.nn.Module, path: Path, metadata: dict[str, str]) -> None:
    """Write the backbone weights alone as safetensors (atomically), with what is needed to rebuild it."""
    tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in backbone.state_dict().items()}
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    os.replace(tmp, path)


class BackboneExport(L.Callback):
    """``backbone.safetensors`` at the end of training (and at epoch ends, so a killed run has one too)."""

    def __init__(self, path: Path, metadata: dict[str, str]) -> None:
        self.path = path
        self.metadata = metadata

    def _export(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_rank == 0:
            meta = dict(self.metadata, global_step=str(trainer.global_step), epoch=str(trainer.current_epoch))
            export_backbone(_backbone(pl_module), self.path, meta)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._export(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._export(trainer, pl_module)


class ProgressLog(L.Callback):
    """A plain progress line every N steps, for logs and terminals without a live progress bar."""

    def __init__(self, every_steps: int, total_steps: int) -> None:
        self.every_steps = max(1, every_steps)
        self.total_steps = total_steps

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        if step % self.every_steps and step != self.total_steps:
            return
        metrics = trainer.callback_metrics
        rate = float(metrics.get("img_per_s", math.nan))
        log.info(
            "epoch %d step %d/%d loss %.4f lr %.4g %s",
            trainer.current_epoch,
            step,
            self.total_steps,
            float(metrics.get("train_loss", math.nan)),
            float(metrics.get("lr", math.nan)),
            "" if math.isnan(rate) else f"{rate:.0f} img/s",
        )
