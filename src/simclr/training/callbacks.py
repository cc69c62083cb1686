"""Lightning callbacks of a pretraining run: metrics file, checkpoints, kNN monitor, export, progress,
the gradient penalty's report, and a clean stop on SIGINT / SIGTERM."""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
import os
import signal
import statistics
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import RichProgressBar

from simclr.data.store import ImageStore
from simclr.errors import Interrupted
from simclr.evaluation.features import extract_features
from simclr.evaluation.protocols.knn import knn_accuracy
from simclr.models.backbone_file import BackboneMetadata, write_backbone
from simclr.rundir import RunDir
from simclr.stop_signals import STOP_SIGNALS, StopSignal, signal_name
from simclr.training.metrics_file import MetricsFile
from simclr.training.module import SimCLRModule

log = logging.getLogger("simclr")

METRIC_COLUMNS = (
    "step",
    "epoch",
    "train_loss",
    "lr",
    "img_per_s",
    "knn_top1",
    "contrastive_top1",
    "contrastive_top5",
    "gradient_penalty",
    "gradient_penalty_unclamped",
    "val_loss",
    "val_contrastive_top1",
    "val_contrastive_top5",
    "online_linear_top1",
    "online_linear_val_top1",
    "event",
)


class MetricsCSV(L.Callback):
    """The run's metrics file (CSV): one row per step, plus kNN rows at epoch ends.

    The training step keeps its values on the device; they are read here all at once (one host
    synchronisation) every ``every_steps`` steps, at epoch ends, at the last step and before every
    checkpoint, and then written one row per step and passed to the tracking loggers. So the file holds
    every step, but its rows appear in bursts of the log interval, and a killed run may lose the rows after
    its last checkpoint (which a resume drops anyway). A non-finite loss found when reading stops the run
    (:meth:`~simclr.training.module.SimCLRModule.raise_if_nonfinite`) after the rows before it are written.

    On resume, rows the killed run wrote after its last checkpoint are dropped, so the file holds exactly
    one curve with no duplicated steps.
    """

    def __init__(self, path: Path, event_at_start: str | None = None, every_steps: int = 1) -> None:
        self.path = path
        self.file = MetricsFile(path, METRIC_COLUMNS)
        self.event_at_start = event_at_start  # e.g. the settings a resume changed, marked at its first step
        self.every_steps = max(1, every_steps)
        self.last: dict[str, float] = {}  # the newest step's values, for progress lines and the result

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_rank != 0:
            return
        self.file.start(keep=lambda row: int(row["step"]) < trainer.global_step)
        if self.event_at_start:
            self.write(trainer, step=trainer.global_step, epoch=trainer.current_epoch, event=self.event_at_start)

    def write(self, trainer: L.Trainer, **values: Any) -> None:
        self.write_rows(trainer, [values])

    def write_rows(self, trainer: L.Trainer, rows: list[dict[str, Any]]) -> None:
        if trainer.global_rank != 0 or not rows:
            return
        self.file.append(rows)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        end_of_epoch = batch_idx + 1 >= trainer.num_training_batches
        final = 0 < trainer.max_steps <= trainer.global_step
        if trainer.global_step % self.every_steps == 0 or end_of_epoch or final:
            self.flush(trainer, pl_module)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        self.flush(trainer, pl_module)  # the file must hold every step the checkpoint has trained

    def flush(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Read the steps logged since the last flush, write them, and stop on a non-finite loss."""
        if not isinstance(pl_module, SimCLRModule):
            return
        steps = pl_module.drain_step_metrics()
        self.write_rows(trainer, [dict(step.values, step=step.step, epoch=step.epoch) for step in steps])
        for step in steps:
            finite = {name: value for name, value in step.values.items() if not math.isnan(value)}
            for logger in trainer.loggers:
                logger.log_metrics(dict(finite, epoch=step.epoch), step=step.step)
        if steps:
            self.last = dict(steps[-1].values, step=steps[-1].step, epoch=steps[-1].epoch)
        pl_module.raise_if_nonfinite()


class IntervalProgressBar(RichProgressBar):
    """Lightning's rich progress bar, showing the values of the last log interval: Lightning's own metrics
    would read logged device tensors at every refresh (a host synchronisation per step)."""

    SHOWN = ("train_loss", "contrastive_top1", "lr", "img_per_s", "gradient_penalty")

    def __init__(self, metrics: MetricsCSV) -> None:
        super().__init__()
        self.metrics = metrics

    def get_metrics(
        self, trainer: L.Trainer, pl_module: L.LightningModule
    ) -> dict[str, int | str | float | dict[str, float]]:
        last = self.metrics.last
        return {name: f"{last[name]:.4g}" for name in self.SHOWN if name in last and not math.isnan(last[name])}


def _backbone(pl_module: L.LightningModule) -> torch.nn.Module:
    backbone = pl_module.model.backbone  # type: ignore[union-attr]
    assert isinstance(backbone, torch.nn.Module)
    return backbone


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
    """Keeps the run's last checkpoint current, written atomically: every N steps, after the last step of
    every epoch, and after the last step of the run.

    Every save happens when a training step has ended (``on_train_batch_end``), the one point where
    Lightning restores its loop counters and the data position exactly, also at the end of an epoch. A
    checkpoint written from the epoch-end hook marks the epoch as done before its counters are reset, and a
    run resumed from it skipped the batches of the next epoch after its first (tests/training/test_resume.py).
    """

    def __init__(self, path: Path, every_steps: int) -> None:
        self.path = path
        self.every_steps = every_steps

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        end_of_epoch = batch_idx + 1 >= trainer.num_training_batches
        final = 0 < trainer.max_steps <= trainer.global_step
        periodic = self.every_steps > 0 and trainer.global_step % self.every_steps == 0
        if end_of_epoch or final or periodic:
            trainer.save_checkpoint(self.path)


class BackboneExport(L.Callback):
    """The backbone file at the end of training (and at epoch ends, so a killed run has one too)."""

    def __init__(self, path: Path, metadata: BackboneMetadata) -> None:
        self.path = path
        self.metadata = metadata

    def _export(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if isinstance(pl_module, SimCLRModule):
            pl_module.raise_if_nonfinite()  # never export weights trained after a non-finite loss
        if trainer.global_rank == 0:
            meta = dataclasses.replace(self.metadata, global_step=trainer.global_step, epoch=trainer.current_epoch)
            write_backbone(self.path, _backbone(pl_module).state_dict(), meta)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._export(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._export(trainer, pl_module)


class ProgressLog(L.Callback):
    """A plain progress line every N steps, for logs and terminals without a live progress bar; it shows
    the values :class:`MetricsCSV` read at that step (put it after that callback)."""

    def __init__(self, every_steps: int, total_steps: int, metrics: MetricsCSV) -> None:
        self.every_steps = max(1, every_steps)
        self.total_steps = total_steps
        self.metrics = metrics

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        total = trainer.max_steps if trainer.max_steps > 0 else self.total_steps  # a time budget may move it
        if step % self.every_steps and step != total:
            return
        last = self.metrics.last
        rate = last.get("img_per_s", math.nan)
        log.info(
            "epoch %d step %d/%d loss %.4f top1 %.3f lr %.4g %s",
            trainer.current_epoch,
            step,
            total,
            last.get("train_loss", math.nan),
            last.get("contrastive_top1", math.nan),
            last.get("lr", math.nan),
            "" if math.isnan(rate) else f"{rate:.0f} img/s",
        )


class GradientPenaltyReport(L.Callback):
    """Says in the run's log what ``--lambda-gp`` penalises, and warns at the end when the penalty sat at
    its clamp, where it adds no gradient (so a run can look penalised while training as plain SimCLR)."""

    def __init__(self, scope: str, metrics_csv: Path, upper_limit: float) -> None:
        self.scope = scope
        self.metrics_csv = metrics_csv
        self.upper_limit = upper_limit

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_rank == 0:
            log.info("%s", self.scope)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_rank != 0:
            return
        note = penalty_saturation_note(self.metrics_csv, self.upper_limit)
        if note:
            log.warning("%s", note)


def penalty_saturation_note(metrics_csv: Path, upper_limit: float) -> str | None:
    """A warning when the penalty sat above its clamp on some steps of the run, else None.

    The metrics file holds the whole curve across resumes, so the count covers the run, not one session.
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
        f"gradient penalty: above its clamp (--gp-upper-limit {upper_limit:g}) on {saturated} of {len(values)} "
        f"steps, where it adds no gradient (median unclamped value {statistics.median(values):.3g}, column "
        f"gradient_penalty_unclamped of {metrics_csv.name}); raise --gp-upper-limit if the penalty should act there"
    )


