"""Find a pretraining run's backbone and config, and rebuild the backbone from its safetensors file.

Every evaluation command takes a run directory (or its backbone file, with the run's config beside it
or given explicitly) and needs nothing else: the file's metadata names the
architecture and stem, and its SHA-256 identifies the exact weights in every result.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from simclr.config import PretrainConfig, build_config
from simclr.errors import UserError
from simclr.models.backbone_file import BackboneMetadata, read_backbone_metadata, read_backbone_tensors
from simclr.models.backbones import CUSTOM_PREFIX, STEMS, build_backbone, measure_feature_dim
from simclr.resolve import backbone_stem
from simclr.rundir import BACKBONE_FILE, CONFIG_FILE, EvalDir, RunDir
from simclr.settings import read_yaml

MAX_IMAGE_SIZE = 8192  # larger is no image size a backbone trains at, only a damaged file


@dataclass(frozen=True)
class RunRef:
    """Where a run's pieces are: its directory, the backbone file evaluated, the run's config, and where
    evaluation writes (``RUN_DIR/eval`` unless ``--eval-dir`` says otherwise)."""

    run: RunDir
    backbone_path: Path
    config: PretrainConfig
    eval: EvalDir

    @property
    def writes_to_run(self) -> bool:
        """True when results go to the run's own evaluation folder (where its report belongs)."""
        return self.eval.path == self.run.eval.path


@dataclass
class LoadedBackbone:
    """A rebuilt backbone plus what identifies it: metadata from the file and the file's SHA-256."""

    module: nn.Module
    feature_dim: int
    metadata: BackboneMetadata
    sha256: str

    def image_size(self, config: PretrainConfig) -> int:
        """The image size the backbone was trained at (from the file's metadata, else the run's config)."""
        return self.metadata.image_size or int(config.image_size or 32)

    def architecture(self, config: PretrainConfig) -> tuple[str, str | None]:
        """``(backbone name, stem)`` (from the file's metadata, else the run's config); the stem is None for a
        timm model or a module of one's own."""
        meta = self.metadata
        return meta.backbone or config.backbone, meta.stem or backbone_stem(config, self.image_size(config))

    def describe(self) -> dict[str, object]:
        """The ``backbone`` block of the evaluation results."""
        meta = self.metadata
        return {
            "name": meta.backbone,
            "stem": meta.stem,
            "feature_dim": self.feature_dim,
            "global_step": meta.global_step,
            "epoch": meta.epoch,
            "sha256": self.sha256,
            "weights": meta.weights,
        }


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_run(
    target: Path | str, config_path: Path | str | None = None, eval_dir: Path | str | None = None
) -> RunRef:
    """``target`` is a run directory or a ``.safetensors`` file; ``config_path`` overrides the config found
    beside it. Errors name what is missing and what to pass instead."""
    target = Path(target).expanduser()
    if target.is_dir():
        run = RunDir(target)
        backbone_path = run.backbone
        if not backbone_path.is_file():
            raise UserError(
                f"{target} has no {BACKBONE_FILE}; pass the directory of a finished (or at least one-epoch) simclr run"
            )
    elif target.is_file():
        if target.suffix != ".safetensors":
            raise UserError(
                f"{target} is not a run directory or a .safetensors backbone; pass RUN_DIR or RUN_DIR/{BACKBONE_FILE}"
            )
        run, backbone_path = RunDir(target.parent), target
    else:
        raise UserError(f"{target} does not exist; pass a run directory or a {BACKBONE_FILE} file")
    config_file = Path(config_path).expanduser() if config_path else run.config
    if not config_file.is_file():
        raise UserError(
            f"no config for {backbone_path}: {config_file} does not exist; "
            f"pass --run-config {CONFIG_FILE} (the run's config)"
        )
    return RunRef(
        run=run,
        backbone_path=backbone_path,
        config=build_config(read_yaml(config_file), {}),
        eval=EvalDir(Path(eval_dir).expanduser()) if eval_dir else run.eval,
    )


