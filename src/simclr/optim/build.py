"""Build the optimiser of a run from its name, with SimCLR's parameter groups.

SimCLR (Chen et al. 2020, arXiv:2002.05709, Appendix B.1) excludes batch-norm parameters and biases
from weight decay and from LARS adaptation (You et al. 2017, arXiv:1708.03888): decaying a BN scale
or a bias towards zero only fights the normalisation, and their norms are too small for a
meaningful trust ratio. :func:`parameter_groups` makes that split once for every optimiser.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import nn

from simclr.errors import UserError
from simclr.optim.lars import LARS

__all__ = [
    "OPTIMIZER_DEFAULTS",
    "OPTIMIZER_NAMES",
    "OptimizerDefaults",
    "build_optimizer",
    "parameter_groups",
    "set_hyper_parameters",
]


class OptimizerDefaults(NamedTuple):
    """What a run uses when it names an optimiser and leaves these unset."""

    lr: float  # base learning rate, before scaling by the batch size
    scaling: str  # a rule of :data:`simclr.optim.schedules.SCALING_RULES`
    weight_decay: float


# LARS 0.3 x B/256 with wd 1e-6 is SimCLR's ImageNet recipe (Chen et al. 2020, Appendix B.1); SGD follows
# lightly's CIFAR-10 benchmark (0.06 x B/128 = 0.12 x B/256, wd 5e-4); Adam follows the CIFAR-10 ResNet-18
# study in docs/SOURCES.md (1e-3, unscaled).
OPTIMIZER_DEFAULTS: dict[str, OptimizerDefaults] = {
    "lars": OptimizerDefaults(0.3, "linear", 1e-6),
    "sgd": OptimizerDefaults(0.12, "linear", 5e-4),
    "adam": OptimizerDefaults(1e-3, "none", 1e-6),
    "adamw": OptimizerDefaults(1e-3, "none", 1e-4),
}
OPTIMIZER_NAMES: tuple[str, ...] = tuple(OPTIMIZER_DEFAULTS)


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Split the trainable parameters of ``model`` into a decayed and an excluded group.

    Parameters with ``ndim <= 1`` (batch-norm / layer-norm weights and biases, every bias) go to a
    group with ``weight_decay=0.0`` and ``lars_exclude=True``; all others (conv and linear weights)
    get ``weight_decay`` and ``lars_exclude=False``. Frozen parameters (``requires_grad=False``) are
    left out, and empty groups are dropped. Torch's own optimisers keep the extra ``lars_exclude``
    key untouched and ignore it.

    >>> groups = parameter_groups(nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)), 1e-6)
    >>> [(len(g["params"]), g["weight_decay"], g["lars_exclude"]) for g in groups]
    [(1, 1e-06, False), (3, 0.0, True)]
    """
    if weight_decay < 0:
        raise UserError(f"weight decay must be >= 0, got {weight_decay}; pass a non-negative --weight-decay")
    decayed: list[nn.Parameter] = []
    excluded: list[nn.Parameter] = []
    for _, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (excluded if param.ndim <= 1 else decayed).append(param)
    groups: list[dict[str, Any]] = []
    if decayed:
        groups.append({"params": decayed, "weight_decay": weight_decay, "lars_exclude": False})
    if excluded:
        groups.append({"params": excluded, "weight_decay": 0.0, "lars_exclude": True})
    return groups


