"""The config classes of the commands that train: pretraining and the autoencoder of ``simclr train-ae``.

A config dataclass is the single source of truth for its command: every field carries its help text (and,
for the CLI, its group and parser) through :func:`simclr.settings.setting`, the CLI generates the flags from
the fields (``lr_scaling`` becomes ``--lr-scaling``), a recipe YAML uses the same names, flags win over the
file (:func:`simclr.settings.build_settings`), and the resolved config is saved in the run directory so every
later command can rebuild the run. The settings other commands share are defined once and inherited here:
the data reading group (:class:`simclr.data.reading.DataReading`) and the accelerator
(:class:`simclr.device_settings.Accelerator`). What a config's automatic settings become for the data at
hand (the views, the stem, the learning rate) is :mod:`simclr.resolve`.

This module imports no torch: the CLI builds its parsers from it (:meth:`PretrainConfig.validate` imports
the names it checks against when it runs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Any

from simclr.data.reading import DataReading, MemoryBudget
from simclr.device_settings import Accelerator
from simclr.errors import UserError
from simclr.settings import build_settings, setting, shared_setting, short_repr

LOGGERS = ("csv", "tensorboard", "mlflow", "wandb", "none")  # the trackers of simclr.tracking
PRECISIONS = ("auto", "32", "16-mixed", "bf16-mixed")


_data = partial(setting, group="data")
_views = partial(setting, group="views")
_model = partial(setting, group="model")
_loss = partial(setting, group="loss")
_optim = partial(setting, group="optimiser")
_hardware = partial(setting, group="hardware")
_run = partial(setting, group="run")


# The dataset is a config's first field: a saved config.yaml opens with it, and the autoencoder's, which has no
# default, must come before the defaulted fields of the data reading group. A dataclass puts the fields of
# the base listed last first, so each config lists its dataset class last among its bases.
@dataclass
class _PretrainDataset:
    dataset: str = _data(
        "spirograph | cifar10 | cifar100 | stl10 | mnist | imagenette | fgvc-aircraft | imagefolder | ... "
        "(the README's datasets table)",
        "spirograph",
    )


# Each section of the pretraining settings (the groups of its --help and of the README's table) is a class of
# its own; PretrainConfig inherits them all, so a saved config.yaml stays flat, in this order.
@dataclass
class _PretrainData:
    """The data section's own settings; the ones every training command shares come from DataReading."""

    dataset_class: str | None = _data(
        "python: the class of the Dataset passed to simclr.pretrain(config, dataset=...), recorded in the run",
        None,
        cli=False,
    )
    subset: str | None = _data(
        "train on one part of a subset file of 'simclr data split' (FILE:unlabelled, or FILE:labelled); "
        "indices into the labelled training split",
        None,
        metavar="FILE:PART",
    )
    subset_sha256: str | None = _data("the subset file's SHA-256, recorded when the run starts", None, cli=False)
    image_size: int | None = _data(
        "side of the stored images; default: the dataset's (image folders: chosen from the images' sizes)", None
    )
    train_size: int = _data("spirograph: number of generated training images", 100_000)
    test_size: int = _data("spirograph: number of generated test images", 20_000)
    pack_dir: str | None = _data(
        "where a folder over --memory-budget is packed (default: an entry of $SIMCLR_CACHE/packed, else "
        "~/.cache/simclr/packed, keyed by the folder's files)",
        None,
    )
    decode: str = _data(
        "streamed data: where images are decoded and cropped, in the loader workers (cpu) or in batches on the "
        "training device (device: nvJPEG on CUDA)",
        "cpu",
        choices=("cpu", "device"),
    )


