"""Training a classification head (and optionally the backbone) on labelled images: one loop for
fine-tuning, the supervised baseline and the SGD linear probe.

* Fine-tuning (SimCLR, Chen et al. 2020, arXiv:2002.05709, sec. 7 and B.6; SimCLR-Lightning's
  ``finetune_simclr``; the MLP-head fine-tuning of the CIFAR-10 ResNet-18 study; sources:
  docs/SOURCES.md): a trainable copy of the pretrained backbone plus a new head, trained on a stratified
  label subset with random-crop + flip augmentation only.
* The supervised baseline (of the CIFAR-10 ResNet-18 study): the same loop from random or ImageNet
  weights (:mod:`simclr.evaluation.supervised`).
* The SGD linear probe with augmentation (Foster et al. 2020's ``gradient_linear_clf.py``, for sets too large
  for full-batch L-BFGS): frozen backbone, linear head, SGD + cosine, test score of the last epoch.

Model selection only ever looks at a validation split carved from the labelled training images
(early stopping on validation loss, keeping the best epoch's weights, as the CIFAR-10 ResNet-18 study
stops on validation loss with patience 3 and minimum improvement 0.01 and SimCLR-Lightning keeps the best
``validate_loss`` checkpoint); the test split is scored once, at the end. Images stay uint8 in memory and are
augmented as a batch on the training device (:mod:`simclr.views`), in mixed precision where the
device computes it natively; the loss is always fp32.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from simclr.data.sampling import split_train_val
from simclr.data.streaming import SplitImages
from simclr.errors import UserError
from simclr.evaluation.features import autocast_for, encode_inputs, normalize_images
from simclr.evaluation.heads import Classifier, HeadSpec
from simclr.evaluation.label_subsets import choose_labelled, label_subset
from simclr.evaluation.metrics import classification_metrics
from simclr.evaluation.options import FinetuneOptions, LinearEvalOptions, TrainConfig
from simclr.evaluation.results import make_entry
from simclr.losses.classification import classification_loss
from simclr.optim.schedules import WarmupCosineLR
from simclr.views.config import ViewConfig
from simclr.views.ops import resized_crop
from simclr.views.params import sample_view_params
from simclr.views.pipeline import SimCLRViews

if TYPE_CHECKING:
    from simclr.evaluation.session import EvalSession

__all__ = [
    "FitResult",
    "InputPipeline",
    "LabelledSplit",
    "fit_classifier",
    "predict",
    "run_finetune",
    "split_for_options",
    "split_labelled",
    "train_and_test",
    "train_linear_sgd",
]

log = logging.getLogger("simclr")

DEFAULT_CROP_SCALE: tuple[float, float] = (0.08, 1.0)
"""Inception-style random resized crop, as SimCLR fine-tunes (Appendix B.6) and Foster et al.'s SGD probe trains."""


# -- inputs -------------------------------------------------------------------------------------
class InputPipeline:
    """uint8 batches on the device -> normalised float inputs of side ``size``, channels_last.

    Training inputs get a random resized crop and a horizontal flip per image (no colour distortion:
    SimCLR fine-tunes with crop + flip only, Appendix B.6); evaluation inputs are the whole image,
    resized to ``size`` when the stored images have another size (e.g. 32px CIFAR upsampled to 224px
    for ImageNet weights, as the CIFAR-10 ResNet-18 study resizes CIFAR-10).
    """

    def __init__(
        self,
        size: int,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
        crop_scale: tuple[float, float] = DEFAULT_CROP_SCALE,
    ) -> None:
        self.size = size
        self.mean, self.std = mean, std
        self.config = ViewConfig(
            size=size, crop_scale=crop_scale, jitter_p=0.0, grayscale_p=0.0, blur_p=0.0, mean=mean, std=std
        )
        # SimCLRViews insists on >= 2 views; only its one-view-per-image ``apply`` is used here.
        self._views = SimCLRViews(self.config, n_views=2)

    def augmented(self, images: Tensor, generator: torch.Generator) -> Tensor:
        params = sample_view_params(
            images.shape[0], (images.shape[-2], images.shape[-1]), self.config, generator, device=images.device
        )
        return self._views.apply(images, params)

    def plain(self, images: Tensor) -> Tensor:
        x = normalize_images(images, self.mean, self.std)
        if x.shape[-2:] != (self.size, self.size):
            whole = torch.tensor([[0.0, 0.0, 1.0, 1.0]], device=x.device).expand(x.shape[0], 4)
            x = resized_crop(x, whole, self.size)
        return x.contiguous(memory_format=torch.channels_last)

    def describe(self) -> dict[str, str]:
        lo, hi = self.config.crop_scale
        return {
            "augmentation": f"random resized crop to {self.size}px (area {lo:g}-{hi:g}, aspect 3/4-4/3) "
            "+ horizontal flip (p 0.5); no colour jitter, grayscale or blur",
            "eval_transform": f"whole image resized to {self.size}px (identity at the stored size), normalised",
            "normalization": f"mean {list(self.mean)}, std {list(self.std)}",
        }


