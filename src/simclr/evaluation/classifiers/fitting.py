"""Training a classification head (and optionally the backbone) on labelled images: one loop for
fine-tuning, the supervised baseline and the SGD linear probe.

* Fine-tuning (:mod:`simclr.evaluation.classifiers.finetune`; SimCLR, Chen et al. 2020, arXiv:2002.05709,
  sec. 7 and B.6; SimCLR-Lightning's ``finetune_simclr``; the MLP-head fine-tuning of the CIFAR-10 ResNet-18
  study; sources: docs/SOURCES.md): a trainable copy of the pretrained backbone plus a new head, trained on a stratified
  label subset with random-crop + flip augmentation only.
* The supervised baseline (of the CIFAR-10 ResNet-18 study): the same loop from random or ImageNet
  weights (:mod:`simclr.evaluation.classifiers.supervised`).
* The SGD linear probe with augmentation (:mod:`simclr.evaluation.protocols.linear_sgd`; Foster et al. 2020's
  ``gradient_linear_clf.py``, for sets too large for full-batch L-BFGS): frozen backbone, linear head,
  SGD + cosine, test score of the last epoch.

Model selection only ever looks at a validation split carved from the labelled training images
(early stopping on validation loss, keeping the best epoch's weights, as the CIFAR-10 ResNet-18 study
stops on validation loss with patience 3 and minimum improvement 0.01 and SimCLR-Lightning keeps the best
``validate_loss`` checkpoint); the test split is scored once, at the end. Images stay uint8 in memory and are
augmented as a batch on the training device (:mod:`simclr.evaluation.classifiers.inputs`), in mixed precision
where the device computes it natively; the loss is always fp32.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from simclr.errors import UserError
from simclr.evaluation.classifiers.classifier_heads import Classifier, HeadSpec
from simclr.evaluation.classifiers.inputs import InputPipeline, predict_logits
from simclr.evaluation.classifiers.saved_classifier import save_trained_classifier
from simclr.evaluation.classifiers.training_labels import LabelledSplit
from simclr.evaluation.features import autocast_for
from simclr.evaluation.metrics import classification_metrics
from simclr.evaluation.options import ClassifierTrainingOptions
from simclr.evaluation.recording import base_protocol
from simclr.evaluation.results import make_entry
from simclr.evaluation.session import EvalSession
from simclr.losses.classification import classification_loss
from simclr.optim.build import layer_groups
from simclr.optim.schedules import WarmupCosineLR

__all__ = ["FitResult", "fit_classifier", "train_and_test"]

log = logging.getLogger("simclr")


@dataclass
class FitResult:
    """Per-epoch history and what early stopping decided; ``best_epoch`` is the epoch whose weights the
    model ends with when it was selected on validation, None when the last epoch's weights are kept."""

    history: list[dict[str, Any]]
    epochs_run: int
    best_epoch: int | None
    stopped_early: bool


def _batches(count: int, batch_size: int, generator: torch.Generator) -> list[Tensor]:
    """A shuffled epoch; a last batch of one image is merged into the previous one (BatchNorm in
    training mode cannot normalise a single sample)."""
    chunks = list(torch.randperm(count, generator=generator).split(batch_size))
    if len(chunks) > 1 and chunks[-1].numel() < 2:
        chunks[-2:] = [torch.cat(chunks[-2:])]
    return chunks


def _build_optimizer(model: Classifier, config: ClassifierTrainingOptions) -> torch.optim.Optimizer:
    head, backbone = model.trainable_groups()
    groups: list[dict[str, Any]] = [{"params": head, "lr": config.head_lr}]
    if backbone and config.backbone_lr_factor > 0:
        backbone_lr = config.head_lr * config.backbone_lr_factor
        if config.layer_decay == 1:
            groups.append({"params": backbone, "lr": backbone_lr})
        else:  # the top block at the backbone rate, each one below at layer_decay times the one above
            layers = layer_groups(model.backbone)
            groups += [
                {"params": params, "lr": backbone_lr * config.layer_decay**depth}
                for depth, params in enumerate(reversed(layers))
            ]
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, weight_decay=config.weight_decay)
    return torch.optim.SGD(groups, momentum=config.momentum, nesterov=config.nesterov, weight_decay=config.weight_decay)


class _Steps:
    """The optimiser of one fit with its per-step cosine schedule and (for float16) its gradient scaler."""

    def __init__(
        self, model: Classifier, config: ClassifierTrainingOptions, count: int, device: torch.device, fp16: bool
    ) -> None:
        self.optimizer = _build_optimizer(model, config)
        steps_per_epoch = len(_batches(count, config.batch_size, torch.Generator()))
        self.schedule = WarmupCosineLR(self.optimizer, total_steps=config.epochs * steps_per_epoch, warmup_steps=0)
        self.scaler = torch.amp.GradScaler(device.type, enabled=fp16)

    def take(self, loss: Tensor) -> None:
        """One step down ``loss``'s gradient, and the schedule's next learning rate."""
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.schedule.step()