@dataclass
class _Views:
    """How the views of an image are made."""

    n_views: int = _views("views per image (>= 2)", 2)
    jitter_strength: float | None = _views("colour-jitter strength s (default: 0.5 for <=64px data, 1.0 above)", None)
    brightness: float | None = _views("brightness jitter (default 0.8 s)", None)
    contrast: float | None = _views("contrast jitter (default 0.8 s)", None)
    saturation: float | None = _views("saturation jitter (default 0.8 s)", None)
    hue: float | None = _views("hue jitter (default 0.2 s)", None)
    jitter_p: float = _views("probability of colour jitter", 0.8)
    grayscale_p: float = _views("probability of grayscale", 0.2)
    flip_p: float = _views("probability of a horizontal flip", 0.5)
    vflip_p: float = _views("probability of a vertical flip (not in SimCLR: for data without an up)", 0.0)
    rotation_p: float = _views("probability of a rotation (not in SimCLR)", 0.0)
    rotation_degrees: float = _views("--rotation-p: angles drawn uniformly from [-D, D] degrees", 30.0, metavar="D")
    rotation_quarter_turns: bool = _views("--rotation-p: angles drawn from the multiples of 90 degrees instead", False)
    positives: str = _views(
        "what a view is paired with: another view of the same image (SimCLR), or a view of another image of the "
        "same class, drawn every epoch (seed 001's labelled mode; needs labels and in-memory data)",
        "views",
        choices=("views", "class"),
    )
    normalize: bool = _views(
        "normalise views and evaluation inputs with a per-channel mean and std (--no-normalize: pixels stay in [0, 1])",
        True,
    )
    standardize: bool = _views(
        "normalise with the training split's own per-channel mean and std (computed once, kept in the run's config "
        "and the backbone, used by every evaluation) instead of the dataset's usual values",
        False,
    )
    normalization_mean: list[float] | None = _views("the mean --standardize measured", None, cli=False)
    normalization_std: list[float] | None = _views("the std --standardize measured", None, cli=False)
    crop_min_scale: float = _views("smallest crop area fraction of RandomResizedCrop", 0.08)
    crop_max_scale: float = _views("largest crop area fraction", 1.0)
    blur_p: float | None = _views("probability of Gaussian blur (default: 0.5 above 64px, else 0)", None)


@dataclass
class _Model:
    """The backbone and the projection head."""

    backbone: str = _model(
        "torchvision ResNet / ResNeXt / Wide-ResNet name, or timm:<model> for a timm model (pip install timm)",
        "resnet18",
    )
    stem: str = _model("auto | cifar | stl | imagenet (auto: by image size; imagenet with --weights imagenet)", "auto")
    weights: str = _model(
        "none: random initialisation; imagenet: start the backbone from torchvision's ImageNet weights (read "
        "from the torch hub cache, downloaded there when missing)",
        "none",
        choices=("none", "imagenet"),
    )
    head: str = _model("mlp | linear | identity | ae", "mlp")
    head_hidden_dim: int | None = _model("hidden width of the mlp head (default: feature size)", None)
    head_out_dim: int = _model("projection size", 128)
    head_layers: int = _model("linear layers in the mlp head", 2)
    head_batch_norm: bool = _model("BatchNorm in the mlp head's hidden layers", True)
    ae_checkpoint: str | None = _model("--head ae: the weights (or run directory) written by 'simclr train-ae'", None)
    freeze_head_input: bool = _model("--head ae: keep the autoencoder's embedding layer frozen", True)
    head_activation: str = _model(
        "--head mlp: activation of the hidden layers; --head ae: after the embedding layer (relu, silu, gelu, "
        "sigmoid, tanh, ...)",
        "relu",
    )


@dataclass
class _Loss:
    """NT-Xent and the gradient penalty."""

    temperature: float = _loss("NT-Xent temperature", 0.5)
    gather_distributed: bool = _loss("gather negatives across processes (with gradients)", True)
    lambda_gp: float = _loss(
        "gradient-penalty weight for invariance to the view parameters (Foster et al. 2020); 0: plain SimCLR", 0.0
    )
    gp_upper_limit: float = _loss("the penalty is clamped from above at this value (no gradient above it)", 1.0)
    gp_draws: int = _loss("re-drawn view parameters per image for the penalty", 100)
    gp_normalization: bool = _loss("L2-normalise the representation before the penalty", True)
    gp_exclude: str | None = _loss(
        "view parameters left out of the penalty, comma-separated (e.g. h on Spirograph: docs/REPRODUCING.md)", None
    )