@dataclass
class LabelledSplit:
    """Indices into the training split: the labelled subset, and its fit and validation parts."""

    labelled: Tensor
    fit: Tensor
    val: Tensor


def split_labelled(
    labels: Tensor,
    *,
    fraction: float | None = None,
    per_class: int | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    labelled: Tensor | None = None,
) -> LabelledSplit:
    """Keep a stratified label subset (all labels when neither ``fraction`` nor ``per_class`` is
    given; the indices ``labelled`` when given), then hold out a stratified ``val_fraction`` of it for
    model selection (``0``: none).

    The subset is drawn with ``seed`` and the validation part with ``seed + 1``; fit and validation
    are disjoint and together are the labelled subset.
    """
    if labelled is None:
        if fraction is None and per_class is None:
            fraction = 1.0
        labelled = label_subset(labels, fraction=fraction, per_class=per_class, seed=seed)
    if not 0.0 <= val_fraction < 1.0:
        raise UserError(f"--val-fraction must be in [0, 1) (0: no validation split), got {val_fraction}")
    if val_fraction == 0.0:
        return LabelledSplit(labelled, labelled, labelled[:0])
    fit, val = split_train_val(labels[labelled], val_fraction, seed + 1)
    return LabelledSplit(labelled, labelled[fit], labelled[val])


def split_for_options(session: EvalSession, config: FinetuneOptions) -> tuple[LabelledSplit, dict[str, Any]]:
    """The fit / validation split a fine-tuning (or supervised baseline) trains on, from its label options,
    and the protocol fields that name the labels used."""
    labels = session.stores["train"].labels
    labelled, protocol = choose_labelled(
        labels,
        dataset=session.config.dataset,
        fraction=config.label_fraction,
        per_class=config.labels_per_class,
        subset=config.subset,
        seed=config.seed,
    )
    return split_labelled(labels, labelled=labelled, val_fraction=config.val_fraction, seed=config.seed), protocol


# -- the loop -----------------------------------------------------------------------------------
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


def _build_optimizer(model: Classifier, config: TrainConfig) -> torch.optim.Optimizer:
    head, backbone = model.trainable_groups()
    groups: list[dict[str, Any]] = [{"params": head, "lr": config.head_lr}]
    if backbone and config.backbone_lr_factor > 0:
        groups.append({"params": backbone, "lr": config.head_lr * config.backbone_lr_factor})
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, weight_decay=config.weight_decay)
    return torch.optim.SGD(groups, momentum=config.momentum, nesterov=config.nesterov, weight_decay=config.weight_decay)


def predict(
    model: nn.Module,
    pipeline: InputPipeline,
    images: Tensor | SplitImages,
    *,
    batch_size: int = 512,
    device: torch.device,
    autocast_dtype: torch.dtype | None = None,
) -> Tensor:
    """Logits (float32, CPU) of un-augmented images (a tensor, or a split held or streamed), in eval mode;
    the mode is restored afterwards."""
    batches = (
        images.batches(batch_size)
        if not isinstance(images, Tensor)
        else (images[start : start + batch_size] for start in range(0, images.shape[0], batch_size))
    )
    inputs = (pipeline.plain(batch.to(device, non_blocking=True)) for batch in batches)
    return encode_inputs(model, inputs, device=device, autocast_dtype=autocast_dtype)


