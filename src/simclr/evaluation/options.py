"""The settings of the evaluation commands, one dataclass each; the CLI generates their flags from the fields.

:class:`EvalSessionOptions` are the flags every evaluation command shares; each command adds its own
(:class:`EvaluateCommandOptions` for ``simclr evaluate``, :class:`LinearEvalOptions`, ...). This module imports no
torch, so ``simclr --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
from dataclasses import dataclass
from typing import Any

from simclr.data.reading import IMAGE_SIDE, DataDir, DecodingWorkers, MemoryBudget, TrainingImagesLimit
from simclr.device_settings import ForwardPasses
from simclr.errors import UserError
from simclr.optim.early_stopping import EarlyStopping
from simclr.ranges import (
    COUNT,
    FRACTION_BELOW_ONE,
    NON_NEGATIVE,
    OPEN_FRACTION,
    POSITIVE,
    SCALE,
    SEED,
    at_least,
)
from simclr.settings import check_values, setting, shared_setting

FINETUNE_OPTIMIZERS: tuple[str, ...] = ("adam", "sgd")
DEFAULT_FINETUNE_LR: dict[str, float] = {"adam": 1e-3, "sgd": 0.1}
"""Peak learning rate of the head: Adam 1e-3 (SimCLR-Lightning and the CIFAR-10 ResNet-18 study fine-tune
with Adam's default), SGD 0.1 (Foster et al. 2020's linear SGD classifier). A trained backbone gets
``backbone_lr_scale`` times it."""
DEFAULT_BACKBONE_LR_SCALE = 0.1

L2_GRID_TEXT = "1e-8:1e-1:8"  # Foster et al. 2020: 10^linspace(-8, -1, 8)


def parse_l2_grid(text: str) -> tuple[float, ...]:
    """``LOW:HIGH:N``, N values log-spaced from LOW to HIGH, or a comma list of values.

    >>> [f"{v:g}" for v in parse_l2_grid("1e-4:1e-2:3")]
    ['0.0001', '0.001', '0.01']
    """
    try:
        if ":" in text:
            low_text, high_text, count = text.split(":")
            low, high, n = math.log10(float(low_text)), math.log10(float(high_text)), int(count)
            if n < 1:
                raise ValueError
            if n == 1:
                return (10.0**low,)
            step = (high - low) / (n - 1)
            return tuple(10.0 ** (low + i * step) for i in range(n))
        values = tuple(float(part) for part in text.split(",") if part.strip())
        if not values or any(v < 0 for v in values):
            raise ValueError
        return values
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"bad L2 grid {text!r}; use LOW:HIGH:N, log-spaced (e.g. {L2_GRID_TEXT}), or a list like 1e-4,1e-3"
        ) from None


DEFAULT_L2_GRID: tuple[float, ...] = parse_l2_grid(L2_GRID_TEXT)


def parse_head_dims(text: str) -> tuple[int, ...]:
    """Widths of an mlp head's hidden layers, first to last: ``256,128,64``.

    >>> parse_head_dims("256,128,64")
    (256, 128, 64)
    """
    try:
        widths = tuple(int(part) for part in text.split(","))
        if not widths or min(widths) < 1:
            raise ValueError
        return widths
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"bad head widths {text!r}; use positive whole numbers like 256,128,64"
        ) from None


def parse_label_fractions(text: str) -> tuple[float, ...]:
    """``"0.01,0.1,1"`` -> the fractions in increasing order; each in (0, 1].

    >>> parse_label_fractions("1,0.1, 0.01")
    (0.01, 0.1, 1.0)
    """
    try:
        values = sorted({float(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise UserError(
            f"--label-fractions {text!r}: give fractions in (0, 1] separated by commas, e.g. 0.1,1"
        ) from None
    if not values or not all(math.isfinite(v) and 0.0 < v <= 1.0 for v in values):
        raise UserError(f"--label-fractions {text!r}: every fraction must be in (0, 1], e.g. 0.01,0.1,0.5,1")
    return tuple(values)


DEFAULT_MAX_ITER = 500  # Foster et al.'s 500 L-BFGS steps


def check_tta(views: int) -> None:
    if views == 1 or views < 0:
        raise UserError(f"--tta {views}: pass 0 (no test-time augmentation) or a number of views >= 2")


@dataclass  # not frozen: the shared groups it inherits are the training configs' too, which are not
class EvalSessionOptions(ForwardPasses, MemoryBudget, TrainingImagesLimit, DecodingWorkers, DataDir):
    """What every evaluation command shares, the settings of its :class:`~simclr.evaluation.session.EvalSession`:
    where the data is, how much of it, on which device, with which seed and memory budget. The settings other
    commands share too are inherited from their one definition (:mod:`simclr.data.reading`,
    :mod:`simclr.device_settings`)."""

    limit_test_images: int | None = setting(
        "use a stratified subset of N test images (default: all)", None, metavar="N", group="data", within=COUNT
    )
    seed: int = setting("seed of splits, subsets and fits", 0, within=SEED)
    train_split: str = setting(
        "what classifiers are fitted on: the train split, or the valid/ folder of an image folder with train/, "
        "valid/ and test/ (the sthalles/SimCLR fork's probe)",
        "train",
        choices=("train", "valid"),
    )
    random_weights: bool = setting(
        "evaluate the same architecture with random initial weights (the baseline to beat); results go to the "
        "run's random-weights evaluation folder unless --eval-dir is given",
        False,
    )
    use_cache: bool = setting("reuse cached features (--no-cache recomputes them)", True, flag="cache")

    def validate(self) -> None:
        """A memory budget that cannot be read fails before anything is loaded."""
        self.memory_budget_bytes()


@dataclass(frozen=True)
class L2FitOptions:
    """An L-BFGS fit on frozen features with the L2 weight chosen on a validation split of train."""

    standardize: bool = setting("standardise features with train statistics", True)
    l2_grid: tuple[float, ...] = setting(
        f"L2 weights tried on validation: LOW:HIGH:N log-spaced, or a list (default: {L2_GRID_TEXT})",
        DEFAULT_L2_GRID,
        parse=parse_l2_grid,
        metavar="GRID",
        within=NON_NEGATIVE,
    )
    val_fraction: float = setting("part of train held out to choose the L2 weight", 0.1, within=OPEN_FRACTION)
    max_iter: int = setting("L-BFGS iterations per fit", DEFAULT_MAX_ITER, within=COUNT)


@dataclass(frozen=True)
class ClassifierLoss:
    """What a trained classifier minimises: cross-entropy, or the sthalles/SimCLR fork's focal loss."""

    loss: str = setting(
        "classification loss: ce (cross-entropy) or focal (the sthalles/SimCLR fork's probe)",
        "ce",
        choices=("ce", "focal"),
    )
    focal_gamma: float = setting("--loss focal: the focusing parameter gamma", 2.0, within=NON_NEGATIVE)

    @property
    def gamma(self) -> float:
        """The focal loss's gamma, 0 for cross-entropy."""
        return self.focal_gamma if self.loss == "focal" else 0.0

    def describe_loss(self) -> str:
        return f"focal loss (gamma {self.focal_gamma:g})" if self.loss == "focal" else "cross-entropy"


