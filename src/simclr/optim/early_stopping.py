"""The early-stopping settings every training loop that validates shares: pretraining (``simclr pretrain
--val-fraction``) and the classifier loops of fine-tuning, the supervised baseline and the SGD linear probe.

One definition of ``--patience`` and ``--min-delta``; each command gives its own default through
:func:`simclr.settings.shared_setting`. This module imports no torch: the CLI builds its flags from it.
"""

from __future__ import annotations

from dataclasses import dataclass

from simclr.ranges import NON_NEGATIVE
from simclr.settings import setting

__all__ = ["EarlyStopping"]


@dataclass(frozen=True)
class EarlyStopping:
    """When a loop that validates every epoch stops before its last epoch."""

    patience: int = setting(
        "epochs without an improvement of the validation loss before training stops (0: never)", 0, within=NON_NEGATIVE
    )
    min_delta: float = setting(
        "the smallest fall of the validation loss that counts as an improvement", 0.0, within=NON_NEGATIVE
    )
