"""Typed pretraining configuration: YAML file + command-line overrides, validated once.

One flat dataclass is the single source of truth: the CLI flags are generated from its fields (``lr_scaling``
becomes ``--lr-scaling``), a recipe YAML uses the same names, flags win over the file, and the resolved
config is saved as ``config.yaml`` in the run directory so every later command can rebuild the run.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from simclr.errors import UserError

OPTIMIZERS = ("lars", "sgd", "adam", "adamw")
LOGGERS = ("csv", "tensorboard", "mlflow", "none")
PRECISIONS = ("auto", "32", "16-mixed", "bf16-mixed")

# Paper defaults per optimiser: (base learning rate, scaling rule, weight decay).
# LARS 0.3 x B/256 with wd 1e-6 is SimCLR's ImageNet recipe (Chen et al. 2020, Appendix B.1);
# SGD follows lightly's CIFAR benchmark (0.06 x B/128 = 0.12 x B/256, wd 5e-4); Adam follows seed 004.
OPTIMIZER_DEFAULTS: dict[str, tuple[float, str, float]] = {
    "lars": (0.3, "linear", 1e-6),
    "sgd": (0.12, "linear", 5e-4),
    "adam": (1e-3, "none", 1e-6),
    "adamw": (1e-3, "none", 1e-4),
}


def _help(text: str, **kwargs: Any) -> Any:
    return field(metadata={"help": text}, **kwargs)


@dataclass
class PretrainConfig:
    """Everything that defines a pretraining run. ``None`` means "the dataset's or optimiser's default"."""

    # data
    dataset: str = _help(
        "spirograph | cifar10 | cifar100 | stl10 | mnist | imagenette | fgvc-aircraft | imagefolder",
        default="spirograph",
    )
    data_dir: str | None = _help("dataset folder (cifar10/100 also accept DIR/{train,test}/<class>/*)", default=None)
    download: bool = _help("let torchvision download the dataset (needs a network)", default=False)
    limit_train_images: int | None = _help("train on a stratified subset of N images", default=None)
    image_size: int | None = _help("side of the stored images; default: the dataset's", default=None)
    train_size: int = _help("spirograph: number of generated training images (seed 003: 100000)", default=100_000)
    test_size: int = _help("spirograph: number of generated test images (seed 003: 20000)", default=20_000)
    workers: int = _help("threads used to decode images", default=2)
    # views
    n_views: int = _help("views per image (>= 2)", default=2)
    jitter_strength: float | None = _help("colour-jitter strength s (0.5 for <=64px data, 1.0 above)", default=None)
    brightness: float | None = _help("brightness jitter (default 0.8 s)", default=None)
    contrast: float | None = _help("contrast jitter (default 0.8 s)", default=None)
    saturation: float | None = _help("saturation jitter (default 0.8 s)", default=None)
    hue: float | None = _help("hue jitter (default 0.2 s)", default=None)
    jitter_p: float = _help("probability of colour jitter", default=0.8)
    grayscale_p: float = _help("probability of grayscale", default=0.2)
    flip_p: float = _help("probability of a horizontal flip", default=0.5)
    crop_min_scale: float = _help("smallest crop area fraction of RandomResizedCrop", default=0.08)
    crop_max_scale: float = _help("largest crop area fraction", default=1.0)
    blur_p: float | None = _help("probability of Gaussian blur (0.5 above 64px, off for 32px data)", default=None)
    # model
    backbone: str = _help("torchvision ResNet / ResNeXt / Wide-ResNet name", default="resnet18")
    stem: str = _help("auto | cifar | stl | imagenet (auto: by image size)", default="auto")
    head: str = _help("mlp | linear | identity", default="mlp")
    head_hidden_dim: int | None = _help("hidden width of the mlp head (default: feature size)", default=None)
    head_out_dim: int = _help("projection size", default=128)
    head_layers: int = _help("linear layers in the mlp head", default=2)
    head_batch_norm: bool = _help("BatchNorm in the mlp head's hidden layers", default=True)
    ae_checkpoint: str | None = _help(
        "--head ae: autoencoder.safetensors (or its run directory) from 'simclr train-ae'", default=None
    )
    freeze_head_input: bool = _help("--head ae: keep the autoencoder's embedding layer frozen", default=True)
    head_activation: str = _help(
        "--head ae: activation after the embedding layer (relu, silu, gelu, sigmoid, tanh, ...)", default="relu"
    )
    # loss
    temperature: float = _help("NT-Xent temperature", default=0.5)
    gather_distributed: bool = _help("gather negatives across processes (with gradients)", default=True)
    lambda_gp: float = _help(
        "gradient-penalty weight for invariance to the view parameters (Foster et al. 2020); 0: plain SimCLR",
        default=0.0,
    )
    gp_upper_limit: float = _help(
        "the penalty is clamped from above at this value (seed 003: 1; Spirograph 1000)", default=1.0
    )
    gp_draws: int = _help("re-drawn view parameters per image for the penalty", default=100)
    gp_normalization: bool = _help("L2-normalise the representation before the penalty", default=True)
    gp_exclude: str | None = _help(
        "view parameters left out of the penalty, comma-separated (e.g. h on Spirograph, whose first-order term dominates the penalty: docs/REPRODUCING.md)",
        default=None,
    )
    # optimisation
    optimizer: str = _help("lars | sgd | adam | adamw", default="lars")
    lr: float | None = _help("base learning rate before scaling (default per optimizer)", default=None)
    lr_scaling: str | None = _help("linear (base x B/256) | sqrt (base x sqrt(B)) | none", default=None)
    weight_decay: float | None = _help("weight decay (default per optimizer)", default=None)
    momentum: float = _help("momentum for lars / sgd", default=0.9)
    nesterov: bool = _help("Nesterov momentum for sgd", default=False)
    batch_size: int = _help("images per process and step", default=256)
    epochs: int = _help("training epochs", default=100)
    max_steps: int | None = _help("stop after this many steps (the schedule still spans all epochs)", default=None)
    warmup_epochs: float = _help(
        "linear warmup epochs before the cosine decay (shortened for short runs)", default=10.0
    )
    # hardware
    precision: str = _help("auto | 32 | 16-mixed | bf16-mixed (auto: bf16 where supported)", default="auto")
    accelerator: str = _help("auto | cpu | gpu", default="auto")
    devices: str = _help("number of devices or a list such as 0,1", default="1")
    strategy: str = _help("auto | ddp | ...", default="auto")
    sync_batchnorm: bool = _help("synchronise BatchNorm statistics across processes", default=False)
    channels_last: bool = _help("channels_last memory format", default=True)
    compile: bool = _help("torch.compile the model", default=False)
    # run
    seed: int = _help("seed for weights, data order and views", default=0)
    out: str | None = _help("run directory (default runs/<dataset>-<backbone>-<timestamp>)", default=None)
    resume: str | None = _help("continue the run in this directory from checkpoints/last.ckpt", default=None)
    logger: str = _help("csv | tensorboard | mlflow | none (metrics.csv is always written)", default="csv")
    checkpoint_every_steps: int = _help("also write last.ckpt every N steps (0: only at epoch ends)", default=200)
    knn_every_epochs: int = _help("online kNN monitor every N epochs (0: off)", default=1)
    knn_k: int = _help("neighbours of the kNN monitor", default=200)
    knn_temperature: float = _help("temperature of the kNN monitor", default=0.1)
    knn_max_images: int = _help("cap on bank and query images of the kNN monitor", default=10_000)
    log_every_steps: int = _help("progress line every N steps when not on a terminal", default=50)

    def resolved_lr(self) -> tuple[float, str]:
        """Base learning rate and scaling rule after applying the optimiser's defaults."""
        base, rule, _ = OPTIMIZER_DEFAULTS[self.optimizer]
        return (self.lr if self.lr is not None else base, self.lr_scaling or rule)

    def resolved_weight_decay(self) -> float:
        return self.weight_decay if self.weight_decay is not None else OPTIMIZER_DEFAULTS[self.optimizer][2]

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

    def validate(self) -> None:
        """Reject values that cannot work, with the fix in the message."""
        from simclr.data import DATASET_NAMES
        from simclr.models import BACKBONE_NAMES, HEAD_NAMES, STEMS

        def choice(name: str, value: str, options: tuple[str, ...]) -> None:
            if value not in options:
                flag = "--" + name.replace("_", "-")
                raise UserError(
                    f"unknown {name.replace('_', ' ')} {value!r}; use {flag} with one of: {', '.join(options)}"
                )

        choice("dataset", self.dataset, DATASET_NAMES)
        choice("backbone", self.backbone, BACKBONE_NAMES)
        choice("stem", self.stem, STEMS)
        choice("head", self.head, HEAD_NAMES)
        choice("optimizer", self.optimizer, OPTIMIZERS)
        choice("logger", self.logger, LOGGERS)
        choice("precision", self.precision, PRECISIONS)
        if self.lr_scaling is not None:
            choice("lr_scaling", self.lr_scaling, ("linear", "sqrt", "none"))
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
        for name in ("jitter_p", "grayscale_p", "flip_p"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise UserError(f"{name} must be in [0, 1], got {value}; fix --{name.replace('_', '-')}")
        if not 0 < self.crop_min_scale <= self.crop_max_scale <= 1:
            raise UserError("crop scales must satisfy 0 < --crop-min-scale <= --crop-max-scale <= 1")
        if self.lr is not None and self.lr <= 0:
            raise UserError(f"learning rate must be > 0, got {self.lr}; fix --lr")
        if self.warmup_epochs < 0:
            raise UserError(f"warmup_epochs must be >= 0, got {self.warmup_epochs}; fix --warmup-epochs")


def field_types() -> dict[str, type]:
    """The plain Python type of every config field (``int | None`` -> ``int``)."""
    hints = typing.get_type_hints(PretrainConfig)
    result: dict[str, type] = {}
    for name, hint in hints.items():
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        is_union = typing.get_origin(hint) in (typing.Union, types.UnionType)
        result[name] = args[0] if is_union else hint
    return result


def _coerce(name: str, value: Any, kind: type) -> Any:
    if value is None:
        return None
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise UserError(f"config key {name!r} must be true or false, got {value!r}")
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind is str and isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value)
    raise UserError(f"config key {name!r} must be {kind.__name__}, got {value!r}")


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a recipe file; a missing, unreadable or non-mapping file is a UserError."""
    if not path.is_file():
        raise UserError(f"config file {path} not found; check the path given to --config")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise UserError(
            f"config file {path} is not valid YAML{where}; fix the syntax or regenerate it with --print-config"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must be a mapping of keys to values, got {type(data).__name__}")
    return data


def build_config(file_values: dict[str, Any], overrides: dict[str, Any]) -> PretrainConfig:
    """Merge file values and flag overrides (flags win), reject unknown keys, validate."""
    types_ = field_types()
    merged: dict[str, Any] = {}
    for source in (file_values, overrides):
        for key, value in source.items():
            name = key.replace("-", "_")
            if name not in types_:
                known = ", ".join(sorted(types_))
                raise UserError(f"unknown config key {key!r}; remove it (known keys: {known})")
            merged[name] = _coerce(name, value, types_[name])
    config = PretrainConfig(**merged)
    config.validate()
    return config


def config_to_dict(config: PretrainConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)


def config_to_yaml(config: PretrainConfig) -> str:
    return yaml.safe_dump(config_to_dict(config), sort_keys=False)


def load_run_config(run_dir: Path) -> PretrainConfig:
    """The config saved in a run directory."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise UserError(f"{run_dir} has no config.yaml; pass the directory of a simclr run")
    return build_config(read_yaml(path), {})


def config_fields() -> list[dataclasses.Field[Any]]:
    return list(fields(PretrainConfig))