@dataclass
class _Optimiser:
    """The optimiser, the batch and the learning-rate schedule."""

    optimizer: str = _optim("lars | sgd | adam | adamw", "lars")
    lr: float | None = _optim(
        "base learning rate before scaling (default per optimizer: lars 0.3, sgd 0.12, adam/adamw 1e-3)", None
    )
    lr_scaling: str | None = _optim(
        "linear (base x B/256) | sqrt (base x sqrt(B)) | none (default: none for adam/adamw, else linear)", None
    )
    weight_decay: float | None = _optim(
        "weight decay (default per optimizer: lars 1e-6, sgd 5e-4, adam 1e-6, adamw 1e-4)", None
    )
    momentum: float = _optim("momentum for lars / sgd", 0.9)
    nesterov: bool = _optim("Nesterov momentum for sgd", False)
    batch_size: int = _optim("images per process and step", 256)
    epochs: int = _optim("training epochs", 100)
    max_steps: int | None = _optim(
        "stop after this many steps (the schedule still spans all epochs; default: train all epochs)", None
    )
    warmup_epochs: float = _optim(
        "linear warmup epochs before the cosine decay (a run too short to hold it warms up for 10%% of its steps)",
        10.0,
    )
    schedule: str = _optim(
        "learning rate after the warmup: cosine decay (SimCLR), or constant (seeds 003 and 004's runs without "
        "annealing)",
        "cosine",
        choices=("cosine", "constant"),
    )
    final_lr_ratio: float = _optim("--schedule cosine: the final learning rate as a fraction of the peak", 0.0)


@dataclass
class _Hardware(Accelerator):
    """Where and how the run computes; --accelerator is the one every command shares."""

    precision: str = _hardware("auto | 32 | 16-mixed | bf16-mixed (auto: bf16 where supported)", "auto")
    devices: str = _hardware("number of devices per machine, or a list such as 0,1", "1")
    num_nodes: int = _hardware("machines training together (DDP; docs/SCALING.md)", 1)
    strategy: str = _hardware("auto | ddp | ...", "auto")
    sync_batchnorm: bool | None = _hardware(
        "synchronise BatchNorm statistics across GPU processes (default: on when several GPU processes train)", None
    )
    channels_last: bool = _hardware("channels_last memory format", True)
    compile: bool = _hardware(
        "torch.compile the model and the loss with static shapes (every batch has the same size: drop_last)", False
    )
    compile_backend: str = _hardware(
        "--compile's backend: inductor (generated kernels), or aot_eager (no code generation; for tests and checks)",
        "inductor",
        choices=("inductor", "aot_eager", "eager"),
    )


@dataclass
class _Run:
    """The run directory, checkpoints, monitors and logging."""

    seed: int = _run("seed for weights, data order and views", 0)
    out: str | None = _run("run directory (default runs/<dataset>-<backbone>-<timestamp>)", None)
    resume: str | None = _run("continue the run in this directory from its last checkpoint (default: a new run)", None)
    logger: str = _run(
        "csv | tensorboard | mlflow | wandb | none: the tracker that also gets the settings and, from simclr evaluate, "
        "the evaluation metrics (the metrics file is always written; wandb runs offline without WANDB_API_KEY)",
        "csv",
    )
    checkpoint_every_steps: int = _run("also checkpoint every N steps (0: only at epoch ends)", 200)
    knn_every_epochs: int = _run("online kNN monitor every N epochs (0: off)", 1)
    knn_k: int = _run("neighbours of the kNN monitor", 200)
    knn_temperature: float = _run("temperature of the kNN monitor", 0.1)
    knn_max_images: int = _run("cap on bank and query images of the kNN monitor", 10_000)
    log_every_steps: int = _run(
        "read the step's values from the device every N steps: progress line, metrics rows, loggers", 50
    )
    val_fraction: float = _run(
        "hold out this fraction of the training images (stratified by label, seeded) for a validation NT-Xent "
        "and contrastive top-1/top-5 each epoch, on the same views every epoch (0: off)",
        0.0,
    )
    save_top_k: int = _run(
        "keep the backbones of the K epochs with the lowest validation loss as checkpoints/epoch-NNNN.safetensors, "
        "the best also as checkpoints/best.safetensors (needs --val-fraction; 0: off)",
        0,
    )
    keep_every_epochs: int = _run("keep the backbone every N epochs as checkpoints/epoch-NNNN.safetensors (0: off)", 0)
    online_probe: bool = _run(
        "train a linear classifier on the detached backbone features of the training views (labelled data), "
        "logged per epoch as online_linear_top1 (and online_linear_val_top1 with --val-fraction)",
        False,
    )


