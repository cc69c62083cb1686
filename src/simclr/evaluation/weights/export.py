"""A run's backbone in the formats other tools read: a torch state dict, ``torch.export`` (pt2), TorchScript, ONNX.

``backbone.safetensors`` already loads into torchvision and timm given the architecture code (README,
"Loading the weights elsewhere"); pt2, TorchScript and ONNX carry the computation itself, so a serving stack
needs neither simclr nor torchvision. pt2 (``torch.export``) is the recommended one: torch marks TorchScript
deprecated, though serving stacks (Triton, LibTorch, DJL) still read it. Every format maps ``(B, 3, S, S)``
images, normalised with the metadata's mean and std, to ``(B, feature_dim)`` features, as
:func:`~simclr.evaluation.loading.load_backbone`'s module does, for any batch size B; with ``dynamic_size``
the pt2 and ONNX files take any height and width the backbone does (a ResNet pools globally, so any size
from a few pixels up), else only the run's image size S. The pt2, TorchScript and ONNX files carry the
metadata too.
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simclr.atomic import atomic_write
from simclr.errors import UserError
from simclr.paths import check_output_file

if TYPE_CHECKING:  # torch is imported when a file is written, so the CLI's parser stays light
    import torch

    from simclr.evaluation.loading import LoadedBackbone

EXPORT_FORMATS: tuple[str, ...] = ("state_dict", "pt2", "torchscript", "onnx")
DYNAMIC_SIZE_FORMATS = ("pt2", "onnx")
"""The formats that fix the input's size unless asked not to (``dynamic_size``); the others take any size."""
METADATA_FILE = "simclr.json"
"""The name of the metadata entry inside a pt2 or TorchScript archive (``torch.export.load(...,
extra_files=...)``, ``torch.jit.load(..., _extra_files=...)``)."""
ONNX_OPSET = 17


def check_export_target(fmt: str, out: Path, overwrite: bool, dynamic_size: bool = False) -> None:
    """Before any work: a known format whose packages are installed, a name its readers take, then what every
    output file needs (:func:`simclr.paths.check_output_file`: a name the file system holds, an existing folder
    this user may write into, not a folder itself, no silent overwrite)."""
    if fmt not in EXPORT_FORMATS:
        raise UserError(f"unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}")
    if dynamic_size and fmt not in DYNAMIC_SIZE_FORMATS:
        raise UserError(
            f"--dynamic-size applies to --format {' and '.join(DYNAMIC_SIZE_FORMATS)}; a {fmt} file takes any size "
            "the backbone does, so leave --dynamic-size out"
        )
    if fmt == "onnx" and importlib.util.find_spec("onnx") is None:
        raise UserError("--format onnx needs the onnx package; pip install 'simclr-kit[onnx]' (or use --format pt2)")
    if fmt == "pt2" and out.suffix != ".pt2":
        raise UserError(f"cannot write {out}: torch.export.load reads only files named *.pt2; name --out accordingly")
    check_output_file(out, overwrite=overwrite)


def export_backbone(
    loaded: LoadedBackbone, fmt: str, out: Path, image_size: int, overwrite: bool = False, dynamic_size: bool = False
) -> Path:
    """Write ``loaded``'s module to ``out`` in format ``fmt`` (atomically: a reader never sees half a file);
    ``dynamic_size``: a pt2 or ONNX file takes any height and width, not only ``image_size``."""
    import torch

    check_export_target(fmt, out, overwrite, dynamic_size)
    module = loaded.module.eval().cpu()
    name = loaded.metadata.backbone or "the backbone"
    if dynamic_size:
        _check_takes_other_sizes(module, name, image_size, loaded.feature_dim)
    example = torch.zeros(1, 3, image_size, image_size)
    metadata = {**loaded.metadata.to_strings(), "feature_dim": str(loaded.feature_dim), "sha256": loaded.sha256}
    # traced before the file is opened: a backbone torch cannot export leaves nothing behind
    program = _exported_program(module, name, image_size, dynamic_size) if fmt == "pt2" else None
    with atomic_write(out) as tmp:
        if fmt == "state_dict":
            # the plain mapping torchvision's load_state_dict takes; torch.load(weights_only=True) reads it
            torch.save(module.state_dict(), tmp)
        elif program is not None:
            # torch.export.save takes only a name ending in .pt2 or an open file; the temporary's name has no .pt2
            with tmp.open("wb") as handle:
                torch.export.save(program, handle, extra_files={METADATA_FILE: json.dumps(metadata)})
        elif fmt == "torchscript":
            with warnings.catch_warnings():
                # torch 2.9+ marks TorchScript deprecated; serving stacks (Triton, LibTorch, DJL) still read it
                warnings.filterwarnings("ignore", category=FutureWarning, message=r".*torch\.jit.*deprecated")
                scripted = torch.jit.script(module)
                torch.jit.save(scripted, str(tmp), _extra_files={METADATA_FILE: json.dumps(metadata)})
        else:
            _export_onnx(module, example, tmp, metadata, dynamic_size)
            if dynamic_size:
                _check_onnx_takes_other_sizes(tmp, module, name, image_size)
    return out


