"""Find a pretraining run's backbone and config, and rebuild the backbone from its safetensors file.

Every evaluation command takes a run directory (or a ``backbone.safetensors`` with the run's
``config.yaml`` beside it or given explicitly) and needs nothing else: the file's metadata names the
architecture and stem, and its SHA-256 identifies the exact weights in every result.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open
from torch import nn

from simclr.config import PretrainConfig, build_config, read_yaml
from simclr.errors import UserError
from simclr.models import build_backbone, resolve_stem

BACKBONE_FILE = "backbone.safetensors"
CHECKPOINT_FILE = Path("checkpoints") / "last.ckpt"


@dataclass(frozen=True)
class RunRef:
    """Where a run's pieces are. ``eval_dir`` is where evaluation writes (``RUN_DIR/eval``)."""

    run_dir: Path
    backbone_path: Path
    config: PretrainConfig
    eval_dir: Path

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT_FILE


@dataclass
class LoadedBackbone:
    """A rebuilt backbone plus what identifies it: metadata from the file and the file's SHA-256."""

    module: nn.Module
    feature_dim: int
    metadata: dict[str, str]
    sha256: str

    def image_size(self, config: PretrainConfig) -> int:
        """The image size the backbone was trained at (from the file's metadata, else the run's config)."""
        size = self.metadata.get("image_size", "")
        return int(size) if size.isdigit() else int(config.image_size or 32)

    def describe(self) -> dict[str, object]:
        """The ``backbone`` block of ``metrics.json``."""
        meta = self.metadata
        return {
            "name": meta.get("backbone"),
            "stem": meta.get("stem"),
            "feature_dim": self.feature_dim,
            "global_step": int(meta["global_step"]) if meta.get("global_step", "").isdigit() else None,
            "epoch": int(meta["epoch"]) if meta.get("epoch", "").isdigit() else None,
            "sha256": self.sha256,
            "weights": meta.get("weights", "pretrained"),
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
    """``target`` is a run directory or a ``.safetensors`` file; ``config_path`` overrides the
    ``config.yaml`` found beside it. Errors name what is missing and what to pass instead."""
    target = Path(target).expanduser()
    if target.is_dir():
        run_dir, backbone_path = target, target / BACKBONE_FILE
        if not backbone_path.is_file():
            raise UserError(
                f"{target} has no {BACKBONE_FILE}; pass the directory of a finished (or at least one-epoch) simclr run"
            )
    elif target.is_file():
        if target.suffix != ".safetensors":
            raise UserError(
                f"{target} is not a run directory or a .safetensors backbone; pass RUN_DIR or RUN_DIR/{BACKBONE_FILE}"
            )
        run_dir, backbone_path = target.parent, target
    else:
        raise UserError(f"{target} does not exist; pass a run directory or a backbone.safetensors file")
    config_file = Path(config_path).expanduser() if config_path else run_dir / "config.yaml"
    if not config_file.is_file():
        raise UserError(
            f"no config for {backbone_path}: {config_file} does not exist; pass --config CONFIG.yaml (the run's config)"
        )
    config = build_config(read_yaml(config_file), {})
    return RunRef(
        run_dir=run_dir,
        backbone_path=backbone_path,
        config=config,
        eval_dir=Path(eval_dir).expanduser() if eval_dir else run_dir / "eval",
    )


def read_backbone_metadata(path: Path) -> dict[str, str]:
    try:
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except (SafetensorError, OSError) as exc:
        raise UserError(f"cannot read {path}: {exc}; the file is damaged or not a safetensors backbone") from None


def load_backbone(ref: RunRef, random_weights: bool = False, seed: int = 0) -> LoadedBackbone:
    """The run's backbone with its trained weights, or (``random_weights``) the same architecture with
    torchvision's seeded random initialisation: the baseline a pretrained backbone must beat."""
    meta = read_backbone_metadata(ref.backbone_path)
    name = meta.get("backbone") or ref.config.backbone
    image_size = int(meta.get("image_size") or ref.config.image_size or 32)
    stem = meta.get("stem") or resolve_stem(ref.config.stem, image_size)
    if random_weights:
        torch.manual_seed(seed)
    module, feature_dim = build_backbone(name, stem)  # type: ignore[arg-type]
    if random_weights:
        meta = dict(meta, weights="random", global_step="0", epoch="0")
        digest = f"random-init-seed{seed}"
    else:
        try:
            state = load_file(str(ref.backbone_path))
        except (SafetensorError, OSError) as exc:
            raise UserError(f"cannot read {ref.backbone_path}: {exc}; the file is damaged") from None
        missing, unexpected = module.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise UserError(
                f"{ref.backbone_path} does not fit a {name} with the {stem} stem "
                f"({len(missing)} missing, {len(unexpected)} unexpected tensors); was it written by another simclr version?"
            )
        digest = file_sha256(ref.backbone_path)
    module.eval()
    for param in module.parameters():
        param.requires_grad_(False)
    return LoadedBackbone(module=module, feature_dim=feature_dim, metadata=meta, sha256=digest)
