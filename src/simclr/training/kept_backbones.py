"""Backbones kept during pretraining beside ``last.ckpt``: every N epochs (``--keep-every-epochs``) and the
K epochs with the lowest validation loss (``--save-top-k``), so a run can be scanned or its best epoch
evaluated (``simclr evaluate RUN --checkpoint best|epoch-N|all``)."""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any

import lightning as L
import torch

from simclr.models.backbone_file import BackboneMetadata, write_backbone
from simclr.rundir import RunDir
from simclr.training.callbacks import _backbone
from simclr.training.validation import ValidationMonitor

log = logging.getLogger("simclr")


class KeptBackbones(L.Callback):
    """Writes ``checkpoints/epoch-NNNN.safetensors`` (NNNN: epochs trained) with the backbone writer of the
    final export, and ``checkpoints/best.safetensors`` for the lowest validation loss.

    A file kept only for its rank is deleted when K better epochs push it out; one kept every N epochs
    stays. Weights that are not all finite are never written. The ranking travels in the Lightning
    checkpoint, so a resumed run continues it. It must run after the :class:`ValidationMonitor` it reads.
    """

    def __init__(
        self,
        run: RunDir,
        metadata: BackboneMetadata,
        every_epochs: int = 0,
        top_k: int = 0,
        validation: ValidationMonitor | None = None,
    ) -> None:
        if top_k > 0 and validation is None:
            raise ValueError("top_k needs the validation monitor whose loss ranks the epochs")
        self.run = run
        self.metadata = metadata
        self.every_epochs = every_epochs
        self.top_k = top_k
        self.validation = validation
        self.ranked: list[tuple[float, int]] = []  # (validation loss, epochs trained), best first

    def _periodic(self, epochs: int) -> bool:
        return self.every_epochs > 0 and epochs % self.every_epochs == 0

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_rank != 0:
            return
        epochs = trainer.current_epoch + 1
        ranked = self.ranked
        if self.top_k > 0 and self.validation is not None and math.isfinite(self.validation.last_loss):
            ranked = sorted([*self.ranked, (self.validation.last_loss, epochs)])[: self.top_k]
        in_top_k = any(epoch == epochs for _, epoch in ranked)
        if not (self._periodic(epochs) or in_top_k):
            return
        tensors = _backbone(pl_module).state_dict()
        if not all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point()):
            log.warning("epoch %d: the backbone has non-finite weights; not keeping it", epochs)
            return
        self.run.checkpoints.mkdir(parents=True, exist_ok=True)
        meta = dataclasses.replace(self.metadata, global_step=trainer.global_step, epoch=trainer.current_epoch)
        write_backbone(self.run.kept_backbone(epochs), tensors, meta)
        if in_top_k and ranked[0][1] == epochs:
            write_backbone(self.run.best_backbone, tensors, meta)
        for _, dropped in set(self.ranked) - set(ranked):
            if not self._periodic(dropped):
                self.run.kept_backbone(dropped).unlink(missing_ok=True)
        self.ranked = ranked

    def state_dict(self) -> dict[str, Any]:
        return {"ranked": [[loss, epochs] for loss, epochs in self.ranked]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.ranked = [(float(loss), int(epochs)) for loss, epochs in state_dict.get("ranked", [])]