def fit_classifier(
    model: Classifier,
    pipeline: InputPipeline,
    train: tuple[Tensor, Tensor],
    val: tuple[Tensor, Tensor] | None,
    config: TrainConfig,
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
    images, labels = train
    if images.shape[0] < 2:
        raise UserError(f"{name}: {images.shape[0]} training image(s) is too few; use more labels")
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = _build_optimizer(model, config)
    steps_per_epoch = len(_batches(images.shape[0], config.batch_size, torch.Generator()))
    total_steps = config.epochs * steps_per_epoch
    schedule = WarmupCosineLR(optimizer, total_steps=total_steps, warmup_steps=0)
    scaler = torch.amp.GradScaler(device.type, enabled=autocast_dtype == torch.float16)
    has_val = val is not None and val[0].shape[0] > 0
    history: list[dict[str, Any]] = []
    best_loss, best_epoch, best_state, waited, stopped = math.inf, None, None, 0, False
    for epoch in range(1, config.epochs + 1):
        model.train()
        total, seen = torch.zeros((), device=device), 0  # summed on the device: no sync per step
        correct = torch.zeros((), device=device, dtype=torch.int64)
        for index in _batches(images.shape[0], config.batch_size, generator):
            inputs = pipeline.augmented(images[index].to(device, non_blocking=True), generator)
            targets = labels[index].to(device, non_blocking=True)
            with autocast_for(device, autocast_dtype):
                logits = model(inputs)
            loss = classification_loss(logits.float(), targets, config.gamma)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            schedule.step()
            total += loss.detach() * index.numel()
            correct += (logits.detach().argmax(1) == targets).sum()
            seen += index.numel()
        train_loss = float(total) / seen
        if not math.isfinite(train_loss):
            raise UserError(f"{name}: the training loss became {train_loss} in epoch {epoch}; lower --lr")
        row: dict[str, Any] = {
            "epoch": epoch,
            "train_loss": train_loss,
            "train_top1": int(correct) / seen,  # of the augmented training images, as they were trained on
            "val_loss": None,
            "val_top1": None,
        }
        if has_val:
            assert val is not None
            scores = predict(
                model, pipeline, val[0], batch_size=config.eval_batch_size, device=device, autocast_dtype=autocast_dtype
            )
            row["val_loss"] = float(classification_loss(scores, val[1], config.gamma))
            row["val_top1"] = float((scores.argmax(1) == val[1]).double().mean())
        history.append(row)
        log.info(
            "%s epoch %d/%d: train loss %.4f%s",
            name,
            epoch,
            config.epochs,
            row["train_loss"],
            f", val loss {row['val_loss']:.4f}, val top-1 {100 * row['val_top1']:.2f}%" if has_val else "",
        )
        if not has_val:
            continue
        if row["val_loss"] < best_loss - config.min_delta:
            best_loss, best_epoch, waited = row["val_loss"], epoch, 0
            if config.keep_best:
                best_state = {key: value.detach().clone() for key, value in model.state_dict().items()}
        else:
            waited += 1
            if config.patience and waited >= config.patience and epoch < config.epochs:
                stopped = True
                log.info("%s: validation loss did not improve for %d epochs; stopping early", name, waited)
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return FitResult(
        history=history,
        epochs_run=len(history),
        best_epoch=best_epoch if config.keep_best else None,
        stopped_early=stopped,
    )


# -- one evaluation from a session ----------------------------------------------------------------
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
    config: TrainConfig,
    protocol: dict[str, Any],
    architecture: tuple[str, str | None] | None = None,
) -> dict[str, Any]:
    """Train ``head`` on ``backbone`` (which this function may modify: pass a copy) on the ``fit``
    images of the session's training split, select on ``val``, score the test split once, keep the
    classifier (:meth:`EvalSession.save_classifier`; ``architecture`` is the backbone's (name, stem) when
    it is not the run's) and return the ``metrics.json`` entry; ``protocol`` adds to the fields every
    classifier reports."""
    start = time.perf_counter()
    train_store, test_store = session.stores["train"], session.stores["test"]
    device, dtype = session.device, session.autocast_dtype
    num_classes = train_store.num_classes
    torch.manual_seed(config.seed)  # head initialisation and dropout
    model = Classifier(backbone, head.build(feature_dim, num_classes), freeze_backbone=freeze_backbone)
    model.to(device)
    model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    fit_images = session.rows_in_memory("train", split.fit, method)
    val_images = session.rows_in_memory("train", split.val, method) if split.val.numel() else None
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
    scores = predict(
        model, pipeline, test_store, batch_size=config.eval_batch_size, device=device, autocast_dtype=dtype
    )
    metrics = classification_metrics(scores, test_store.labels, train_store.class_names)
    metrics["history"] = fit.history
    session.save_classifier(
        method,
        model,
        asdict(head),
        image_size=pipeline.size,
        mean=pipeline.mean,
        std=pipeline.std,
        feature_dim=feature_dim,
        architecture=architecture,
    )
    base = session.base_protocol()
    full_protocol = {
        **base,
        "n_train_split": base["n_train"],
        "n_labelled": int(split.labelled.numel()),
        "n_train": int(split.fit.numel()),
        "n_val": int(split.val.numel()),
        "val_split": f"stratified {split.val.numel()} of the labelled images (seed {config.seed + 1})"
        if val
        else "none",
        "head": head.kind,
        "head_layers": head.describe(feature_dim, num_classes),
        "freeze_backbone": freeze_backbone,
        **config.describe(freeze_backbone),
        "epochs_run": fit.epochs_run,
        "best_epoch": fit.best_epoch,
        "stopped_early": fit.stopped_early,
        "selection": (
            "weights of the epoch with the lowest validation loss"
            if val is not None and config.keep_best
            else "last epoch"
        ),
        **pipeline.describe(),
        "precision": f"autocast {str(dtype).replace('torch.', '')}, fp32 loss" if dtype is not None else "fp32",
        **protocol,
    }
    return make_entry(method, full_protocol, metrics, time.perf_counter() - start)


