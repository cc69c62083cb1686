"""The backbone file: a backbone's tensors as safetensors, with the metadata that rebuilds and names it.

``backbone.safetensors`` (and the kept ``checkpoints/epoch-NNNN.safetensors``) hold the backbone's
``state_dict`` and a string-to-string header, :class:`BackboneMetadata`: which network, which stem, how many
features, the dataset and the normalisation it was trained with, and which simclr and torch wrote the file in
which layout (:data:`BACKBONE_FORMAT_VERSION`). The header is read here without torch
(:func:`read_backbone_metadata`), so the CLI and a sweep's parent process can look at a backbone cheaply;
the functions that move tensors import safetensors' torch API when called. Reading refuses, in one line
naming the file, whatever is not a backbone we could have written: a header that is not a JSON mapping (or
nests so deep that parsing it recurses out of the stack), metadata that is not what the fields say, and
tensors holding NaN or infinity (:func:`refuse_non_finite`), which would poison every feature computed
from them.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simclr.atomic import atomic_write
from simclr.errors import UserError
from simclr.version import __version__

if TYPE_CHECKING:
    from torch import Tensor

# A safetensors file starts with the little-endian length of its JSON header; a larger header than
# this is not a backbone we wrote (it protects the torch-free reader from a hostile length field).
_MAX_HEADER_BYTES = 100 << 20

BACKBONE_FORMAT_VERSION = 1
"""The layout of the backbone file (a state dict's tensors and this module's metadata keys). Raised only when
the layout changes, so a reader can tell a file it does not understand from one it does; a file without it
was written before the number existed, in layout 1."""


@dataclass(frozen=True)
class BackboneMetadata:
    """What ``backbone.safetensors`` says about itself: enough to rebuild the network and name the weights.

    Safetensors metadata is a string-to-string map; :meth:`to_strings` and :meth:`from_strings` convert.
    Fields a file lacks (written elsewhere, or by an older version) are None.
    """

    backbone: str | None = None  # a torchvision name, timm:<model>, or custom:<module.Class> (the user's own module)
    stem: str | None = None  # cifar | stl | imagenet for a torchvision ResNet; None for the others
    feature_dim: int | None = None
    dataset: str | None = None
    image_size: int | None = None
    global_step: int | None = None
    epoch: int | None = None
    weights: str = "pretrained"
    mean: tuple[float, float, float] | None = None
    """The per-channel normalisation ``(x - mean) / std`` of [0, 1] pixels the backbone was trained with."""
    std: tuple[float, float, float] | None = None
    simclr_version: str | None = None
    """The simclr that wrote the file (:func:`write_backbone` stamps it, and the two below); None in older files."""
    torch_version: str | None = None
    format_version: int | None = None
    """:data:`BACKBONE_FORMAT_VERSION` of the writer; a file of a later layout is refused in one line."""

    def to_strings(self) -> dict[str, str]:
        """Each field as text; mean and std as comma-separated numbers (``0.4914,0.4822,0.4465``), which any
        safetensors reader can split without knowing simclr."""
        return {key: _as_text(value) for key, value in asdict(self).items() if value is not None}

    @classmethod
    def from_strings(cls, values: dict[str, str], where: Path | str = "backbone file") -> BackboneMetadata:
        """The metadata of a file; a number field that is not a whole number is a UserError naming ``where``."""
        parsed: dict[str, Any] = {}
        for item in fields(cls):
            text = values.get(item.name)
            if text is None:
                continue
            if item.name in _NUMBER_FIELDS:
                if not text.strip().isdigit():
                    raise UserError(
                        f"{where}: metadata {item.name}={text[:40]!r} is not a whole number; the file is damaged"
                    )
                parsed[item.name] = int(text)
                if item.name == "format_version" and parsed[item.name] > BACKBONE_FORMAT_VERSION:
                    raise UserError(
                        f"{where}: written in backbone file format {text}, newer than this simclr's "
                        f"{BACKBONE_FORMAT_VERSION}; upgrade simclr (pip install -U simclr-kit) to read it"
                    )
            elif item.name in _TRIPLE_FIELDS:
                parsed[item.name] = _parse_triple(item.name, text, where)
            else:
                parsed[item.name] = text
        return cls(**parsed)


_NUMBER_FIELDS = ("feature_dim", "image_size", "global_step", "epoch", "format_version")
_TRIPLE_FIELDS = ("mean", "std")


def _as_text(value: object) -> str:
    if isinstance(value, tuple | list):
        return ",".join(repr(float(number)) for number in value)
    return str(value)


def _parse_triple(name: str, text: str, where: Path | str) -> tuple[float, float, float]:
    """Three finite numbers, one per RGB channel; anything else is a UserError naming ``where``."""
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or not all(math.isfinite(value) for value in values):
        raise UserError(f"{where}: metadata {name}={text[:40]!r} is not three numbers; the file is damaged")
    return values  # type: ignore[return-value]


def read_backbone_metadata(path: Path) -> BackboneMetadata:
    """The metadata of a safetensors file, read from its JSON header without loading torch or the tensors."""
    try:
        with open(path, "rb") as handle:
            (size,) = struct.unpack("<Q", handle.read(8))
            if size > _MAX_HEADER_BYTES:
                raise ValueError(f"header of {size} bytes")
            header = json.loads(handle.read(size))
        metadata = header.get("__metadata__") or {}
        if not isinstance(metadata, dict):
            raise ValueError("metadata is not a mapping")
    except RecursionError:  # json parses nested arrays recursively: a header of 200,000 "[" is no backbone's
        raise UserError(
            f"cannot read {path}: its header nests too deeply; the file is damaged or not a safetensors backbone"
        ) from None
    except (OSError, struct.error, ValueError, AttributeError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise UserError(f"cannot read {path}: {reason}; the file is damaged or not a safetensors backbone") from None
    return BackboneMetadata.from_strings({str(key): str(value) for key, value in metadata.items()}, path)


def write_backbone(path: Path, tensors: dict[str, Tensor], metadata: BackboneMetadata) -> None:
    """Write the backbone's tensors with their metadata as safetensors, atomically. The metadata is stamped with
    the simclr and torch versions writing it and :data:`BACKBONE_FORMAT_VERSION` (whatever ``metadata`` said of
    them: this file is this writer's), so a file that travels says what made it."""
    import torch  # only when tensors are written, so the header reader stays light

    stamped = replace(
        metadata,
        simclr_version=__version__,
        torch_version=torch.__version__,
        format_version=BACKBONE_FORMAT_VERSION,
    )
    write_safetensors(path, tensors, stamped.to_strings())


def write_safetensors(path: Path, tensors: dict[str, Tensor], metadata: dict[str, str]) -> None:
    """Write tensors (copied to the CPU) and string metadata as safetensors through
    :func:`~simclr.atomic.atomic_write`: a reader never sees half a file."""
    from safetensors.torch import save_file  # torch: only when tensors are written, so the header reader stays light

    contiguous = {name: tensor.detach().cpu().contiguous() for name, tensor in tensors.items()}
    with atomic_write(path) as tmp:
        save_file(contiguous, str(tmp), metadata=metadata)


def read_backbone_tensors(path: Path) -> dict[str, Tensor]:
    """The tensors of a backbone file; a damaged file, or one holding NaN or infinite weights, is a one-line
    UserError."""
    # torch: only when tensors are read, so the header reader stays light
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise UserError(f"cannot read {path}: {reason}; the file is damaged") from None
    refuse_non_finite(tensors, path)
    return tensors


def refuse_non_finite(tensors: dict[str, Tensor], where: Path | str) -> None:
    """Refuse weights holding NaN or infinity, in one line naming ``where`` (the file) and the first such
    tensor: a network trained into NaN, or a damaged file, gives NaN features that every evaluation would
    turn into an overflow or a meaningless score."""
    bad = [name for name, tensor in tensors.items() if tensor.is_floating_point() and not tensor.isfinite().all()]
    if bad:
        raise UserError(
            f"{where} holds NaN or infinite weights ({len(bad)} of {len(tensors)} tensors, e.g. {bad[0][:80]}): "
            "the training diverged or the file is damaged; use an earlier checkpoint or train again with a lower --lr"
        )