@dataclass(frozen=True)
class LinearEvalOptions(L2FitOptions, ClassifierLoss):
    """``simclr linear-eval``."""

    method: str = setting(
        "lbfgs: full-batch on cached features; sgd: mini-batch with crop/flip augmentation",
        "lbfgs",
        choices=("lbfgs", "sgd"),
    )
    tta: int = setting("average the features of N augmented views (0: none)", 0, metavar="N", within=NON_NEGATIVE)
    epochs: int = setting("--method sgd: epochs", 90, within=COUNT)
    lr: float = setting("--method sgd: learning rate", 0.1, within=POSITIVE)
    nesterov: bool = setting("--method sgd: Nesterov momentum", False)

    def validate(self) -> None:
        check_tta(self.tta)


@dataclass(frozen=True)
class RegressOptions(L2FitOptions):
    """``simclr regress``: Spirograph's generative factors from frozen features."""

    passes: int = setting("average the features of this many fresh renders", 1, within=COUNT)


@dataclass(frozen=True)
class KNNOptions:
    """``simclr knn``."""

    k: tuple[int, ...] = setting("numbers of neighbours", (200, 20), nargs="+", within=COUNT)
    temperature: float = setting("vote weight exp(similarity / T)", 0.1, within=POSITIVE)


@dataclass(frozen=True)
class EvaluateCommandOptions:
    """``simclr evaluate``: the dataset's standard protocol, plots and the report."""

    method: str = setting("2-D map of the test embeddings", "tsne", choices=("tsne", "umap"))
    perplexity: float | None = setting("t-SNE perplexity (default: min(30, (points - 1) / 3))", None, within=POSITIVE)
    neighbors: int = setting("UMAP neighbours", 15, within=at_least(2, "UMAP joins each point to others"))
    supervised_map: bool = setting(
        "UMAP guided by the test labels (SimCLR-Lightning's supervised UMAP: how the classes separate, not how the "
        "features cluster unaided)",
        False,
    )
    map_layer: str = setting(
        "what the map shows: backbone features, or the projection head's output (needs the run's last checkpoint)",
        "backbone",
        choices=("backbone", "projection"),
    )
    tta: int = setting("average the features of N augmented views (0: none)", 0, metavar="N", within=NON_NEGATIVE)
    plots: bool = setting("draw the plots and write the report (--no-plots: numbers only)", True)
    invariance: bool = setting(
        "also measure invariance to the augmentation: conditional variance and how well a linear map predicts "
        "the view parameters (Foster et al. 2020); lower = more invariant",
        False,
    )
    invariance_views: int = setting(
        "views per test image for the conditional variance", 10, within=at_least(2, "a variance needs two views")
    )
    label_fractions: str | None = setting(
        "also fit the linear probe on these fractions of the training labels (stratified, seeded), e.g. "
        "0.01,0.1,0.5,1: a table and a label-efficiency curve",
        None,
        metavar="F,F,...",
    )
    robustness: bool = setting(
        "also score the linear read-out on shifted test images (brightness, colour jitter; Spirograph: factor "
        "MSE): a table and a plot against the clean score",
        False,
    )
    checkpoint: str | None = setting(
        "evaluate a kept backbone instead of the final one: best, epoch-N, or all (kNN of every kept backbone, "
        "a table and a plot of accuracy against epoch)",
        None,
        metavar="NAME",
    )
    scan_linear: bool = setting("with --checkpoint all: also the linear probe of every kept backbone", False)

    def validate(self) -> None:
        check_tta(self.tta)
        if self.label_fractions is not None:
            parse_label_fractions(self.label_fractions)
        if self.supervised_map and self.method != "umap":
            raise UserError("--supervised-map is a UMAP option; add --method umap")
        # asked for by name, so refused before minutes of evaluation (the default t-SNE map is left out instead)
        if self.plots and self.method == "umap" and importlib.util.find_spec("umap") is None:
            raise UserError("--method umap needs umap-learn; pip install 'simclr-kit[umap]' adds it")