def run_finetune(session: EvalSession, options: FinetuneOptions | None = None) -> dict[str, Any]:
    """Fine-tune a copy of the run's backbone with a new head on a label subset; the ``finetune``
    entry of the results. The session's own backbone is never modified."""
    given = options or FinetuneOptions()
    config = replace(given, seed=session.options.seed, eval_batch_size=session.options.batch_size)
    config.validate()
    session.require_classes("fine-tuning")
    loaded = session.backbone
    split, labels_used = split_for_options(session, config)
    info = session.info
    return train_and_test(
        session,
        method="finetune",
        backbone=copy.deepcopy(loaded.module),
        feature_dim=loaded.feature_dim,
        head=config.head_spec(),
        freeze_backbone=config.freeze_backbone,
        pipeline=InputPipeline(session.image_size, info.mean, info.std, (config.crop_min_scale, 1.0)),
        split=split,
        config=config,
        protocol={
            **labels_used,
            "image_size": session.image_size,
        },
    )


LINEAR_SGD_BATCH_SIZE = 512
LINEAR_SGD_WEIGHT_DECAY = 1e-6
LINEAR_SGD_MOMENTUM = 0.9


def train_linear_sgd(
    session: EvalSession, options: LinearEvalOptions | None = None, *, batch_size: int = LINEAR_SGD_BATCH_SIZE
) -> dict[str, Any]:
    """Foster et al. 2020's ``gradient_linear_clf.py`` protocol: a linear classifier on the frozen backbone,
    trained by SGD (lr 0.1, momentum 0.9, optional Nesterov, weight decay 1e-6, batch 512, 90 epochs)
    with a per-step cosine schedule on crop + flip augmented images, whose features are computed
    under ``no_grad`` in eval mode every batch (the backbone never changes, not even its BatchNorm
    statistics). The test split is scored with the **last** epoch's classifier: Foster et al.'s code
    reports the best test accuracy over epochs, which selects on test. The ``val_fraction`` part of train is only
    monitored (``history``), never used to select; ``0`` trains on all of train. ``standardize`` puts
    a BatchNorm without affine parameters before the linear layer (see
    :mod:`simclr.evaluation.heads`). Returns the ``linear_sgd`` entry; records nothing.
    """
    options = options or LinearEvalOptions(method="sgd")
    standardize, val_fraction = options.standardize, options.val_fraction
    session.require_classes("SGD linear evaluation")
    config = TrainConfig(
        epochs=options.epochs,
        batch_size=batch_size,
        optimizer="sgd",
        lr=options.lr,
        backbone_lr_scale=0.0,
        weight_decay=LINEAR_SGD_WEIGHT_DECAY,
        momentum=LINEAR_SGD_MOMENTUM,
        nesterov=options.nesterov,
        patience=0,
        keep_best=False,
        loss=options.loss,
        focal_gamma=options.focal_gamma,
        eval_batch_size=session.options.batch_size,
        seed=session.options.seed,
    )
    config.validate()
    loaded = session.backbone
    split = split_labelled(session.stores["train"].labels, val_fraction=val_fraction, seed=config.seed)
    info = session.info
    return train_and_test(
        session,
        method="linear_sgd",
        backbone=copy.deepcopy(loaded.module),
        feature_dim=loaded.feature_dim,
        head=HeadSpec(kind="linear", standardize=standardize),
        freeze_backbone=True,
        pipeline=InputPipeline(session.image_size, info.mean, info.std, DEFAULT_CROP_SCALE),
        split=split,
        config=config,
        protocol={
            "classifier": "linear, frozen backbone in eval mode (features under no_grad every batch)",
            "standardize": standardize,
            "val_use": "monitoring only (history); the test score is the last epoch's" if split.val.numel() else "none",
            "image_size": session.image_size,
        },
    )