def build_optimizer(
    model: nn.Module,
    name: str,
    lr: float,
    weight_decay: float,
    momentum: float = 0.9,
    nesterov: bool = False,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> torch.optim.Optimizer:
    """The optimiser ``name`` over :func:`parameter_groups` of ``model``.

    * ``"lars"``: :class:`~simclr.optim.lars.LARS` (SimCLR's choice for large batches);
    * ``"sgd"``: torch SGD with momentum (``nesterov`` optional), L2 weight decay;
    * ``"adam"``: torch Adam, L2 weight decay added to the gradient;
    * ``"adamw"``: torch AdamW, decoupled weight decay.

    ``momentum`` and ``nesterov`` apply to LARS and SGD, ``betas`` and ``eps`` to Adam and AdamW. Batch-norm
    parameters and biases get no weight decay with any optimiser.

    >>> opt = build_optimizer(nn.Linear(3, 2), "sgd", lr=0.1, weight_decay=5e-4)
    >>> type(opt).__name__, [g["weight_decay"] for g in opt.param_groups]
    ('SGD', [0.0005, 0.0])
    """
    if name not in OPTIMIZER_NAMES:
        raise UserError(f"unknown optimizer {name!r}; use one of {', '.join(OPTIMIZER_NAMES)}")
    if lr < 0:
        raise UserError(f"learning rate must be >= 0, got {lr}; pass a non-negative --lr")
    if name in ("lars", "sgd"):
        if momentum < 0:
            raise UserError(f"momentum must be >= 0, got {momentum}; use e.g. 0.9")
        if nesterov and momentum == 0:
            raise UserError("nesterov momentum needs momentum > 0; set --momentum or drop --nesterov")
    if name in ("adam", "adamw") and not all(0.0 <= b < 1.0 for b in betas):
        raise UserError(f"Adam betas must lie in [0, 1), got {betas}; use e.g. (0.9, 0.999)")
    groups = parameter_groups(model, weight_decay)
    if not groups:
        raise UserError(f"the model has no trainable parameters to give to {name}; unfreeze at least one layer")
    if name == "lars":
        return LARS(groups, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


def set_hyper_parameters(
    optimizer: torch.optim.Optimizer,
    weight_decay: float,
    momentum: float,
    nesterov: bool,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> None:
    """Give the groups of an optimiser made by :func:`build_optimizer` these values (the excluded group keeps no
    weight decay; momentum and nesterov, or Adam's betas and eps, where the optimiser has them), keeping its
    per-parameter state.

    A resumed run needs it: loading the optimiser's state brings back the values the run was started with, and
    a resume that changes ``--weight-decay`` or ``--momentum`` must train with the new ones.

    >>> opt = build_optimizer(nn.Linear(3, 2), "sgd", lr=0.1, weight_decay=5e-4)
    >>> set_hyper_parameters(opt, weight_decay=1e-3, momentum=0.5, nesterov=False)
    >>> [(g["weight_decay"], g["momentum"]) for g in opt.param_groups]
    [(0.001, 0.5), (0.0, 0.5)]
    """
    for group in optimizer.param_groups:
        group["weight_decay"] = 0.0 if group.get("lars_exclude") else weight_decay
        if "momentum" in group:
            group["momentum"] = momentum
        if "nesterov" in group:
            group["nesterov"] = nesterov
        if "betas" in group:
            group["betas"], group["eps"] = tuple(betas), eps


def layer_groups(network: nn.Module) -> list[list[nn.Parameter]]:
    """The trainable parameters of a backbone by depth, input side first, for layer-wise learning-rate decay.

    The stem (the network's own parameters, such as a ViT's position embedding, and its leading single-layer
    children: a ResNet's conv1 and bn1) is the first group; every block of a sequence of blocks (a ResNet's
    ``layer1[0]``, a ViT's ``blocks[3]``) is a group of its own, as BEiT's layer decay numbers blocks; any
    other child with parameters is one group, in the order the network defines them.

    >>> from torchvision.models import resnet18
    >>> [len(group) for group in layer_groups(resnet18())][:3]  # stem (conv1, bn1), then layer1's blocks
    [3, 6, 6]
    >>> len(layer_groups(resnet18()))  # the stem, 8 blocks, fc
    10
    """
    groups: list[list[nn.Parameter]] = [[p for p in network.parameters(recurse=False) if p.requires_grad]]
    stem = True
    for child in network.children():
        parameters = [p for p in child.parameters() if p.requires_grad]
        if not parameters:
            continue
        if stem and not list(child.children()):
            groups[0] += parameters  # a single layer before the first block: part of the stem
            continue
        stem = False
        if isinstance(child, nn.Sequential | nn.ModuleList):
            groups += [[p for p in block.parameters() if p.requires_grad] for block in child]
        else:
            groups.append(parameters)
    return [group for group in groups if group]
