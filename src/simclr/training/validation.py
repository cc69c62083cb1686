"""Validation during pretraining (``--val-fraction``): the NT-Xent and contrastive accuracy of held-out
images at every epoch end, on views that are the same every epoch so the numbers of two epochs compare."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import cast

import lightning as L
import torch
import torch.nn.functional as F

from simclr.data.loader import InMemoryBatchLoader
from simclr.data.store import ImageStore
from simclr.losses.ntxent import NTXentLoss, contrastive_accuracy, ntxent_logits
from simclr.models.simclr_model import SimCLRModel
from simclr.training.callbacks import MetricsCSV
from simclr.training.module import view_generator
from simclr.views.factory import ViewMaker

log = logging.getLogger("simclr")

# Validation views come from their own seeds: a run with and without validation trains on the same views.
VALIDATION_SEED_OFFSET = 7_777_777
VALIDATION_METRICS = ("val_loss", "val_contrastive_top1", "val_contrastive_top5")


class ValidationMonitor(L.Callback):
    """At every epoch end: mean NT-Xent and contrastive top-1/top-5 over the validation images.

    The views of validation batch k always come from the same generator (the run's seed and k), and the
    network runs in eval mode (BatchNorm's running statistics) without gradients, so with unchanged weights
    every epoch gives the same numbers. The loss uses the local batch only (no gathering across processes);
    rank 0 validates and logs, as the kNN monitor does.
    """

    def __init__(self, store: ImageStore, batch_size: int, temperature: float, seed: int, metrics: MetricsCSV) -> None:
        self.loader = InMemoryBatchLoader(store, batch_size, seed=seed, drop_last=False, shuffle=False)
        self.criterion = NTXentLoss(temperature=temperature, gather_distributed=False)
        self.seed = seed
        self.metrics = metrics
        self.last: dict[str, float] = {}

    @property
    def last_loss(self) -> float:
        """The validation loss of the latest epoch (NaN before the first)."""
        return self.last.get("val_loss", math.nan)

    @torch.no_grad()
    def evaluate(self, pl_module: L.LightningModule) -> dict[str, float]:
        """The validation metrics of the module's current weights (its train/eval mode is restored)."""
        model = cast(SimCLRModel, pl_module.model)
        views = cast(ViewMaker, pl_module.views)
        was_training = model.training
        model.eval()
        totals = dict.fromkeys(VALIDATION_METRICS, 0.0)
        count = 0
        try:
            for k, idx in enumerate(torch.arange(len(self.loader.store)).split(self.loader.batch_size)):
                if idx.numel() < 2:  # one image has no negatives
                    continue
                batch = self.loader.gather(idx)
                source = batch[views.input_key].to(pl_module.device)
                generator = view_generator(self.seed + VALIDATION_SEED_OFFSET, k, 0)
                made = views(source, generator)[: views.n_views]  # the global views (multi-crop adds local ones)
                _, projections = model(torch.cat(made).to(memory_format=torch.contiguous_format))
                chunks = projections.float().chunk(len(made))
                loss = self.criterion(*chunks)
                embeddings = F.normalize(torch.cat(chunks), dim=1)
                logits, positives = ntxent_logits(embeddings, embeddings, 0, len(made), self.criterion.temperature)
                accuracy = contrastive_accuracy(logits, positives, ks=(1, 5))
                weight = idx.numel()
                totals["val_loss"] += float(loss) * weight
                totals["val_contrastive_top1"] += float(accuracy[1]) * weight
                totals["val_contrastive_top5"] += float(accuracy[5]) * weight
                count += weight
        finally:
            model.train(was_training)
        return {name: total / max(count, 1) for name, total in totals.items()}

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_rank != 0:
            return
        start = time.perf_counter()
        self.last = self.evaluate(pl_module)
        for name, value in self.last.items():
            pl_module.log(name, value, rank_zero_only=True)
        self.metrics.write(trainer, step=trainer.global_step - 1, epoch=trainer.current_epoch, **self.last)
        log.info(
            "epoch %d: val_loss %.4f, contrastive top-1 %.4f, top-5 %.4f (%d images, %.1fs)",
            trainer.current_epoch,
            self.last["val_loss"],
            self.last["val_contrastive_top1"],
            self.last["val_contrastive_top5"],
            len(self.loader.store),
            time.perf_counter() - start,
        )


class EarlyStopOnValidation(L.Callback):
    """``--patience``: stop when the validation loss has not fallen by more than ``min_delta`` below its best for
    ``patience`` epochs, and say why in the log.

    Not Lightning's EarlyStopping: the validation runs on rank 0 only (:class:`ValidationMonitor`), so rank 0
    decides and broadcasts the decision to every process. Its best loss and count of epochs without improvement
    are saved in the checkpoint, so a resumed run counts on; the checkpoint is written once more when the run
    stops (the regular one is written at the epoch's last step, before its validation), so resuming a run that
    stopped early trains no further."""

    def __init__(self, validation: ValidationMonitor, patience: int, min_delta: float, checkpoint: Path) -> None:
        self.validation = validation
        self.patience = patience
        self.min_delta = min_delta
        self.checkpoint = checkpoint
        self.best = math.inf
        self.best_epoch = -1
        self.waited = 0
        self.stopped_epoch = -1

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.stopped_epoch >= 0:  # restored from the checkpoint of a run that stopped early
            log.info("this run stopped early after epoch %d (--patience): nothing left to train", self.stopped_epoch)
            trainer.should_stop = True

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        stop = False
        if trainer.global_rank == 0:
            loss = self.validation.last_loss
            if loss < self.best - self.min_delta:
                self.best, self.best_epoch, self.waited = loss, trainer.current_epoch, 0
            else:
                self.waited += 1
            stop = self.waited >= self.patience
            if stop:
                log.info(
                    "stopping early after epoch %d: val_loss has not fallen by more than %g for %d epoch(s) "
                    "(best %.4f at epoch %d)",
                    trainer.current_epoch,
                    self.min_delta,
                    self.waited,
                    self.best,
                    self.best_epoch,
                )
        if trainer.strategy.broadcast(stop, src=0):
            trainer.should_stop = True
            self.stopped_epoch = trainer.current_epoch
            trainer.save_checkpoint(self.checkpoint)

    def state_dict(self) -> dict[str, float | int]:
        return {"best": self.best, "best_epoch": self.best_epoch, "waited": self.waited, "stopped": self.stopped_epoch}

    def load_state_dict(self, state_dict: dict[str, float | int]) -> None:
        self.best = float(state_dict["best"])
        self.best_epoch = int(state_dict["best_epoch"])
        self.waited = int(state_dict["waited"])
        self.stopped_epoch = int(state_dict["stopped"])