class StopOnSignal(L.Callback):
    """SIGINT (Ctrl-C) and SIGTERM end training cleanly at the next step boundary.

    Lightning turns Ctrl-C into exit code 1 and SIGTERM into a silent exit 0, and a signal that lands in the
    middle of an optimiser step leaves weights that are half updated. Here the signal only raises a flag;
    after the step in flight, the checkpoint is saved (atomically, like every other), and
    :class:`~simclr.errors.Interrupted` carries the step and the exit code (128 + signal) to the CLI.

    A second signal (an impatient Ctrl-C, often while the checkpoint is written) is deferred: the save goes on
    and stderr says so, and that a third abandons it. A third stops at once: the save in progress is
    abandoned (its temporary file removed, the previous checkpoint left as it was) and the CLI's one line says
    so and names the checkpoint that is kept. SIGKILL remains the hard stop.

    A signal sent to the whole process group (a terminal's Ctrl-C, SLURM) reaches every process of the run:
    the loader workers ignore it (:func:`~simclr.stop_signals.ignore_stop_signals`), and every rank of a
    multi-process run raises its own flag, so they agree on the step as when only one of them receives it.
    """

    def __init__(self, run: RunDir) -> None:
        self.run = run
        self.received: int | None = None
        self.count = 0  # stop signals received
        self.abandoned = False  # a third signal abandoned the stop's save
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.count += 1
        if self.received is None:
            self.received = signum
        elif self.count == 2:
            # os.write, not logging or print: a handler may run while the main thread is inside either
            os.write(
                sys.stderr.fileno(),
                f"simclr: {signal_name(signum)} again: stopping after this step and saving the checkpoint; "
                "a third one abandons the save\n".encode(),
            )
        else:
            self.abandoned = True
            raise StopSignal(signum)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Installed here, after Lightning registered its own SIGTERM handler at the start of fit, so ours
        # replaces it for the training loop; Lightning restores the original handlers at teardown.
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.getsignal(signum)
            signal.signal(signum, self._handle)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._stop_if_signalled(trainer, pl_module)

    def _stop_if_signalled(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        received = self._agreed_signal(trainer, pl_module)
        if received is None:
            return
        name = signal_name(received)
        checkpoint = self.run.last_checkpoint
        kept = checkpoint.is_file()
        try:
            trainer.save_checkpoint(checkpoint)
        except BaseException:
            if not self.abandoned:
                raise
            previous = f"the last good checkpoint is {checkpoint}" if kept else "no checkpoint was written"
            resume = f"; resume with --resume {self.run.path}" if kept else ""
            raise Interrupted(
                f"interrupted ({name}) at step {trainer.global_step}, and the checkpoint's save was abandoned by "
                f"another signal: {previous}{resume}",
                exit_code=128 + received,
            ) from None
        log.warning("%s at step %d: saved %s", name, trainer.global_step, checkpoint)
        raise Interrupted(
            f"interrupted ({name}) at step {trainer.global_step}; resume with --resume {self.run.path}",
            exit_code=128 + received,
        )

    def _agreed_signal(self, trainer: L.Trainer, pl_module: L.LightningModule) -> int | None:
        """The signal, if any process received one; every process stops at the same step."""
        if trainer.world_size == 1:
            return self.received
        flag = torch.tensor([self.received or 0], device=pl_module.device)
        return int(trainer.strategy.reduce(flag, reduce_op="max").item()) or None

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._restore()

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
