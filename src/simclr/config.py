"""The config class of pretraining (``simclr pretrain``); the autoencoder's is :mod:`simclr.autoencoder_config`.

A config dataclass is the single source of truth for its command: every field carries its help text (and,
for the CLI, its group and parser) through :func:`simclr.settings.setting`, the CLI generates the flags from
the fields (``lr_scaling`` becomes ``--lr-scaling``), a recipe YAML uses the same names, flags win over the
file (:func:`simclr.settings.build_settings`), and the resolved config is saved in the run directory so every
later command can rebuild the run. The settings other commands share are defined once and inherited here:
the data reading group (:class:`simclr.data.reading.DataReading`) and the accelerator
(:class:`simclr.device_settings.Accelerator`). What a config's automatic settings become for the data at
hand (the views, the stem, the learning rate) is :mod:`simclr.resolve`.

This module imports no torch: the CLI builds its parsers from it (:meth:`PretrainConfig.validate` imports
the names it checks against when it runs). It is longer than 500 lines because every pretraining setting is a
field here, with its help, and the checks of how settings relate sit beside them, in one class a saved
config.yaml mirrors flat; each section of settings is a class of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from simclr.data.reading import IMAGE_SIDE, DataReading, MemoryBudget
from simclr.device_settings import Accelerator, check_batch_fits
from simclr.errors import UserError
from simclr.optim.early_stopping import EarlyStopping
from simclr.ranges import (
    AT_LEAST_TWO_VIEWS,
    COUNT,
    FRACTION_BELOW_ONE,
    NON_NEGATIVE,
    POSITIVE,
    PROBABILITY,
    SCALE,
    SEED,
    Range,
    at_least,
    parse_duration,
)
from simclr.settings import build_settings, check_values, setting, shared_setting, short_repr

LOGGERS = ("csv", "tensorboard", "mlflow", "wandb", "none")  # the trackers of simclr.tracking
PRECISIONS = ("auto", "32", "16-mixed", "bf16-mixed")
LOSSES = ("ntxent", "supcon")  # simclr.losses.ntxent's NT-Xent, simclr.losses.supcon's SupCon


def numbers(text: str) -> tuple[float, ...]:
    """A comma-separated list of numbers (``--local-crop-scale 0.05,0.14``); argparse names this in its error."""
    return tuple(float(part) for part in text.split(","))


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
class PretrainDataset:
    dataset: str = _data(
        "spirograph | cifar10 | cifar100 | stl10 | mnist | imagenette | fgvc-aircraft | imagefolder | ... "
        "(docs/DATASETS.md)",
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
        path=True,
    )
    subset_sha256: str | None = _data("the subset file's SHA-256, recorded when the run starts", None, cli=False)
    image_size: int | None = _data(
        "side of the stored images; default: the dataset's (image folders: chosen from the images' sizes)",
        None,
        within=IMAGE_SIDE,
    )
    train_size: int = _data("spirograph: number of generated training images", 100_000, within=COUNT)
    test_size: int = _data("spirograph: number of generated test images", 20_000, within=COUNT)
    pack_dir: str | None = _data(
        "where a folder over --memory-budget is packed (default: an entry of $SIMCLR_CACHE/packed, else "
        "~/.cache/simclr/packed, keyed by the folder's files)",
        None,
        path=True,
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

    n_views: int = _views(
        "views per image (>= 2) at the image size: multi-crop's global crops",
        2,
        within=AT_LEAST_TWO_VIEWS,
        aliases=("--global-crops",),
    )
    local_crops: int = _views(
        "multi-crop (SwAV): N small views per image besides the global ones; every view of an image is a positive "
        "of every other (docs/GUIDE.md)",
        0,
        metavar="N",
        within=NON_NEGATIVE,
    )
    local_crop_size: int | None = _views("side of the local crops (default: half the image side)", None, within=COUNT)
    local_crop_scale: tuple[float, ...] = _views(
        "crop area fraction range of the local crops (SwAV on ImageNet: 0.05,0.14)",
        (0.05, 0.14),
        parse=numbers,
        metavar="A,B",
        within=SCALE,
    )
    jitter_strength: float | None = _views(
        "colour-jitter strength s (default: 0.5 for <=64px data, 1.0 above)", None, within=NON_NEGATIVE
    )
    brightness: float | None = _views("brightness jitter (default 0.8 s)", None, within=NON_NEGATIVE)
    contrast: float | None = _views("contrast jitter (default 0.8 s)", None, within=NON_NEGATIVE)
    saturation: float | None = _views("saturation jitter (default 0.8 s)", None, within=NON_NEGATIVE)
    hue: float | None = _views("hue jitter (default 0.2 s)", None, within=NON_NEGATIVE)
    jitter_p: float = _views("probability of colour jitter", 0.8, within=PROBABILITY)
    grayscale_p: float = _views("probability of grayscale", 0.2, within=PROBABILITY)
    flip_p: float = _views("probability of a horizontal flip", 0.5, within=PROBABILITY)
    vflip_p: float = _views(
        "probability of a vertical flip (not in SimCLR: for data without an up)", 0.0, within=PROBABILITY
    )
    rotation_p: float = _views("probability of a rotation (not in SimCLR)", 0.0, within=PROBABILITY)
    rotation_degrees: float = _views(
        "--rotation-p: angles drawn uniformly from [-D, D] degrees", 30.0, metavar="D", within=Range(0, 180)
    )
    rotation_quarter_turns: bool = _views("--rotation-p: angles drawn from the multiples of 90 degrees instead", False)
    positives: str = _views(
        "what a view is paired with: another view of the same image (SimCLR), or a view of another image of the "
        "same class, drawn every epoch (the sthalles/SimCLR fork's labelled mode; needs labels and in-memory data)",
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
    normalization_std: list[float] | None = _views("the std --standardize measured", None, cli=False, within=POSITIVE)
    crop_min_scale: float = _views("smallest crop area fraction of RandomResizedCrop", 0.08, within=SCALE)
    crop_max_scale: float = _views("largest crop area fraction", 1.0, within=SCALE)
    blur_p: float | None = _views(
        "probability of Gaussian blur (default: 0.5 above 64px, else 0)", None, within=PROBABILITY
    )


@dataclass
class _Model:
    """The backbone and the projection head."""

    backbone: str = _model(
        "torchvision ResNet / ResNeXt / Wide-ResNet, or timm:<model> (pip install 'simclr-kit[timm]')",
        "resnet18",
    )
    stem: str = _model("auto | cifar | stl | imagenet (auto: by image size; imagenet with --weights imagenet)", "auto")
    weights: str = _model(
        "none: random initialisation; imagenet: start the backbone from torchvision's ImageNet weights (read "
        "from the torch hub cache, downloaded there when missing); timm: a timm backbone's pretrained weights "
        "(from the Hugging Face cache, downloaded there when missing)",
        "none",
        choices=("none", "imagenet", "timm"),
    )
    head: str = _model("mlp | linear | identity | ae", "mlp")
    head_hidden_dim: int | None = _model("hidden width of the mlp head (default: feature size)", None, within=COUNT)
    head_out_dim: int = _model("projection size", 128, within=COUNT)
    head_layers: int = _model("linear layers in the mlp head", 2, within=COUNT)
    head_batch_norm: bool = _model("BatchNorm in the mlp head's hidden layers", True)
    ae_checkpoint: str | None = _model(
        "--head ae: the weights (or run directory) written by 'simclr train-ae'", None, path=True
    )
    freeze_head_input: bool = _model("--head ae: keep the autoencoder's embedding layer frozen", True)
    head_activation: str = _model(
        "--head mlp: activation of the hidden layers; --head ae: after the embedding layer (relu, silu, gelu, "
        "sigmoid, tanh, ...)",
        "relu",
    )


@dataclass
class _Loss:
    """The contrastive loss (NT-Xent or SupCon), its negatives and the gradient penalty."""

    loss: str = _loss(
        "ntxent (SimCLR) | supcon: same-class images are positives too (needs labels)", "ntxent", choices=LOSSES
    )
    temperature: float = _loss("temperature of NT-Xent or SupCon", 0.5, within=POSITIVE)
    gather_distributed: bool = _loss("gather negatives across processes (with gradients)", True)
    queue_size: int = _loss(
        "NT-Xent: the last K first-view embeddings as extra negatives, MoCo's queue (0: off)", 0, within=NON_NEGATIVE
    )
    lambda_gp: float = _loss(
        "gradient-penalty weight for invariance to the view parameters (Foster et al. 2020); 0: plain SimCLR",
        0.0,
        within=NON_NEGATIVE,
    )
    gp_upper_limit: float = _loss(
        "the penalty is clamped from above at this value (no gradient above it)", 1.0, within=POSITIVE
    )
    gp_draws: int = _loss("re-drawn view parameters per image for the penalty", 100, within=COUNT)
    gp_normalization: bool = _loss("L2-normalise the representation before the penalty", True)
    gp_exclude: str | None = _loss(
        "view parameters left out of the penalty, comma-separated (e.g. h on Spirograph: docs/REPRODUCING.md)", None
    )


@dataclass
class _Optimiser:
    """The optimiser, the batch and the learning-rate schedule."""

    optimizer: str = _optim("lars | sgd | adam | adamw", "lars")
    lr: float | None = _optim(
        "base learning rate before scaling (default per optimizer: lars 0.3, sgd 0.12, adam/adamw 1e-3)",
        None,
        within=POSITIVE,
    )
    lr_scaling: str | None = _optim(
        "linear (base x B/256) | sqrt (base x sqrt(B)) | none (default: none for adam/adamw, else linear)", None
    )
    weight_decay: float | None = _optim(
        "weight decay (default per optimizer: lars 1e-6, sgd 5e-4, adam 1e-6, adamw 1e-4)", None, within=NON_NEGATIVE
    )
    momentum: float = _optim("momentum for lars / sgd", 0.9, within=FRACTION_BELOW_ONE)
    nesterov: bool = _optim("Nesterov momentum for sgd", False)
    adam_betas: tuple[float, ...] = _optim(
        "adam / adamw: the two betas (e.g. 0.5 0.99, SimCLR-Lightning's)",
        (0.9, 0.999),
        nargs=2,
        within=FRACTION_BELOW_ONE,
    )
    adam_eps: float = _optim("adam / adamw: eps, added to the denominator", 1e-8, within=POSITIVE)
    clip_grad_norm: float | None = _optim(
        "scale the gradients down to this global L2 norm before each step when above it (default: no clipping)",
        None,
        within=POSITIVE,
    )
    batch_size: int = _optim(
        "images per process and step", 256, within=at_least(2, "NT-Xent needs other images as negatives")
    )
    micro_batch: int | None = _optim(
        "embed and back-propagate the batch M images at a time, with the loss and gradients of the whole batch "
        "(gradient caching: docs/LARGE_BATCHES.md); divides --batch-size (default: the whole batch at once)",
        None,
        metavar="M",
        within=COUNT,
    )
    epochs: int = _optim("training epochs", 100, within=COUNT)
    max_steps: int | None = _optim(
        "stop after this many steps (the schedule still spans all epochs; default: train all epochs)",
        None,
        within=COUNT,
    )
    warmup_epochs: float = _optim(
        "linear warmup epochs before the cosine decay (a run too short to hold it warms up for 10%% of its steps)",
        10.0,
        within=NON_NEGATIVE,
    )
    schedule: str = _optim(
        "learning rate after the warmup: cosine decay (SimCLR), constant (InvCLR's and rittik9's runs without "
        "annealing), or hold-cosine: no warmup ramp, the peak held for --hold-epochs, then the cosine (PyTorch "
        "SimCLR's and SimCLR-Lightning's schedule)",
        "cosine",
        choices=("cosine", "constant", "hold-cosine"),
    )
    hold_epochs: float = _optim(
        "--schedule hold-cosine: epochs at the peak learning rate before the cosine (instead of --warmup-epochs)",
        10.0,
        within=NON_NEGATIVE,
    )
    final_lr_ratio: float = _optim(
        "--schedule cosine: the final learning rate as a fraction of the peak", 0.0, within=PROBABILITY
    )


@dataclass
class _Hardware(Accelerator):
    """Where and how the run computes; --accelerator is the one every command shares."""

    precision: str = _hardware("auto | 32 | 16-mixed | bf16-mixed (auto: bf16 where supported)", "auto")
    devices: str = _hardware("number of devices per machine, or a list such as 0,1", "1")
    num_nodes: int = _hardware("machines training together (DDP; docs/SCALING.md)", 1, within=COUNT)
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
    deterministic: bool = _hardware(
        "deterministic algorithms only (torch.use_deterministic_algorithms): a rerun on the same machine gives "
        "bit-identical weights; slower on GPUs, and an operation with no deterministic kernel stops the run",
        False,
    )


@dataclass
class _Run:
    """The run directory, checkpoints, monitors and logging."""

    seed: int = _run("seed for weights, data order and views", 0, within=SEED)
    out: str | None = _run("run directory (default runs/<dataset>-<backbone>-<timestamp>)", None, path=True)
    resume: str | None = _run(
        "continue the run in this directory from its last checkpoint (default: a new run)", None, path=True
    )
    logger: str = _run(
        "csv | tensorboard | mlflow | wandb | none: the tracker that also gets the hyperparameters as used, "
        "the run's environment record and every evaluation command's metrics (the CSV of training steps is always "
        "written; mlflow keeps one store for the runs of a folder, beside them, unless MLFLOW_TRACKING_URI is set; "
        "wandb runs offline without WANDB_API_KEY)",
        "csv",
    )
    experiment: str = _run("the experiment the tracker groups the run under (MLflow experiment, W&B project)", "simclr")
    checkpoint_every_steps: int = _run(
        "also checkpoint every N steps (0: only at epoch ends)", 200, within=NON_NEGATIVE
    )
    knn_every_epochs: int = _run("online kNN monitor every N epochs (0: off)", 1, within=NON_NEGATIVE)
    knn_k: int = _run("neighbours of the kNN monitor", 200, within=COUNT)
    knn_temperature: float = _run("temperature of the kNN monitor", 0.1, within=POSITIVE)
    knn_max_images: int = _run("cap on bank and query images of the kNN monitor", 10_000, within=COUNT)
    log_every_steps: int = _run(
        "read the step's values from the device every N steps: progress line, metrics rows, loggers",
        50,
        within=COUNT,
    )
    val_fraction: float = _run(
        "hold out this fraction of the training images (stratified by label, seeded) for a validation NT-Xent "
        "and contrastive top-1/top-5 each epoch, on the same views every epoch (0: off)",
        0.0,
        within=FRACTION_BELOW_ONE,
    )
    save_top_k: int = _run(
        "keep the backbones of the K epochs with the lowest validation loss as checkpoints/epoch-NNNN.safetensors, "
        "the best also as checkpoints/best.safetensors (needs --val-fraction; 0: off)",
        0,
        within=NON_NEGATIVE,
    )
    patience: int = shared_setting(EarlyStopping, "patience", default=0)  # needs --val-fraction
    min_delta: float = shared_setting(EarlyStopping, "min_delta", default=0.0)
    keep_every_epochs: int = _run(
        "keep the backbone every N epochs as checkpoints/epoch-NNNN.safetensors (0: off)", 0, within=NON_NEGATIVE
    )
    time_budget: str | None = _run(
        "fit the whole learning-rate schedule (warmup, then the decay to its end) into this much training time, "
        "e.g. 90s, 10m, 1h30m: the steps are planned from the measured speed (docs/TRAINING.md)",
        None,
        metavar="DURATION",
    )
    online_probe: bool = _run(
        "train a linear classifier on the detached backbone features of the training views (labelled data), "
        "logged per epoch as online_linear_top1 (and online_linear_val_top1 with --val-fraction)",
        False,
    )


@dataclass
class PretrainConfig(
    _Run, _Hardware, _Optimiser, _Loss, _Model, _Views, _PretrainData, MemoryBudget, DataReading, PretrainDataset
):
    """Everything that defines a pretraining run. ``None`` means "the dataset's or optimiser's default"."""

    def _validate_other_backbone(self) -> None:
        """A timm model or a module of one's own: a name after the prefix, and none of the settings that only
        shape torchvision ResNets."""
        kind, _, name = self.backbone.partition(":")
        if not name.strip():
            raise UserError(f"backbone {short_repr(self.backbone)} names no model; use e.g. --backbone timm:resnet18")
        if self.weights == "imagenet" or (self.weights == "timm" and kind != "timm"):
            owner = "torchvision's" if self.weights == "imagenet" else "a timm model's"
            raise UserError(f"--weights {self.weights} loads {owner} weights; drop it for a {kind} backbone")
        if self.stem != "auto":
            raise UserError(f"--stem {self.stem} shapes torchvision ResNets; drop it for a {kind} backbone")

    def time_budget_seconds(self) -> float | None:
        """``time_budget`` in seconds (None: no budget); unreadable text is a UserError."""
        return parse_duration(self.time_budget) if self.time_budget is not None else None

    def validate(self) -> None:
        """Reject values that cannot work, with the fix in the message (the first problem found): every number
        against its range, then the names and the settings that must agree."""
        check_values(self)
        self._check_names()
        self._check_loss()
        self._check_data_and_length()
        self._check_views_and_schedule()
        self._check_positives_and_checkpoints()
        self._check_micro_batch()

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
            if self.weights == "timm":
                raise UserError("--weights timm loads a timm model's weights; use --backbone timm:<model>")
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
        if not self.experiment.strip():
            raise UserError("--experiment is empty; name the experiment the tracker groups the run under")
        _check_choice("precision", self.precision, PRECISIONS)
        if self.lr_scaling is not None:
            _check_choice("lr_scaling", self.lr_scaling, SCALING_RULES)

    def _check_loss(self) -> None:
        """SupCon has classes and no queue, and the views excluded from the gradient penalty leave something to
        penalise (the ranges of the loss's numbers are checked with every number)."""
        if self.loss == "supcon" and self.queue_size > 0:
            raise UserError("--queue-size keeps no labels, which SupCon needs; drop it or use --loss ntxent")
        if self.gp_exclude:
            self._check_gp_exclude()

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
        self.time_budget_seconds()
        if self.num_nodes > 1 and not (self.out or self.resume):
            raise UserError("--num-nodes > 1 needs --out, a folder every machine reaches (the run directory)")
        if self.limit_train_images is not None and self.limit_train_images < self.batch_size:
            raise UserError(
                f"--limit-train-images {self.limit_train_images} is smaller than --batch-size {self.batch_size}; "
                "raise the limit or lower the batch size"
            )
        if self.dataset == "imagefolder" and not self.data_dir:
            raise UserError("dataset imagefolder needs a folder; pass --data-dir DIR")

    def _check_views_and_schedule(self) -> None:
        """The crop scales are in order, the normalisation is whole, and a batch of views fits the machine."""
        if not self.crop_min_scale <= self.crop_max_scale:
            raise UserError("crop scales must satisfy 0 < --crop-min-scale <= --crop-max-scale <= 1")
        if self.image_size is not None:
            check_batch_fits(self.batch_size * self.n_views, self.image_size, "one batch of views")
        if self.local_crops:
            self._check_local_crops()
        if self.standardize and not self.normalize:
            raise UserError("--standardize normalises with measured statistics; drop it or --no-normalize")
        for name in ("normalization_mean", "normalization_std"):
            value = getattr(self, name)
            if value is not None and len(value) != 3:
                raise UserError(f"{name} must be three numbers, got {short_repr(value)}; fix the run's config")
        if len(self.adam_betas) != 2:
            raise UserError(
                f"--adam-betas takes two numbers, got {short_repr(self.adam_betas)}; e.g. --adam-betas 0.9 0.999"
            )

    def _check_local_crops(self) -> None:
        """Local crops have a sorted scale pair and meet none of the settings that pair views differently."""
        low_high = self.local_crop_scale
        if len(low_high) != 2 or not low_high[0] <= low_high[1]:
            raise UserError(f"--local-crop-scale takes A,B with A <= B, got {short_repr(low_high)}; e.g. 0.05,0.14")
        for flag, used in (
            ("--lambda-gp", self.lambda_gp > 0),
            ("--positives class", self.positives == "class"),
            ("--micro-batch", self.micro_batch is not None),
            ("--dataset spirograph (its views are re-renders)", self.dataset == "spirograph"),
        ):
            if used:
                raise UserError(f"--local-crops does not work with {flag}; drop one of them")

    def _check_positives_and_checkpoints(self) -> None:
        """Class positives have classes to pair, and checkpoints ranked by validation have a validation split."""
        if self.positives == "class" and self.lambda_gp > 0:
            raise UserError("--positives class and --lambda-gp penalise different pairs; use one of them")
        if self.positives == "class" and self.dataset == "spirograph":
            raise UserError("--positives class needs class labels; Spirograph has regression factors, not classes")
        if self.save_top_k > 0 and self.val_fraction == 0:
            raise UserError("--save-top-k ranks epochs by validation loss; add --val-fraction (e.g. 0.1)")
        if self.patience > 0 and self.val_fraction == 0:
            raise UserError("--patience stops on the validation loss; add --val-fraction (e.g. 0.1)")

    def _check_micro_batch(self) -> None:
        """``--micro-batch`` divides the batch and meets none of the settings it cannot re-run per micro-batch."""
        if self.micro_batch is None:
            return
        if self.batch_size % self.micro_batch:
            raise UserError(
                f"--micro-batch {self.micro_batch} does not divide --batch-size {self.batch_size}; pass a divisor of it"
            )
        for flag, used in (
            ("--lambda-gp", self.lambda_gp > 0),
            ("--compile", self.compile),
            ("--online-probe", self.online_probe),
        ):
            if used:
                raise UserError(f"--micro-batch does not work with {flag} (docs/LARGE_BATCHES.md); drop one of them")


def _check_choice(name: str, value: str, options: tuple[str, ...]) -> None:
    if value not in options:
        flag = "--" + name.replace("_", "-")
        raise UserError(
            f"unknown {name.replace('_', ' ')} {short_repr(value)}; use {flag} with one of: {', '.join(options)}"
        )


def listed_names(text: str | None) -> list[str]:
    """The names of a comma-separated setting (``gp_exclude``), as given, blanks ignored."""
    return [name.strip() for name in (text or "").split(",") if name.strip()]


def build_config(file_values: dict[str, Any], overrides: dict[str, Any]) -> PretrainConfig:
    """A validated pretraining config from a recipe's values and flag overrides (flags win)."""
    return build_settings(PretrainConfig, file_values, overrides)