def _check_takes_other_sizes(module: torch.nn.Module, name: str, image_size: int, feature_dim: int) -> None:
    """Refuse ``dynamic_size`` for a backbone that computes nothing sensible at another size than the run's: one
    image twice as large must give ``feature_dim`` features (a ResNet's global pooling does; a ViT's fixed
    position embedding does not)."""
    # imported when a file is written, so that the CLI's parser stays light (the module's TYPE_CHECKING note)
    import torch

    probe = 2 * image_size
    try:
        with torch.no_grad():
            shape = tuple(module(torch.zeros(1, 3, probe, probe)).shape)
        reason = "" if shape == (1, feature_dim) else f"a {probe} px image gives features of shape {shape}"
    except (RuntimeError, AssertionError, ValueError) as exc:  # how torch and timm refuse a size
        reason = " ".join(str(exc).split())[:160]
    if reason:
        raise UserError(f"{name} takes only {image_size} px inputs ({reason}); export without --dynamic-size")


def _check_onnx_takes_other_sizes(path: Path, module: torch.nn.Module, name: str, image_size: int) -> None:
    """Run the ONNX graph at twice the run's size under onnxruntime, when it is installed, and refuse a graph
    that does not compute the backbone's features there: ONNX's exporter traces the network, and a network
    that adapts to the size in Python (a ViT interpolating its position embedding) leaves the traced size
    baked into the graph. Without onnxruntime, :func:`_check_takes_other_sizes` is the only check."""
    if importlib.util.find_spec("onnxruntime") is None:
        return
    # imported when a file is written, so that the CLI's parser stays light (the module's TYPE_CHECKING note)
    import numpy as np
    import onnxruntime
    import torch

    probe = torch.rand(1, 3, 2 * image_size, 2 * image_size)
    with torch.no_grad():
        expected = module(probe).numpy()
    try:
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 4  # its failure is told in our one line, not also in onnxruntime's log
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        (features,) = session.run(None, {"images": probe.numpy()})
        reason = "" if np.allclose(features, expected, rtol=1e-3, atol=1e-3) else "other features than the backbone's"
    except Exception as exc:  # onnxruntime raises its own exception types, one per failure
        reason = " ".join(str(exc).split())[:160]
    if reason:
        raise UserError(
            f"the ONNX graph of {name} keeps the traced {image_size} px size ({2 * image_size} px: {reason}); "
            "export without --dynamic-size, or use --format pt2"
        )


def _exported_program(
    module: torch.nn.Module, name: str, image_size: int, dynamic_size: bool
) -> torch.export.ExportedProgram:
    """``torch.export.export`` of ``module`` with a free batch dimension (and a free height and width with
    ``dynamic_size``); what torch cannot export that way is a one-line UserError."""
    # imported when a file is written, so that the CLI's parser stays light (the module's TYPE_CHECKING note)
    import torch
    from torch.export import Dim

    # a batch of 2: torch.export specialises a dimension whose example is 1 to the constant 1
    example = torch.zeros(2, 3, image_size, image_size)
    dims: dict[int, Any] = {0: Dim("batch", min=1)}
    if dynamic_size:  # DYNAMIC: torch works out the sizes the network takes, and fails if it takes only one
        dims |= {2: Dim.DYNAMIC, 3: Dim.DYNAMIC}
    try:
        return torch.export.export(module, (example,), dynamic_shapes=(dims,))
    except Exception as exc:  # torch's exporter raises many types; each means this backbone cannot go as asked
        what = "batch size and image size" if dynamic_size else "batch size"
        reason = " ".join(str(exc).split())[:200]
        fix = "export without --dynamic-size, or " if dynamic_size else ""
        raise UserError(
            f"torch {torch.__version__} cannot export {name} with a free {what} ({reason}); {fix}use --format onnx"
        ) from None


def _export_onnx(
    module: torch.nn.Module, example: torch.Tensor, path: Path, metadata: dict[str, str], dynamic_size: bool
) -> None:
    """ONNX with a free batch dimension (and free height and width with ``dynamic_size``) and the backbone's
    metadata as the model's metadata properties."""
    import onnx
    import torch

    image_axes = {0: "batch", 2: "height", 3: "width"} if dynamic_size else {0: "batch"}

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
            dynamic_axes={"images": image_axes, "features": {0: "batch"}},
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
    model = onnx.load(str(path))
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