def load_backbone(
    ref: RunRef | Path | str, random_weights: bool = False, seed: int = 0, *, module: nn.Module | None = None
) -> LoadedBackbone:
    """The run's backbone with its trained weights, or (``random_weights``) the same architecture with
    torchvision's (or timm's) seeded random initialisation: the baseline a pretrained backbone must beat.

    ``ref`` is a run directory, its ``backbone.safetensors``, or a :class:`RunRef` from :func:`resolve_run`.
    The file's metadata names the network: a torchvision ResNet with its stem or a timm model
    (``timm:<model>``) is rebuilt; a module of your own (``custom:<module.Class>``, trained with
    ``simclr.pretrain(config, backbone=...)``) cannot be, so pass a new instance of it as ``module`` and the
    weights are loaded into it (``module`` also takes any other network the weights fit).
    The module comes back frozen, in eval mode, on the CPU."""
    if not isinstance(ref, RunRef):
        ref = resolve_run(ref)
    meta = read_backbone_metadata(ref.backbone_path)
    name = meta.backbone or ref.config.backbone
    image_size = meta.image_size if meta.image_size is not None else int(ref.config.image_size or 32)
    if not 1 <= image_size <= MAX_IMAGE_SIZE:
        raise UserError(
            f"{ref.backbone_path}: image size {image_size} is outside 1..{MAX_IMAGE_SIZE}; the file is damaged"
        )
    if module is not None:
        if random_weights:
            raise UserError("random_weights rebuilds the architecture by name; drop module= (or random_weights)")
        module = module.cpu()
        feature_dim = measure_feature_dim(module, image_size)
        what = f"the module passed ({type(module).__qualname__})"
    elif name.startswith(CUSTOM_PREFIX):
        class_name = name[len(CUSTOM_PREFIX) :]
        raise UserError(
            f"{ref.backbone_path} holds a module of your own ({class_name}), which simclr cannot rebuild; load it "
            f"from Python: simclr.load_backbone({str(ref.run.path)!r}, module={class_name.rsplit('.', 1)[-1]}(...))"
        )
    else:
        stem = meta.stem or backbone_stem(ref.config, image_size)
        if stem is not None and (stem not in STEMS or stem == "auto"):
            raise UserError(
                f"{ref.backbone_path}: unknown stem {stem[:40]!r}; a backbone file names one of "
                f"{', '.join(s for s in STEMS if s != 'auto')}"
            )
        if random_weights:
            torch.manual_seed(seed)
        module, feature_dim = build_backbone(name, stem, image_size)  # type: ignore[arg-type]
        what = f"a {name} with the {stem} stem" if stem else f"a {name}"
    if random_weights:
        meta = dataclasses.replace(meta, weights="random", global_step=0, epoch=0)
        digest = f"random-init-seed{seed}"
    else:
        load_weights(module, read_backbone_tensors(ref.backbone_path), ref.backbone_path, what)
        digest = file_sha256(ref.backbone_path)
    module.eval()
    for param in module.parameters():
        param.requires_grad_(False)
    return LoadedBackbone(module=module, feature_dim=feature_dim, metadata=meta, sha256=digest)


def load_weights(module: nn.Module, tensors: dict[str, torch.Tensor], where: Path | str, what: str) -> None:
    """Load ``tensors`` into ``module`` exactly: a tensor of the wrong shape, a missing or an unexpected one is
    a one-line UserError naming ``where`` (the file) and ``what`` (the network it should fit)."""
    try:
        missing, unexpected = module.load_state_dict(tensors, strict=False)
    except RuntimeError as exc:  # a tensor of the wrong shape
        first = next((line.strip() for line in str(exc).splitlines() if "size mismatch" in line), str(exc)[:200])
        raise UserError(f"{where} does not fit {what} ({first})") from None
    if missing or unexpected:
        raise UserError(
            f"{where} does not fit {what} ({len(missing)} missing, {len(unexpected)} unexpected tensors); "
            "was it written by another simclr version?"
        )
