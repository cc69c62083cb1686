"""The online linear probe (``--online-probe``): solo-learn's protocol of watching a run's features.

A linear classifier is trained on the labels during pretraining, on the backbone features of the training
views the step already computed, detached, so no gradient reaches the backbone and the SimCLR step is the
same with or without it. Its top-1 on the training views is logged per epoch as ``online_linear_top1``, and
on the un-augmented validation images (``--val-fraction``) as ``online_linear_val_top1``.
"""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from simclr.data.store import ImageStore
from simclr.evaluation.features import extract_features
from simclr.training.callbacks import MetricsCSV, _backbone

log = logging.getLogger("simclr")

PROBE_LR = 0.1  # solo-learn's classifier learning rate (SGD, momentum 0.9, no weight decay)


class OnlineLinearProbe(L.Callback):
    """A linear head fed by a forward hook on the backbone: the hook keeps the detached features of each
    training forward pass; after the step, the head takes one SGD step of cross-entropy on them.

    The head has an optimiser of its own (not a parameter group of the run's optimiser), so the run's
    optimiser, schedule and checkpointed state are those of a run without the probe; the head and its
    optimiser travel in the checkpoint as this callback's state. Correct predictions are summed on the
    device and read once per epoch, so the probe adds no host synchronisation per step. With several
    processes every process trains its own head; rank 0's numbers are logged.
    """

    def __init__(
        self,
        feature_dim: int,
        num_classes: int,
        metrics: MetricsCSV,
        val: ImageStore | None = None,
        mean: tuple[float, float, float] = (0.0, 0.0, 0.0),
        std: tuple[float, float, float] = (1.0, 1.0, 1.0),
        lr: float = PROBE_LR,
    ) -> None:
        self.head = nn.Linear(feature_dim, num_classes)
        self.optimizer = torch.optim.SGD(self.head.parameters(), lr=lr, momentum=0.9)
        self.metrics = metrics
        self.val = val
        self.mean, self.std = mean, std
        self._features: Tensor | None = None
        self._hook: Any = None
        self._correct = torch.zeros(())
        self._seen = torch.zeros(())

    def attach(self, backbone: nn.Module) -> None:
        """Keep the detached output of every training forward pass of ``backbone`` (not of evaluations)."""

        def keep(module: nn.Module, inputs: Any, output: Tensor) -> None:
            if module.training and torch.is_grad_enabled():
                self._features = output.detach()

        self._hook = backbone.register_forward_hook(keep)

    def update(self, features: Tensor, labels: Tensor) -> None:
        """One step of the head on ``features`` (``V*B`` rows, the views of ``B`` images) and the images'
        labels; unlabelled images (label -1) are left out."""
        labels = labels.to(features.device).repeat(features.shape[0] // labels.shape[0])
        known = labels >= 0
        features, labels = features[known].float(), labels[known]
        with torch.enable_grad(), torch.autocast(features.device.type, enabled=False):
            logits = self.head(features)
            loss = F.cross_entropy(logits, labels)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        self._correct = self._correct.to(features.device) + (logits.detach().argmax(1) == labels).sum()
        self._seen = self._seen.to(features.device) + labels.numel()

    def epoch_top1(self) -> float:
        """Training top-1 since the last call (one host read), then the counts restart."""
        top1 = float(self._correct / self._seen.clamp(min=1))
        self._correct, self._seen = torch.zeros(()), torch.zeros(())
        return top1

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.head.to(pl_module.device)
        self.attach(_backbone(pl_module))

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._features is not None:
            self.update(self._features, batch["labels"])
            self._features = None

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        values = {"online_linear_top1": self.epoch_top1()}
        if self.val is not None:
            features = extract_features(
                _backbone(pl_module),
                self.val.images,
                self.mean,
                self.std,
                device=pl_module.device,
            )
            with torch.no_grad():
                predicted = self.head(features.to(pl_module.device)).argmax(1).cpu()
            values["online_linear_val_top1"] = float((predicted == self.val.labels).float().mean())
        for name, value in values.items():
            pl_module.log(name, value, rank_zero_only=True)
        self.metrics.write(trainer, step=trainer.global_step - 1, epoch=trainer.current_epoch, **values)
        log.info(
            "epoch %d: online linear probe %s",
            trainer.current_epoch,
            ", ".join(f"{name} {value:.4f}" for name, value in values.items()),
        )

    def state_dict(self) -> dict[str, Any]:
        return {"head": self.head.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.head.load_state_dict(state_dict["head"])
        self.optimizer.load_state_dict(state_dict["optimizer"])
