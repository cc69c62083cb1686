"""A run's backbone in the formats other tools read: a torch state dict, TorchScript, ONNX.

``backbone.safetensors`` already loads into torchvision and timm given the architecture code (README,
"Loading the weights elsewhere"); TorchScript and ONNX carry the computation itself, so a serving stack
needs neither simclr nor torchvision. Every format maps ``(B, 3, S, S)`` images, normalised with the
metadata's mean and std, to ``(B, feature_dim)`` features, as :func:`~simclr.evaluation.loading.load_backbone`'s
module does; the TorchScript and ONNX files carry that metadata too.
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from simclr.atomic import atomic_write
from simclr.errors import UserError
from simclr.paths import check_output_file

if TYPE_CHECKING:  # torch is imported when a file is written, so the CLI's parser stays light
    import torch

    from simclr.evaluation.loading import LoadedBackbone

EXPORT_FORMATS: tuple[str, ...] = ("state_dict", "torchscript", "onnx")
METADATA_FILE = "simclr.json"
"""The name of the metadata entry inside a TorchScript archive (``torch.jit.load(..., _extra_files=...)``)."""
ONNX_OPSET = 17


def check_export_target(fmt: str, out: Path, overwrite: bool) -> None:
    """Before any work: a known format whose packages are installed, then what every output file needs
    (:func:`simclr.paths.check_output_file`: a name the file system holds, an existing folder this user may
    write into, not a folder itself, no silent overwrite)."""
    if fmt not in EXPORT_FORMATS:
        raise UserError(f"unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}")
    if fmt == "onnx" and importlib.util.find_spec("onnx") is None:
        raise UserError("--format onnx needs the onnx package; pip install onnx (or use --format torchscript)")
    check_output_file(out, overwrite=overwrite)


def export_backbone(loaded: LoadedBackbone, fmt: str, out: Path, image_size: int, overwrite: bool = False) -> Path:
    """Write ``loaded``'s module to ``out`` in format ``fmt`` (atomically: a reader never sees half a file)."""
    import torch

    check_export_target(fmt, out, overwrite)
    module = loaded.module.eval().cpu()
    example = torch.zeros(1, 3, image_size, image_size)
    metadata = {**loaded.metadata.to_strings(), "feature_dim": str(loaded.feature_dim), "sha256": loaded.sha256}
    with atomic_write(out) as tmp:
        if fmt == "state_dict":
            # the plain mapping torchvision's load_state_dict takes; torch.load(weights_only=True) reads it
            torch.save(module.state_dict(), tmp)
        elif fmt == "torchscript":
            with warnings.catch_warnings():
                # torch 2.9+ marks TorchScript deprecated; serving stacks (Triton, LibTorch, DJL) still read it
                warnings.filterwarnings("ignore", category=FutureWarning, message=r".*torch\.jit.*deprecated")
                scripted = torch.jit.script(module)
                torch.jit.save(scripted, str(tmp), _extra_files={METADATA_FILE: json.dumps(metadata)})
        else:
            _export_onnx(module, example, tmp, metadata)
    return out


def _export_onnx(module: torch.nn.Module, example: torch.Tensor, path: Path, metadata: dict[str, str]) -> None:
    """ONNX with a free batch dimension and the backbone's metadata as the model's metadata properties."""
    import onnx
    import torch

    with warnings.catch_warnings():
        # the TorchScript-based exporter is deprecated in torch 2.9+, but it needs no onnxscript and exports
        # a torchvision ResNet exactly (tests/evaluation/test_export.py compares it under onnxruntime)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=["images"],
            output_names=["features"],
            dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}},
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
    model = onnx.load(str(path))
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