@dataclass
class PretrainConfig(
    _Run, _Hardware, _Optimiser, _Loss, _Model, _Views, _PretrainData, MemoryBudget, DataReading, _PretrainDataset
):
    """Everything that defines a pretraining run. ``None`` means "the dataset's or optimiser's default"."""

    def _validate_other_backbone(self) -> None:
        """A timm model or a module of one's own: a name after the prefix, and none of the settings that only
        shape torchvision ResNets."""
        kind, _, name = self.backbone.partition(":")
        if not name.strip():
            raise UserError(f"backbone {short_repr(self.backbone)} names no model; use e.g. --backbone timm:resnet18")
        if self.weights != "none":
            raise UserError(f"--weights {self.weights} loads torchvision's weights; drop it for a {kind} backbone")
        if self.stem != "auto":
            raise UserError(f"--stem {self.stem} shapes torchvision ResNets; drop it for a {kind} backbone")

    def validate(self) -> None:
        """Reject values that cannot work, with the fix in the message (the first problem found)."""
        self._check_names()
        self._check_loss()
        self._check_data_and_length()
        self._check_views_and_schedule()
        self._check_positives_and_checkpoints()

    def _check_names(self) -> None:
        """Every setting that names something (a dataset, a backbone, a stem, ...) names a known one."""
        # imported when a config is validated, not when the CLI builds its parsers: keeps simclr --help light
        from simclr.data.catalog import DATASET_NAMES, PYTHON_DATASET
        from simclr.data.subset_file import parse_subset_choice
        from simclr.models.backbones import BACKBONE_NAMES, STEMS, is_torchvision_backbone  # (for the same reason)
        from simclr.models.heads import HEAD_NAMES  # (for the same reason)
        from simclr.optim.build import OPTIMIZER_NAMES  # (for the same reason)
        from simclr.optim.schedules import SCALING_RULES  # (for the same reason)

        if self.dataset != PYTHON_DATASET:  # a Dataset passed from Python: no command line names it
            _check_choice("dataset", self.dataset, DATASET_NAMES)
        if self.subset is not None:
            parse_subset_choice(self.subset)
        if self.dataset == PYTHON_DATASET and self.subset is not None:
            raise UserError("--subset indexes a named dataset; pass a torch.utils.data.Subset of your Dataset instead")
        if is_torchvision_backbone(self.backbone):
            _check_choice("backbone", self.backbone, BACKBONE_NAMES)
        else:
            self._validate_other_backbone()
        _check_choice("stem", self.stem, STEMS)
        if self.resize != "crop" and self.dataset not in ("imagefolder", PYTHON_DATASET):
            raise UserError(f"--resize {self.resize} applies to image folders; drop it for --dataset {self.dataset}")
        if self.weights == "imagenet" and self.stem not in ("auto", "imagenet"):
            raise UserError(
                f"--weights imagenet needs the ImageNet stem the weights were trained with; drop --stem {self.stem} "
                "(or pass --stem imagenet)"
            )
        _check_choice("head", self.head, HEAD_NAMES)
        _check_choice("optimizer", self.optimizer, OPTIMIZER_NAMES)
        _check_choice("logger", self.logger, LOGGERS)
        _check_choice("precision", self.precision, PRECISIONS)
        if self.lr_scaling is not None:
            _check_choice("lr_scaling", self.lr_scaling, SCALING_RULES)

    def _check_loss(self) -> None:
        """The batch, the temperature, the views and the gradient penalty make a loss that can be computed."""
        if self.batch_size < 2:
            raise UserError(f"batch size {self.batch_size} leaves no negatives for NT-Xent; use --batch-size 2 or more")
        if self.lambda_gp < 0:
            raise UserError(
                f"lambda_gp must be >= 0, got {self.lambda_gp}; use 0 for plain SimCLR or e.g. --lambda-gp 0.01"
            )
        if self.gp_upper_limit <= 0:
            raise UserError(f"gp_upper_limit must be > 0, got {self.gp_upper_limit}; use e.g. --gp-upper-limit 1")
        if self.gp_exclude:
            self._check_gp_exclude()
        if self.gp_draws < 1:
            raise UserError(f"gp_draws must be >= 1, got {self.gp_draws}; use e.g. --gp-draws 100")
        if self.temperature <= 0:
            raise UserError(f"temperature must be > 0, got {self.temperature}; use e.g. --temperature 0.5")
        if self.n_views < 2:
            raise UserError(f"n_views must be >= 2 for a contrastive loss, got {self.n_views}; use --n-views 2")

    def _check_gp_exclude(self) -> None:
        """``gp_exclude`` names view parameters of the dataset, and leaves at least one in the penalty."""
        # imported when a config is validated, not when the CLI builds its parsers: keeps simclr --help light
        from simclr.data.catalog import catalog_entry
        from simclr.views.factory import invariance_parameter_names

        names = invariance_parameter_names(catalog_entry(self.dataset).regression)
        excluded = listed_names(self.gp_exclude)
        unknown = [name for name in excluded if name not in names]
        if unknown:
            raise UserError(
                f"--gp-exclude {', '.join(unknown)}: not a view parameter of {self.dataset}; "
                f"use some of: {', '.join(names)}"
            )
        if set(excluded) >= set(names):
            raise UserError("--gp-exclude leaves no view parameter in the penalty; drop a name, or use --lambda-gp 0")

    def _check_data_and_length(self) -> None:
        """The data can be found and held, on the machines asked for, for a run of at least one step."""
        self.memory_budget_bytes()
        if self.num_nodes < 1:
            raise UserError(f"num_nodes must be >= 1, got {self.num_nodes}; fix --num-nodes")
        if self.num_nodes > 1 and not (self.out or self.resume):
            raise UserError("--num-nodes > 1 needs --out, a folder every machine reaches (the run directory)")
        if self.epochs < 1:
            raise UserError(f"epochs must be >= 1, got {self.epochs}; fix --epochs")
        if self.max_steps is not None and self.max_steps < 1:
            raise UserError(f"max_steps must be >= 1, got {self.max_steps}; fix --max-steps")
        if self.limit_train_images is not None and self.limit_train_images < self.batch_size:
            raise UserError(
                f"--limit-train-images {self.limit_train_images} is smaller than --batch-size {self.batch_size}; "
                "raise the limit or lower the batch size"
            )
        if self.dataset == "imagefolder" and not self.data_dir:
            raise UserError("dataset imagefolder needs a folder; pass --data-dir DIR")

    def _check_views_and_schedule(self) -> None:
        """Probabilities, crop scales, the learning-rate schedule and the normalisation are in range."""
        for name in ("jitter_p", "grayscale_p", "flip_p", "vflip_p", "rotation_p"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise UserError(f"{name} must be in [0, 1], got {value}; fix --{name.replace('_', '-')}")
        if not 0 < self.crop_min_scale <= self.crop_max_scale <= 1:
            raise UserError("crop scales must satisfy 0 < --crop-min-scale <= --crop-max-scale <= 1")
        if self.lr is not None and self.lr <= 0:
            raise UserError(f"learning rate must be > 0, got {self.lr}; fix --lr")
        if not 0.0 <= self.final_lr_ratio <= 1.0:
            raise UserError(f"final_lr_ratio must be within [0, 1], got {self.final_lr_ratio}; fix --final-lr-ratio")
        if self.warmup_epochs < 0:
            raise UserError(f"warmup_epochs must be >= 0, got {self.warmup_epochs}; fix --warmup-epochs")
        if self.standardize and not self.normalize:
            raise UserError("--standardize normalises with measured statistics; drop it or --no-normalize")
        for name in ("normalization_mean", "normalization_std"):
            value = getattr(self, name)
            if value is not None and not _channel_triple(value, positive=name.endswith("std")):
                raise UserError(
                    f"{name} must be three numbers (std > 0), got {short_repr(value)}; fix the run's config"
                )

    def _check_positives_and_checkpoints(self) -> None:
        """Class positives have classes to pair, and checkpoints ranked by validation have a validation split."""
        if self.positives == "class" and self.lambda_gp > 0:
            raise UserError("--positives class and --lambda-gp penalise different pairs; use one of them")
        if self.positives == "class" and self.dataset == "spirograph":
            raise UserError("--positives class needs class labels; Spirograph has regression factors, not classes")
        if not 0.0 <= self.val_fraction < 1.0:
            raise UserError(f"val_fraction must be in [0, 1), got {self.val_fraction}; use e.g. --val-fraction 0.1")
        for name in ("save_top_k", "keep_every_epochs"):
            if getattr(self, name) < 0:
                raise UserError(f"{name} must be >= 0, got {getattr(self, name)}; fix --{name.replace('_', '-')}")
        if self.save_top_k > 0 and self.val_fraction == 0:
            raise UserError("--save-top-k ranks epochs by validation loss; add --val-fraction (e.g. 0.1)")


def _check_choice(name: str, value: str, options: tuple[str, ...]) -> None:
    if value not in options:
        flag = "--" + name.replace("_", "-")
        raise UserError(
            f"unknown {name.replace('_', ' ')} {short_repr(value)}; use {flag} with one of: {', '.join(options)}"
        )


def listed_names(text: str | None) -> list[str]:
    """The names of a comma-separated setting (``gp_exclude``), as given, blanks ignored."""
    return [name.strip() for name in (text or "").split(",") if name.strip()]


@dataclass
class _AutoencoderDataset:
    dataset: str = shared_setting(_PretrainDataset, "dataset")  # pretraining's, without a default


@dataclass
class _AutoencoderTraining:
    """What the autoencoder is and how it trains."""

    latent_dim: int = setting("size of the embedding layer (the paper: 128, 256, 512)", 512)
    image_size: int | None = setting("square image size (default: the dataset's)", None)
    epochs: int = setting("training epochs", 20)
    batch_size: int = setting("images per step", 256)
    lr: float = setting("Adam learning rate (the paper: 1e-4)", 1e-4)
    weight_decay: float = setting("Adam weight decay", 0.0)
    val_fraction: float = setting("part of the training split held out for validation", 0.1)
    train_size: int | None = setting("spirograph: number of generated training images", None)
    seed: int = setting("seed of the split, the order and the weights", 0)


@dataclass
class AutoencoderConfig(Accelerator, _AutoencoderTraining, DataReading, _AutoencoderDataset):
    """The settings of ``simclr train-ae`` (the pixel autoencoder of the SimCLR-AE head); saved in its run."""

    out: str | None = setting("run directory (default: runs/ae-DATASET-LATENT-TIMESTAMP)", None)

    def validate(self) -> None:
        """Every check that needs no data, so bad flags fail before anything is loaded or written."""
        positive = {"latent_dim": self.latent_dim, "epochs": self.epochs, "batch_size": self.batch_size}
        for name in ("image_size", "limit_train_images", "train_size"):
            if getattr(self, name) is not None:
                positive[name] = getattr(self, name)
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


def _channel_triple(value: list[Any], *, positive: bool) -> bool:
    """Three finite numbers (all > 0 when ``positive``): a stored per-channel mean or std."""
    numbers = [v for v in value if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)]
    return len(value) == 3 and len(numbers) == 3 and (not positive or min(numbers) > 0)


def build_config(file_values: dict[str, Any], overrides: dict[str, Any]) -> PretrainConfig:
    """A validated pretraining config from a recipe's values and flag overrides (flags win)."""
    return build_settings(PretrainConfig, file_values, overrides)