class _EarlyStopping:
    """The best validation loss so far (improving means by more than ``min_delta``), that epoch's weights with
    ``keep_best``, and whether ``patience`` epochs passed without an improvement."""

    def __init__(self, config: ClassifierTrainingOptions) -> None:
        self.config = config
        self.best_loss = math.inf
        self.best_epoch: int | None = None
        self.best_state: dict[str, Tensor] | None = None
        self.waited = 0

    def should_stop(self, model: nn.Module, epoch: int, val_loss: float) -> bool:
        config = self.config
        if val_loss < self.best_loss - config.min_delta:
            self.best_loss, self.best_epoch, self.waited = val_loss, epoch, 0
            if config.keep_best:
                self.best_state = {key: value.detach().clone() for key, value in model.state_dict().items()}
            return False
        self.waited += 1
        return bool(config.patience) and self.waited >= config.patience and epoch < config.epochs


def _train_one_epoch(
    model: Classifier,
    pipeline: InputPipeline,
    train: tuple[Tensor, Tensor],
    config: ClassifierTrainingOptions,
    generator: torch.Generator,
    steps: _Steps,
    *,
    device: torch.device,
    autocast_dtype: torch.dtype | None,
) -> tuple[float, float]:
    """One shuffled pass over ``train`` with augmented batches; the mean loss and the top-1 of the augmented
    images, as they were trained on."""
    images, labels = train
    model.train()
    total, seen = torch.zeros((), device=device), 0  # summed on the device: no sync per step
    correct = torch.zeros((), device=device, dtype=torch.int64)
    for index in _batches(images.shape[0], config.batch_size, generator):
        inputs = pipeline.augmented(images[index].to(device, non_blocking=True), generator)
        targets = labels[index].to(device, non_blocking=True)
        with autocast_for(device, autocast_dtype):
            logits = model(inputs)
        loss = classification_loss(logits.float(), targets, config.gamma)
        steps.take(loss)
        total += loss.detach() * index.numel()
        correct += (logits.detach().argmax(1) == targets).sum()
        seen += index.numel()
    return float(total) / seen, int(correct) / seen


def _validation_scores(
    model: nn.Module,
    pipeline: InputPipeline,
    val: tuple[Tensor, Tensor],
    config: ClassifierTrainingOptions,
    *,
    device: torch.device,
    autocast_dtype: torch.dtype | None,
) -> dict[str, float]:
    scores = predict_logits(
        model, pipeline, val[0], batch_size=config.eval_batch_size, device=device, autocast_dtype=autocast_dtype
    )
    return {
        "val_loss": float(classification_loss(scores, val[1], config.gamma)),
        "val_top1": float((scores.argmax(1) == val[1]).double().mean()),
    }


def fit_classifier(
    model: Classifier,
    pipeline: InputPipeline,
    train: tuple[Tensor, Tensor],
    val: tuple[Tensor, Tensor] | None,
    config: ClassifierTrainingOptions,
    *,
    device: torch.device,
    autocast_dtype: torch.dtype | None = None,
    name: str = "train",
) -> FitResult:
    """Train ``model`` (already on ``device``) on ``train = (uint8 images, labels)`` with augmented
    batches, cross-entropy and a per-step cosine schedule; after every epoch score ``val`` and stop
    when its loss has not improved by ``min_delta`` for ``patience`` epochs. With ``keep_best`` the
    model ends with the weights of its best validation epoch, else with the last epoch's.
    """
    config.validate()
    if train[0].shape[0] < 2:
        raise UserError(f"{name}: {train[0].shape[0]} training image(s) is too few; use more labels")
    generator = torch.Generator().manual_seed(config.seed)
    steps = _Steps(model, config, train[0].shape[0], device, fp16=autocast_dtype == torch.float16)
    has_val = val is not None and val[0].shape[0] > 0
    history: list[dict[str, Any]] = []
    stopping, stopped = _EarlyStopping(config), False
    for epoch in range(1, config.epochs + 1):
        train_loss, train_top1 = _train_one_epoch(
            model, pipeline, train, config, generator, steps, device=device, autocast_dtype=autocast_dtype
        )
        if not math.isfinite(train_loss):
            raise UserError(f"{name}: the training loss became {train_loss} in epoch {epoch}; lower --lr")
        row: dict[str, Any] = {
            "epoch": epoch,
            "train_loss": train_loss,
            "train_top1": train_top1,
            "val_loss": None,
            "val_top1": None,
        }
        if has_val:
            assert val is not None
            row.update(_validation_scores(model, pipeline, val, config, device=device, autocast_dtype=autocast_dtype))
        history.append(row)
        log.info(
            "%s epoch %d/%d: train loss %.4f%s",
            name,
            epoch,
            config.epochs,
            row["train_loss"],
            f", val loss {row['val_loss']:.4f}, val top-1 {100 * row['val_top1']:.2f}%" if has_val else "",
        )
        if has_val and stopping.should_stop(model, epoch, row["val_loss"]):
            stopped = True
            log.info("%s: validation loss did not improve for %d epochs; stopping early", name, stopping.waited)
            break
    if stopping.best_state is not None:
        model.load_state_dict(stopping.best_state)
    model.eval()
    best_epoch = stopping.best_epoch if config.keep_best else None
    return FitResult(history=history, epochs_run=len(history), best_epoch=best_epoch, stopped_early=stopped)


