"""Typed configuration: dataclasses whose fields are the settings, plus YAML load/merge/validate.

A config dataclass is the single source of truth for its command: every field carries its help text (and,
for the CLI, its group and parser) through :func:`setting`, :mod:`simclr.commands.flags` generates the flags
from the fields (``lr_scaling`` becomes ``--lr-scaling``), a recipe YAML uses the same names, flags win over
the file (:func:`build_settings`), and the resolved config is saved in the run directory so every later
command can rebuild the run. This module imports no torch: the CLI builds its parsers from it.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import types
import typing
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from simclr.errors import UserError

if TYPE_CHECKING:
    from simclr.data.registry import DatasetInfo
    from simclr.models.backbones import Stem
    from simclr.views.config import ViewConfig

LOGGERS = ("csv", "tensorboard", "mlflow", "wandb", "none")  # the trackers of simclr.tracking
# How an image folder's images become squares: "crop" resizes the shorter side and cuts the centre (keeps
# the aspect ratio, loses the ends of the longer side); "squash" resizes both sides (keeps all the
# content, distorts the aspect ratio: seed 001 squashes its crops to 96 x 96).
RESIZE_MODES: tuple[str, ...] = ("crop", "squash")
RESIZE_HELP = (
    "image folders (and a Python Dataset's images): how an image becomes a square of --image-size: crop "
    "(shorter side resized, centre cut) or squash (both sides resized, the aspect ratio not kept; seed 001)"
)
PRECISIONS = ("auto", "32", "16-mixed", "bf16-mixed")

Settings = TypeVar("Settings")


def setting(
    help: str,
    default: Any = MISSING,
    *,
    group: str = "",
    flag: str | None = None,
    parse: Callable[[str], Any] | None = None,
    choices: tuple[Any, ...] | None = None,
    metavar: str | None = None,
    nargs: str | None = None,
    exclusive: str | None = None,
    cli: bool = True,
) -> Any:
    """A config field with what the CLI needs to offer it as a flag.

    ``flag`` renames the flag (default: the field name with dashes), ``parse`` converts the text (default:
    the field's type), ``group`` titles the help section it is listed under, and fields sharing an
    ``exclusive`` name are mutually exclusive flags; ``cli=False`` keeps a field off the command line (the
    command fills it from elsewhere).
    """
    metadata = {
        "help": help,
        "group": group,
        "flag": flag,
        "parse": parse,
        "choices": choices,
        "metavar": metavar,
        "nargs": nargs,
        "exclusive": exclusive,
        "cli": cli,
    }
    return field(default=default, metadata=metadata)


_data = partial(setting, group="data")
_views = partial(setting, group="views")
_model = partial(setting, group="model")
_loss = partial(setting, group="loss")
_optim = partial(setting, group="optimiser")
_hardware = partial(setting, group="hardware")
_run = partial(setting, group="run")


@dataclass
class PretrainConfig:
    """Everything that defines a pretraining run. ``None`` means "the dataset's or optimiser's default"."""

    dataset: str = _data(
        "spirograph | cifar10 | cifar100 | stl10 | mnist | imagenette | fgvc-aircraft | imagefolder | ... "
        "(the README's datasets table)",
        "spirograph",
    )
    dataset_class: str | None = _data(
        "python: the class of the Dataset passed to simclr.pretrain(config, dataset=...), recorded in the run",
        None,
        cli=False,
    )
    data_dir: str | None = _data("dataset folder (cifar10/100 also accept DIR/{train,test}/<class>/*)", None)
    download: bool = _data("let torchvision download the dataset (needs a network)", False)
    limit_train_images: int | None = _data("train on a stratified subset of N images (default: all)", None)
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
    workers: int = _data("processes decoding image files", 2)
    memory_budget: str | None = _data(
        "an image folder whose decoded training split exceeds SIZE (e.g. 8GB) is packed once and streamed "
        "instead of held in memory (default: half of the available memory)",
        None,
        metavar="SIZE",
    )
    pack_dir: str | None = _data(
        "where such a folder is packed (default: $SIMCLR_CACHE/packed, else ~/.cache/simclr/packed)", None
    )
    follow_links: bool = _data("follow symbolic links that lead outside --data-dir (else skipped and listed)", False)
    resize: str = _data(RESIZE_HELP, "crop", choices=RESIZE_MODES)
    decode: str = _data(
        "streamed data: where images are decoded and cropped, in the loader workers (cpu) or in batches on the "
        "training device (device: nvJPEG on CUDA)",
        "cpu",
        choices=("cpu", "device"),
    )

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

    precision: str = _hardware("auto | 32 | 16-mixed | bf16-mixed (auto: bf16 where supported)", "auto")
    accelerator: str = _hardware("auto | cpu | gpu", "auto")
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

    def backbone_stem(self, image_size: int) -> Stem | None:
        """The backbone's stem at ``image_size``: ``--stem``, where ``auto`` picks by size, except that ImageNet
        weights come with the ImageNet stem they were trained with; None for a timm model or a module of one's
        own, whose first layers are their own."""
        from simclr.models.backbones import is_torchvision_backbone, resolve_stem

        if not is_torchvision_backbone(self.backbone):
            return None
        return resolve_stem("imagenet" if self.weights == "imagenet" else self.stem, image_size)

    def resolved_lr(self) -> tuple[float, str]:
        """Base learning rate and scaling rule after applying the optimiser's defaults."""
        from simclr.optim import OPTIMIZER_DEFAULTS

        defaults = OPTIMIZER_DEFAULTS[self.optimizer]
        return (self.lr if self.lr is not None else defaults.lr, self.lr_scaling or defaults.scaling)

    def resolved_weight_decay(self) -> float:
        from simclr.optim import OPTIMIZER_DEFAULTS

        return self.weight_decay if self.weight_decay is not None else OPTIMIZER_DEFAULTS[self.optimizer].weight_decay

    def view_config(self, info: DatasetInfo, image_size: int) -> ViewConfig:
        """The SimCLR augmentation of Chen et al. 2020 (Appendix A) with this run's overrides; jitter
        strength and blur default by image size (0.5 and no blur for CIFAR-size images)."""
        from simclr.views.config import ViewConfig

        view_config = ViewConfig(
            size=image_size,
            crop_scale=(self.crop_min_scale, self.crop_max_scale),
            flip_p=self.flip_p,
            vflip_p=self.vflip_p,
            rotation_p=self.rotation_p,
            rotation_degrees=self.rotation_degrees,
            rotation_quarter_turns=self.rotation_quarter_turns,
            jitter_strength=self.jitter_strength if self.jitter_strength is not None else info.jitter_strength,
            brightness=self.brightness,
            contrast=self.contrast,
            saturation=self.saturation,
            hue=self.hue,
            jitter_p=self.jitter_p,
            grayscale_p=self.grayscale_p,
            blur_p=self.blur_p if self.blur_p is not None else (0.5 if info.blur else 0.0),
            mean=info.mean,
            std=info.std,
        )
        view_config.validate()
        return view_config

    def normalized(self, info: DatasetInfo) -> DatasetInfo:
        """``info`` with the run's normalisation: the dataset's usual mean and std, none (``--no-normalize``), or
        what ``--standardize`` measured on the training split (every user of ``info.mean`` then agrees)."""
        if not self.normalize:
            return dataclasses.replace(info, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
        if self.normalization_mean is not None and self.normalization_std is not None:
            mean, std = self.normalization_mean, self.normalization_std
            return dataclasses.replace(info, mean=(mean[0], mean[1], mean[2]), std=(std[0], std[1], std[2]))
        return info

    def gp_parameter_names(self) -> tuple[str, ...]:
        """The view parameters the penalty differentiates through: Spirograph's 6 nuisances, else colour jitter's 4."""
        from simclr.data.registry import dataset_info
        from simclr.views.factory import invariance_parameter_names

        return invariance_parameter_names(dataset_info(self.dataset))

    def gp_excluded_names(self) -> list[str]:
        """The names listed in ``gp_exclude`` (comma-separated, blanks ignored), as given."""
        return [name.strip() for name in (self.gp_exclude or "").split(",") if name.strip()]

    def gp_excluded_columns(self) -> tuple[int, ...]:
        """Columns of the view parameters named by ``gp_exclude`` (validated by :meth:`validate`)."""
        names = self.gp_parameter_names()
        return tuple(sorted({names.index(name) for name in self.gp_excluded_names() if name in names}))

    def gp_penalised_names(self) -> tuple[str, ...]:
        """The view parameters left in the penalty once ``gp_exclude`` is applied."""
        excluded = set(self.gp_excluded_names())
        return tuple(name for name in self.gp_parameter_names() if name not in excluded)

    def _validate_other_backbone(self) -> None:
        """A timm model or a module of one's own: a name after the prefix, and none of the settings that only
        shape torchvision ResNets."""
        kind, _, name = self.backbone.partition(":")
        if not name.strip():
            raise UserError(f"backbone {_shown(self.backbone)} names no model; use e.g. --backbone timm:resnet18")
        if self.weights != "none":
            raise UserError(f"--weights {self.weights} loads torchvision's weights; drop it for a {kind} backbone")
        if self.stem != "auto":
            raise UserError(f"--stem {self.stem} shapes torchvision ResNets; drop it for a {kind} backbone")

    def validate(self) -> None:
        """Reject values that cannot work, with the fix in the message."""
        from simclr.data import DATASET_NAMES, PYTHON_DATASET
        from simclr.models.backbones import BACKBONE_NAMES, STEMS, is_torchvision_backbone
        from simclr.models.heads import HEAD_NAMES
        from simclr.optim import OPTIMIZER_NAMES, SCALING_RULES

        def choice(name: str, value: str, options: tuple[str, ...]) -> None:
            if value not in options:
                flag = "--" + name.replace("_", "-")
                raise UserError(
                    f"unknown {name.replace('_', ' ')} {_shown(value)}; use {flag} with one of: {', '.join(options)}"
                )

        if self.dataset != PYTHON_DATASET:  # a Dataset passed from Python: no command line names it
            choice("dataset", self.dataset, DATASET_NAMES)
        if self.subset is not None:
            from simclr.data.subset_file import parse_subset_choice

            parse_subset_choice(self.subset)
        if self.dataset == PYTHON_DATASET and self.subset is not None:
            raise UserError("--subset indexes a named dataset; pass a torch.utils.data.Subset of your Dataset instead")
        if is_torchvision_backbone(self.backbone):
            choice("backbone", self.backbone, BACKBONE_NAMES)
        else:
            self._validate_other_backbone()
        choice("stem", self.stem, STEMS)
        if self.resize != "crop" and self.dataset not in ("imagefolder", PYTHON_DATASET):
            raise UserError(f"--resize {self.resize} applies to image folders; drop it for --dataset {self.dataset}")
        if self.weights == "imagenet" and self.stem not in ("auto", "imagenet"):
            raise UserError(
                f"--weights imagenet needs the ImageNet stem the weights were trained with; drop --stem {self.stem} "
                "(or pass --stem imagenet)"
            )
        choice("head", self.head, HEAD_NAMES)
        choice("optimizer", self.optimizer, OPTIMIZER_NAMES)
        choice("logger", self.logger, LOGGERS)
        choice("precision", self.precision, PRECISIONS)
        if self.lr_scaling is not None:
            choice("lr_scaling", self.lr_scaling, SCALING_RULES)
        if self.batch_size < 2:
            raise UserError(f"batch size {self.batch_size} leaves no negatives for NT-Xent; use --batch-size 2 or more")
        if self.lambda_gp < 0:
            raise UserError(
                f"lambda_gp must be >= 0, got {self.lambda_gp}; use 0 for plain SimCLR or e.g. --lambda-gp 0.01"
            )
        if self.gp_upper_limit <= 0:
            raise UserError(f"gp_upper_limit must be > 0, got {self.gp_upper_limit}; use e.g. --gp-upper-limit 1")
        if self.gp_exclude:
            names = self.gp_parameter_names()
            unknown = [name for name in self.gp_excluded_names() if name not in names]
            if unknown:
                raise UserError(
                    f"--gp-exclude {', '.join(unknown)}: not a view parameter of {self.dataset}; "
                    f"use some of: {', '.join(names)}"
                )
            if len(self.gp_excluded_columns()) == len(names):
                raise UserError(
                    "--gp-exclude leaves no view parameter in the penalty; drop a name, or use --lambda-gp 0"
                )
        if self.gp_draws < 1:
            raise UserError(f"gp_draws must be >= 1, got {self.gp_draws}; use e.g. --gp-draws 100")
        if self.temperature <= 0:
            raise UserError(f"temperature must be > 0, got {self.temperature}; use e.g. --temperature 0.5")
        if self.n_views < 2:
            raise UserError(f"n_views must be >= 2 for a contrastive loss, got {self.n_views}; use --n-views 2")
        if self.memory_budget is not None:
            parse_size(self.memory_budget)
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
                raise UserError(f"{name} must be three numbers (std > 0), got {_shown(value)}; fix the run's config")
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


@dataclass(frozen=True)
class AutoencoderConfig:
    """The settings of ``simclr train-ae`` (the pixel autoencoder of the SimCLR-AE head); saved in its run."""

    dataset: str = setting("spirograph | cifar10 | cifar100 | stl10 | mnist | imagenette | ...")
    data_dir: str | None = setting("where the dataset is", None)
    download: bool = setting("download a torchvision dataset that is missing", False)
    latent_dim: int = setting("size of the embedding layer (the paper: 128, 256, 512)", 512)
    image_size: int | None = setting("square image size (default: the dataset's)", None)
    epochs: int = setting("training epochs", 20)
    batch_size: int = setting("images per step", 256)
    lr: float = setting("Adam learning rate (the paper: 1e-4)", 1e-4)
    weight_decay: float = setting("Adam weight decay", 0.0)
    val_fraction: float = setting("part of the training split held out for validation", 0.1)
    limit_train_images: int | None = setting("random subset of N training images", None, metavar="N")
    train_size: int | None = setting("spirograph: number of generated training images", None)
    seed: int = setting("seed of the split, the order and the weights", 0)
    workers: int = setting("processes decoding image files", 2)
    follow_links: bool = setting("follow symbolic links that lead outside --data-dir (else skipped and listed)", False)
    resize: str = setting(RESIZE_HELP, "crop", choices=RESIZE_MODES)
    accelerator: str = setting("where to train", "auto", choices=("auto", "cpu", "gpu"))
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


def field_types(cls: type = PretrainConfig) -> dict[str, type]:
    """The plain Python type of every field of config dataclass ``cls`` (``int | None`` -> ``int``)."""
    hints = typing.get_type_hints(cls)
    result: dict[str, type] = {}
    for item in fields(cls):
        hint = hints[item.name]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        is_union = typing.get_origin(hint) in (typing.Union, types.UnionType)
        result[item.name] = args[0] if is_union else hint
    return result


def _channel_triple(value: list[Any], *, positive: bool) -> bool:
    """Three finite numbers (all > 0 when ``positive``): a stored per-channel mean or std."""
    numbers = [v for v in value if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)]
    return len(value) == 3 and len(numbers) == 3 and (not positive or min(numbers) > 0)


def positive_int(text: str) -> int:
    """Parse a flag that must be a positive integer (an argparse ``type``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


_SIZE_UNITS = {
    "": 1,
    "B": 1,
    "K": 2**10,
    "KB": 2**10,
    "M": 2**20,
    "MB": 2**20,
    "G": 2**30,
    "GB": 2**30,
    "T": 2**40,
    "TB": 2**40,
}


def parse_size(text: str) -> int:
    """A size such as ``8GB``, ``512MB``, ``1.5G`` or a number of bytes, in bytes (binary units)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", str(text))
    unit = match.group(2).upper() if match else ""
    if match is None or unit not in _SIZE_UNITS:
        raise UserError(f"cannot read the size {text!r}; write it like 8GB, 512MB or 1.5G")
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


def format_size(size: int) -> str:
    """Bytes in the largest binary unit that keeps the number at least 1, as :func:`parse_size` reads them.

    >>> format_size(1024), format_size(3 * 2**29), format_size(100)
    ('1.0 KB', '1.5 GB', '100 B')
    """
    for unit, scale in (("TB", 2**40), ("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def jpeg_quality(text: str) -> int:
    """Parse a JPEG quality flag, 1..100 (an argparse ``type``)."""
    value = positive_int(text)
    if value > 100:
        raise argparse.ArgumentTypeError(f"expected a JPEG quality within 1..100, got {value}")
    return value


@dataclass(frozen=True)
class PackConfig:
    """The settings of ``simclr data pack`` (:mod:`simclr.data.packed`)."""

    max_side: int = setting(
        "images whose longer side exceeds N pixels are downscaled to N once; 512 keeps 224 px crops sharp",
        512,
        parse=positive_int,
        metavar="N",
    )
    quality: int = setting("JPEG quality of the images that are re-encoded", 95, parse=jpeg_quality)
    workers: int = setting("processes packing in parallel", 2)
    seed: int = setting("seed of the stored (shuffled) order", 0)
    data_dir: Path | None = setting("SRC a dataset name: where its files are", None)
    download: bool = setting("SRC a torchvision dataset: download it first (needs a network)", False)
    follow_links: bool = setting("follow symbolic links that lead outside SRC (else skipped and listed)", False)

    def validate(self) -> None:
        if self.max_side < 16:
            raise UserError(f"--max-side must be at least 16 pixels, got {self.max_side}")
        if not 1 <= self.quality <= 100:
            raise UserError(f"--quality must be within 1..100, got {self.quality}")


def _coerce(name: str, value: Any, kind: type) -> Any:
    if value is None:
        return None
    if kind is Path and isinstance(value, str | Path):
        return Path(value)
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise UserError(f"config key {name!r} must be true or false, got {_shown(value)}")
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind is str and isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value)
    if typing.get_origin(kind) is tuple and isinstance(value, list | tuple):
        return tuple(value)
    if typing.get_origin(kind) is list and isinstance(value, list | tuple):
        return list(value)
    raise UserError(f"config key {name!r} must be {getattr(kind, '__name__', kind)}, got {_shown(value)}")


def _shown(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters: config values come from files anyone may hand over (a
    megabyte string, a huge nested list), and an error message must stay one short line that is cheap to
    build (reprlib stops early instead of formatting the whole value)."""
    import reprlib

    short = reprlib.Repr()
    short.maxlevel, short.maxdict, short.maxlist, short.maxtuple, short.maxset = 3, 6, 6, 6, 6
    short.maxstring = short.maxother = limit
    text = short.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _AliasFound(yaml.YAMLError):
    """An anchor or alias in a config file (raised by :class:`_PlainLoader`)."""


class _PlainLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that stops at the first anchor or alias. simclr configs never need them, and aliases
    nested a few levels deep (a "billion laughs" file of 300 bytes) expand to gigabytes once printed or merged.
    It stops while composing, before the rest of the file is read, so a hostile file costs next to nothing."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _AliasFound
        return super().compose_node(parent, index)


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a recipe file; a missing, unreadable, non-UTF-8, non-mapping or alias-using file is a UserError."""
    if not path.is_file():
        raise UserError(f"config file {path} not found; check the path given to --config")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(
            f"config file {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8 or regenerate it "
            "with --print-config"
        ) from None
    except OSError as exc:
        raise UserError(f"cannot read config file {path}: {exc.strerror or exc}; check its permissions") from None
    try:
        data = yaml.load(text, Loader=_PlainLoader)  # a SafeLoader: plain data only
    except _AliasFound:
        raise UserError(
            f"config file {path} uses YAML anchors/aliases, which simclr configs do not need; write the values out"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise UserError(
            f"config file {path} is not valid YAML{where}; fix the syntax or regenerate it with --print-config"
        ) from None
    except RecursionError:  # PyYAML composes nested collections recursively
        raise UserError(
            f"config file {path} nests values too deeply for a config; write plain keys and values, "
            "or regenerate it with --print-config"
        ) from None
    except ValueError:  # a value YAML parses but Python cannot hold: 2024-13-45, an int of 5000 digits
        raise UserError(
            f"config file {path} holds a value YAML cannot convert (an impossible date, a number thousands of "
            "digits long); fix or quote it"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must be a mapping of keys to values, got {type(data).__name__}")
    return data


def build_settings(cls: type[Settings], file_values: dict[str, Any], overrides: dict[str, Any]) -> Settings:
    """An instance of config dataclass ``cls`` from file values and overrides (overrides win); unknown keys
    and values of the wrong type are UserErrors, and the result is validated when ``cls`` can validate."""
    types_ = field_types(cls)
    merged: dict[str, Any] = {}
    for source in (file_values, overrides):
        for key, value in source.items():
            name = str(key).replace("-", "_")
            if name not in types_:
                known = ", ".join(sorted(types_))
                raise UserError(f"unknown config key {_shown(key)}; remove it (known keys: {known})")
            merged[name] = _coerce(name, value, types_[name])
    missing = [item.name for item in fields(cls) if item.name not in merged and _has_no_default(item)]  # type: ignore[arg-type]
    if missing:
        raise UserError(f"missing setting {missing[0]!r}; pass --{missing[0].replace('_', '-')}")
    settings = cls(**merged)
    validate = getattr(settings, "validate", None)
    if validate is not None:
        validate()
    return settings


def _has_no_default(item: dataclasses.Field[Any]) -> bool:
    return item.default is MISSING and item.default_factory is MISSING


def build_config(file_values: dict[str, Any], overrides: dict[str, Any]) -> PretrainConfig:
    """A validated pretraining config from a recipe's values and flag overrides (flags win)."""
    return build_settings(PretrainConfig, file_values, overrides)


def config_to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def config_to_yaml(config: Any) -> str:
    """The YAML a run directory keeps (and ``--print-config`` prints) for any config dataclass."""
    return yaml.safe_dump(config_to_dict(config), sort_keys=False)
