"""simclr: SimCLR contrastive pretraining and evaluation (Chen et al., 2020, arXiv:2002.05709).

The building blocks and the two main jobs, importable from here (docs/API.md shows a session end to end)::

    from simclr import NTXentLoss, SimCLRTransform, build_backbone, pretrain, PretrainConfig, load_backbone

and the Lightning module of pretraining, :class:`SimCLRModule`, for a Trainer of one's own.

The names are loaded on first use (PEP 562 ``__getattr__``): ``import simclr`` stays cheap for the CLI,
which reads only ``__version__`` before choosing a sub-command, and imports torch only when a name is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from simclr.version import __version__

# public name -> the module that is its one home
_EXPORTS: dict[str, str] = {
    # views
    "ViewConfig": "simclr.views.config",
    "SimCLRViews": "simclr.views.pipeline",
    "SimCLRTransform": "simclr.views.transform",
    # networks
    "build_backbone": "simclr.models.backbones",
    "build_model": "simclr.model_from_config",
    "SimCLRModel": "simclr.models.simclr_model",
    # loss and optimisation
    "NTXentLoss": "simclr.losses.ntxent",
    "LARS": "simclr.optim.lars",
    "parameter_groups": "simclr.optim.build",
    "WarmupCosineLR": "simclr.optim.schedules",
    "warmup_cosine": "simclr.optim.schedules",
    # pretraining
    "PretrainConfig": "simclr.config",
    "build_config": "simclr.config",
    "pretrain": "simclr.api",
    "PretrainResult": "simclr.training.pretrain",
    "SimCLRModule": "simclr.training.module",
    # the run directory and its backbone
    "RunDir": "simclr.rundir",
    "BackboneMetadata": "simclr.models.backbone_file",
    "read_backbone_metadata": "simclr.models.backbone_file",
    "load_backbone": "simclr.evaluation.loading",
    "LoadedBackbone": "simclr.evaluation.loading",
    # evaluation of frozen features
    "extract_features": "simclr.evaluation.features",
    "linear_probe": "simclr.evaluation.protocols.linear",
    "knn_accuracy": "simclr.evaluation.protocols.knn",
    "UserError": "simclr.errors",
}

# spelled out (not derived from _EXPORTS) so linters and editors read it; tests/api checks the two agree
__all__ = [
    "__version__",
    "BackboneMetadata",
    "LARS",
    "LoadedBackbone",
    "NTXentLoss",
    "PretrainConfig",
    "PretrainResult",
    "RunDir",
    "SimCLRModel",
    "SimCLRModule",
    "SimCLRTransform",
    "SimCLRViews",
    "UserError",
    "ViewConfig",
    "WarmupCosineLR",
    "build_backbone",
    "build_config",
    "build_model",
    "extract_features",
    "knn_accuracy",
    "linear_probe",
    "load_backbone",
    "parameter_groups",
    "pretrain",
    "read_backbone_metadata",
    "warmup_cosine",
]

if TYPE_CHECKING:  # what type checkers and editors see; at run time __getattr__ loads the same names
    from simclr.api import pretrain
    from simclr.config import PretrainConfig, build_config
    from simclr.errors import UserError
    from simclr.evaluation.features import extract_features
    from simclr.evaluation.loading import LoadedBackbone, load_backbone
    from simclr.evaluation.protocols.knn import knn_accuracy
    from simclr.evaluation.protocols.linear import linear_probe
    from simclr.losses.ntxent import NTXentLoss
    from simclr.model_from_config import build_model
    from simclr.models.backbone_file import BackboneMetadata, read_backbone_metadata
    from simclr.models.backbones import build_backbone
    from simclr.models.simclr_model import SimCLRModel
    from simclr.optim.build import parameter_groups
    from simclr.optim.lars import LARS
    from simclr.optim.schedules import WarmupCosineLR, warmup_cosine
    from simclr.rundir import RunDir
    from simclr.training.module import SimCLRModule
    from simclr.training.pretrain import PretrainResult
    from simclr.views.config import ViewConfig
    from simclr.views.pipeline import SimCLRViews
    from simclr.views.transform import SimCLRTransform


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'simclr' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
