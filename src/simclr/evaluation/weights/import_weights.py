"""``simclr import-weights``: a backbone trained by another SimCLR implementation, as this project's backbone file.

Checkpoints seen in the wild keep a ResNet's tensors under different names:

* sthalles/SimCLR ``checkpoint_XXXX.pth.tar``: ``{"state_dict": {"backbone.conv1.weight", ...,
  "backbone.fc.0.weight", ...}}`` (the projection head lives in ``backbone.fc``);
* Lightning ``.ckpt``: ``{"state_dict": {"model.backbone.conv1.weight" | "encoder.conv1.weight", ...}}``,
  next to the heads of the module;
* ``nn.DataParallel`` / DDP: every key under ``module.``; ``torch.compile``: under ``_orig_mod.``;
* a plain torchvision state dict: ``conv1.weight``, ..., ``fc.weight``.

Container prefixes are peeled off a key until it names a tensor of the backbone; heads (``fc.``,
``head.``, ``projector.``, ...) are dropped. Whatever is left over, or missing, is an error that lists it.
The file is read with ``torch.load(weights_only=True)``, which unpickles tensors and plain containers only,
never code: a whole pickled model (``torch.save(model)``, as torch hub's older files are) is refused in one
line that says to save its ``state_dict()``; so are keys that are not text and weights holding NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from simclr.errors import UserError
from simclr.evaluation.loading import load_weights
from simclr.models.backbone_file import BackboneMetadata, refuse_non_finite, write_backbone
from simclr.models.backbones import build_backbone, load_weights_only

__all__ = ["ImportedBackbone", "import_backbone", "read_checkpoint", "write_imported"]

CONTAINER_PREFIXES = ("module.", "_orig_mod.", "model.", "encoder.", "backbone.", "net.", "online_network.")
HEAD_PREFIXES = (
    "fc.",
    "head.",
    "heads.",
    "projector.",
    "projection.",
    "projection_head.",
    "classifier.",
    "prototypes.",
)
STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "net")
MAX_LISTED = 6  # unmatched names shown in the one-line error


@dataclass
class ImportedBackbone:
    """The backbone's tensors under this project's names, and the checkpoint's tensors left out as heads."""

    tensors: dict[str, Tensor]
    dropped: list[str]
    feature_dim: int


def read_checkpoint(path: Path) -> dict[str, Tensor]:
    """The tensors of a checkpoint (``torch.load(weights_only=True)``): the top level or its ``state_dict``
    (or ``model_state_dict``, ``model``); a file that is none of these is a one-line UserError."""
    loaded: Any = load_weights_only(
        path, "a PyTorch checkpoint of tensors", "pass a checkpoint of tensors, such as a model's state_dict()"
    )
    for key in STATE_DICT_KEYS:
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
            break
    tensors = {str(k): v for k, v in loaded.items() if isinstance(v, Tensor)} if isinstance(loaded, dict) else {}
    if not tensors:
        raise UserError(
            f"{path} holds no state dict of tensors (looked at the top level and {', '.join(STATE_DICT_KEYS)})"
        )
    refuse_non_finite(tensors, path)
    return tensors


def _backbone_name(key: str, wanted: set[str]) -> str | None:
    """``key`` without its container prefixes when that names a backbone tensor; None for a head's tensor.
    A key that is neither is returned unchanged (the caller reports it)."""
    name = key
    while name not in wanted:
        if name.startswith(HEAD_PREFIXES):
            return None
        prefix = next((p for p in CONTAINER_PREFIXES if name.startswith(p)), None)
        if prefix is None:
            return key
        name = name[len(prefix) :]
    return name


def import_backbone(tensors: dict[str, Tensor], backbone: str, stem: str, where: Path) -> ImportedBackbone:
    """Map a checkpoint's tensors onto ``backbone`` with ``stem``; unmatched or missing tensors and shape
    mismatches are one-line UserErrors naming ``where``."""
    module, feature_dim = build_backbone(backbone, stem)  # type: ignore[arg-type]
    wanted = set(module.state_dict())
    mapped: dict[str, Tensor] = {}
    dropped: list[str] = []
    unmatched: list[str] = []
    for key, value in tensors.items():
        name = _backbone_name(key, wanted)
        if name is None:
            dropped.append(key)
        elif name in wanted:
            if name in mapped:
                raise UserError(f"{where}: two tensors map to {name} (one is {key}); the checkpoint holds two networks")
            mapped[name] = value
        else:
            unmatched.append(key)
    missing = sorted(wanted - set(mapped))

    def listed(names: list[str]) -> str:
        more = f", ... ({len(names) - MAX_LISTED} more)" if len(names) > MAX_LISTED else ""
        return ", ".join(names[:MAX_LISTED]) + more

    if unmatched or missing:
        parts = [f"{len(unmatched)} unmatched: {listed(unmatched)}"] if unmatched else []
        parts += [f"{len(missing)} missing: {listed(missing)}"] if missing else []
        raise UserError(f"{where} does not fit a {backbone} with the {stem} stem ({'; '.join(parts)})")
    load_weights(module, mapped, where, f"a {backbone} with the {stem} stem")  # shapes checked here
    return ImportedBackbone(tensors=module.state_dict(), dropped=dropped, feature_dim=feature_dim)


def write_imported(
    source: Path, out: Path, backbone: str, stem: str, image_size: int | None = None, dataset: str | None = None
) -> ImportedBackbone:
    """Read ``source``, map it onto ``backbone`` and write ``out`` (a backbone file) with its metadata."""
    imported = import_backbone(read_checkpoint(source), backbone, stem, source)
    metadata = BackboneMetadata(
        backbone=backbone,
        stem=stem,
        feature_dim=imported.feature_dim,
        dataset=dataset,
        image_size=image_size,
        weights=f"imported from {source.name}",
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    write_backbone(out, imported.tensors, metadata)
    return imported