@dataclass(frozen=True)
class ClassifierTrainingOptions(ClassifierLoss):
    """How the classifier loop of :mod:`simclr.evaluation.classifiers.fitting` trains (fine-tuning, the supervised
    baseline, the SGD linear probe). ``patience`` 0 never stops early; ``keep_best`` restores the weights of
    the epoch with the lowest validation loss (else the last epoch's weights are scored). ``eval_batch_size``
    and ``seed`` come from the evaluation session, not from flags of their own."""

    epochs: int = setting("most epochs (early stopping may end sooner)", 20, within=COUNT)
    batch_size: int = setting(
        "images per training step",
        256,
        flag="train_batch_size",
        within=at_least(2, "BatchNorm needs 2 images"),
    )
    optimizer: str = setting("adam, or sgd with momentum", "adam", choices=FINETUNE_OPTIMIZERS)
    lr: float | None = setting("peak learning rate of the head (default: adam 1e-3, sgd 0.1)", None, within=POSITIVE)
    backbone_lr_scale: float | None = setting(
        f"backbone learning rate = S x --lr (default {DEFAULT_BACKBONE_LR_SCALE})",
        None,
        metavar="S",
        within=NON_NEGATIVE,
    )
    layer_decay: float = setting(
        "layer-wise learning-rate decay: the backbone's last block trains at the backbone rate, each block below "
        "it at D times the one above, the stem last (BEiT; 1: one rate for the whole backbone)",
        1.0,
        metavar="D",
        within=SCALE,
    )
    weight_decay: float = setting("weight decay (L2 in Adam)", 1e-4, within=NON_NEGATIVE)
    momentum: float = setting("--optimizer sgd: momentum", 0.9, within=FRACTION_BELOW_ONE)
    nesterov: bool = setting("--optimizer sgd: Nesterov momentum", False)
    patience: int = shared_setting(EarlyStopping, "patience", default=3)
    min_delta: float = shared_setting(EarlyStopping, "min_delta", default=0.01)
    keep_best: bool = setting("score the weights of the best validation epoch (--no-keep-best: the last)", True)
    eval_batch_size: int = setting("images per forward pass when scoring", 512, cli=False, within=COUNT)
    seed: int = setting("seed of the split, the order and the head", 0, cli=False, within=SEED)

    @property
    def head_lr(self) -> float:
        return DEFAULT_FINETUNE_LR[self.optimizer] if self.lr is None else float(self.lr)

    @property
    def backbone_lr_factor(self) -> float:
        return DEFAULT_BACKBONE_LR_SCALE if self.backbone_lr_scale is None else float(self.backbone_lr_scale)

    def validate(self) -> None:
        """Raise :class:`UserError` naming the first bad flag: every number against its range (these options
        are also built in Python, without :func:`~simclr.settings.build_settings`), then the optimiser."""
        check_values(self)
        if self.optimizer not in FINETUNE_OPTIMIZERS:
            raise UserError(f"unknown optimizer {self.optimizer!r}; use one of {', '.join(FINETUNE_OPTIMIZERS)}")

    def describe(self, frozen: bool) -> dict[str, Any]:
        """The optimisation part of a result's protocol."""
        block: dict[str, Any] = {
            "optimizer": self.optimizer,
            "lr": self.head_lr,
            "backbone_lr": None if frozen else self.head_lr * self.backbone_lr_factor,
            "layer_decay": None if frozen else self.layer_decay,
            "lr_schedule": "cosine per step to 0, no warm-up",
            "weight_decay": self.weight_decay,
            "batch_size": self.batch_size,
            "epochs_max": self.epochs,
            "patience": self.patience,
            "min_delta": self.min_delta,
            "loss": self.describe_loss(),
        }
        if self.optimizer == "sgd":
            block.update(momentum=self.momentum, nesterov=self.nesterov)
        else:
            block["betas"] = [0.9, 0.999]
        return block