def train_and_test(
    session: EvalSession,
    *,
    method: str,
    backbone: nn.Module,
    feature_dim: int,
    head: HeadSpec,
    freeze_backbone: bool,
    pipeline: InputPipeline,
    split: LabelledSplit,
    config: ClassifierTrainingOptions,
    protocol: dict[str, Any],
    architecture: tuple[str, str | None] | None = None,
) -> dict[str, Any]:
    """Train ``head`` on ``backbone`` (which this function may modify: pass a copy) on the ``fit``
    images of the session's training split, select on ``val``, score the test split once, keep the
    classifier (:func:`~simclr.evaluation.classifiers.saved_classifier.save_trained_classifier`;
    ``architecture`` is the backbone's (name, stem) when it is not the run's) and return the ``metrics.json``
    entry; ``protocol`` adds to the fields every classifier reports."""
    start = time.perf_counter()
    train_store, test_store = session.splits["train"], session.splits["test"]
    device, dtype = session.device, session.autocast_dtype
    num_classes = train_store.num_classes
    torch.manual_seed(config.seed)  # head initialisation and dropout
    model = Classifier(backbone, head.build(feature_dim, num_classes), freeze_backbone=freeze_backbone)
    model.to(device)
    model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    fit_images = session.splits.rows_in_memory("train", split.fit, method)
    val_images = session.splits.rows_in_memory("train", split.val, method) if split.val.numel() else None
    val = (val_images.images, val_images.labels) if val_images is not None else None
    fit = fit_classifier(
        model,
        pipeline,
        (fit_images.images, fit_images.labels),
        val,
        config,
        device=device,
        autocast_dtype=dtype,
        name=method,
    )
    scores = predict_logits(
        model, pipeline, test_store, batch_size=config.eval_batch_size, device=device, autocast_dtype=dtype
    )
    metrics = classification_metrics(scores, test_store.labels, train_store.class_names)
    metrics["history"] = fit.history
    save_trained_classifier(
        session,
        method,
        model,
        asdict(head),
        image_size=pipeline.size,
        mean=pipeline.mean,
        std=pipeline.std,
        feature_dim=feature_dim,
        architecture=architecture,
    )
    trained = _training_protocol(session, split, head, feature_dim, num_classes, freeze_backbone, config, fit)
    full_protocol = {**trained, **pipeline.describe(), **_precision(dtype), **protocol}
    return make_entry(method, full_protocol, metrics, time.perf_counter() - start)


def _training_protocol(
    session: EvalSession,
    split: LabelledSplit,
    head: HeadSpec,
    feature_dim: int,
    num_classes: int,
    freeze_backbone: bool,
    config: ClassifierTrainingOptions,
    fit: FitResult,
) -> dict[str, Any]:
    """The protocol fields of a trained classifier: its images, head, optimisation and model selection."""
    base = base_protocol(session)
    has_val = bool(split.val.numel())
    return {
        **base,
        "n_train_split": base["n_train"],
        "n_labelled": int(split.labelled.numel()),
        "n_train": int(split.fit.numel()),
        "n_val": int(split.val.numel()),
        "val_split": f"stratified {split.val.numel()} of the labelled images (seed {config.seed + 1})"
        if has_val
        else "none",
        "head": head.kind,
        "head_layers": head.describe(feature_dim, num_classes),
        "freeze_backbone": freeze_backbone,
        **config.describe(freeze_backbone),
        "epochs_run": fit.epochs_run,
        "best_epoch": fit.best_epoch,
        "stopped_early": fit.stopped_early,
        "selection": (
            "weights of the epoch with the lowest validation loss" if has_val and config.keep_best else "last epoch"
        ),
    }


def _precision(dtype: torch.dtype | None) -> dict[str, str]:
    return {"precision": f"autocast {str(dtype).replace('torch.', '')}, fp32 loss" if dtype is not None else "fp32"}
