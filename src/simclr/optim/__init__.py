"""Optimisation: LARS (You et al. 2017, arXiv:1708.03888), parameter groups and SimCLR's schedules."""

from simclr.optim.build import (
    OPTIMIZER_DEFAULTS,
    OPTIMIZER_NAMES,
    OptimizerDefaults,
    build_optimizer,
    parameter_groups,
)
from simclr.optim.lars import LARS
from simclr.optim.schedules import (
    SCALING_RULES,
    WarmupCosineLR,
    scaled_learning_rate,
    warmup_cosine,
    warmup_steps_for,
)

__all__ = [
    "LARS",
    "OPTIMIZER_DEFAULTS",
    "OPTIMIZER_NAMES",
    "SCALING_RULES",
    "OptimizerDefaults",
    "WarmupCosineLR",
    "build_optimizer",
    "parameter_groups",
    "scaled_learning_rate",
    "warmup_cosine",
    "warmup_steps_for",
]