@dataclass(frozen=True)
class FinetuneOptions(ClassifierTrainingOptions):
    """``simclr finetune``: the loop's settings plus the label subset, the head and the augmentation."""

    label_fraction: float | None = setting(
        "stratified fraction of the training labels to use, in (0, 1] (default: all)",
        None,
        metavar="F",
        exclusive="labels",
        within=SCALE,
    )
    labels_per_class: int | None = setting(
        "use N labelled images per class (all of a smaller class)",
        None,
        metavar="N",
        exclusive="labels",
        within=COUNT,
    )
    subset: str | None = setting(
        "train on the labelled part of a subset file of 'simclr data split' (FILE, or FILE:labelled)",
        None,
        metavar="FILE",
        exclusive="labels",
        path=True,
    )
    freeze_backbone: bool = setting("train only the head; the backbone stays in eval mode with fixed weights", False)
    head: str = setting(
        "mlp: Linear-BN-ReLU-Dropout-Linear; linear: one Linear layer", "mlp", choices=("linear", "mlp")
    )
    hidden_dim: int = setting("hidden units of the mlp head", 512, within=COUNT)
    head_dims: tuple[int, ...] | None = setting(
        "widths of the mlp head's hidden layers, e.g. 256,128,64 (the rittik9/SimCLR notebooks' head; "
        "replaces --hidden-dim)",
        None,
        parse=parse_head_dims,
        metavar="W,W,...",
        within=COUNT,
    )
    dropout: float = setting("dropout of the mlp head", 0.5, within=FRACTION_BELOW_ONE)
    val_fraction: float = setting(
        "stratified part of the labelled images held out for early stopping (0: none, last epoch)",
        0.1,
        within=FRACTION_BELOW_ONE,
    )
    crop_min_scale: float = setting("smallest crop area of the training augmentation", 0.08, within=SCALE)


@dataclass(frozen=True)
class SupervisedOptions(FinetuneOptions):
    """``simclr supervised``: the run's architecture trained on the labels, from random initialisation or from
    torchvision's ImageNet weights (the backbone learning rate then defaults to 1.0 and 0.1 x --lr)."""

    backbone_lr_scale: float | None = setting(
        "backbone learning rate = S x --lr (default: 1.0 with --weights none, 0.1 with --weights imagenet)",
        None,
        metavar="S",
        within=NON_NEGATIVE,
    )
    weights: str = setting(
        "none: random initialisation, the run's stem; imagenet: torchvision's ImageNet weights",
        "none",
        choices=("none", "imagenet"),
    )
    image_size: int | None = setting(
        "train and test at N px, resized on the device (default: the run's size; 224 with --weights imagenet)",
        None,
        metavar="N",
        within=IMAGE_SIDE,
    )
