"""Learning-rate scaling and the per-step linear-warmup + cosine-decay schedule of SimCLR.

SimCLR (Chen et al. 2020, arXiv:2002.05709, Section 2 and Appendix B.1) scales the base learning
rate with the batch size (``0.3 * B / 256`` for LARS; ``0.075 * sqrt(B)`` works better for small
batches and long runs, Appendix B.1), warms it up linearly for 10 epochs and then decays it with a
cosine schedule without restarts, updating it every step rather than every epoch.
"""

from __future__ import annotations

import math

import torch

from simclr.errors import UserError

__all__ = [
    "DECAYS",
    "SCALING_RULES",
    "WarmupCosineLR",
    "scaled_learning_rate",
    "warmup_cosine",
    "warmup_steps_for",
]

SCALING_RULES = ("linear", "sqrt", "none")
# after the warmup: SimCLR's cosine, or none (InvCLR's and rittik9's runs); "hold-cosine" holds the peak instead
# of ramping up to it, then decays (the PyTorch SimCLR and SimCLR-Lightning projects: 10 epochs at the peak)
DECAYS = ("cosine", "constant", "hold-cosine")


def scaled_learning_rate(base_lr: float, batch_size: int, rule: str) -> float:
    """The peak learning rate for a (global) batch size under one of SimCLR's scaling rules.

    * ``"linear"``: ``base_lr * batch_size / 256`` (the LARS recipe, Goyal et al.'s rule);
    * ``"sqrt"``: ``base_lr * sqrt(batch_size)`` (SimCLR Appendix B.1, e.g. 0.075 * sqrt(B));
    * ``"none"``: ``base_lr`` unchanged (Adam recipes).

    >>> scaled_learning_rate(0.3, 512, "linear")
    0.6
    """
    if batch_size < 1:
        raise UserError(
            f"batch size must be >= 1 to scale the learning rate, got {batch_size}; pass a positive batch size"
        )
    if rule == "linear":
        return base_lr * batch_size / 256
    if rule == "sqrt":
        return base_lr * math.sqrt(batch_size)
    if rule == "none":
        return float(base_lr)
    raise UserError(f"unknown learning-rate scaling rule {rule!r}; use one of {', '.join(SCALING_RULES)}")


def warmup_cosine(
    step: int, total_steps: int, warmup_steps: int, peak_lr: float, final_lr: float = 0.0, decay: str = "cosine"
) -> float:
    """Learning rate at optimiser step ``step`` (0-based) of a warmup + cosine schedule (``decay="constant"``:
    the peak from the end of the warmup on, no annealing; ``decay="hold-cosine"``: the first ``warmup_steps``
    hold the peak instead of ramping up to it, then the cosine).

    * warmup, ``step < warmup_steps``: ``peak_lr * (step + 1) / warmup_steps``, so the first step
      already moves (``peak / warmup_steps``) and step ``warmup_steps - 1`` reaches ``peak_lr``;
    * decay, ``warmup_steps <= step < total_steps``: with ``t = (step - warmup_steps) /
      (total_steps - warmup_steps)``, ``final + (peak - final) * (1 + cos(pi * t)) / 2``. It starts at
      ``peak_lr`` and would reach ``final_lr`` one step after the last, so every step of the run
      trains with a positive rate (no wasted last step); the midpoint of the decay is
      ``(peak + final) / 2``;
    * ``step >= total_steps``: clamped to ``final_lr`` (e.g. a run resumed with fewer total steps).

    Used with ``peak_lr=1.0`` this is a multiplicative factor for ``LambdaLR``.

    >>> [round(warmup_cosine(s, 6, 2, 1.0), 6) for s in range(7)]
    [0.5, 1.0, 1.0, 0.853553, 0.5, 0.146447, 0.0]
    >>> [warmup_cosine(s, 6, 2, 1.0, decay="constant") for s in range(7)]
    [0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    >>> [round(warmup_cosine(s, 6, 2, 1.0, decay="hold-cosine"), 6) for s in range(7)]
    [1.0, 1.0, 1.0, 0.853553, 0.5, 0.146447, 0.0]
    """
    if decay not in DECAYS:
        raise UserError(f"unknown learning-rate decay {decay!r}; use one of {', '.join(DECAYS)}")
    if total_steps < 1:
        raise UserError(f"the schedule needs total_steps >= 1, got {total_steps}; train for at least one step")
    if not 0 <= warmup_steps <= total_steps:
        raise UserError(
            f"warmup steps must be between 0 and total_steps={total_steps}, got {warmup_steps}; shorten the warmup"
        )
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if step < warmup_steps:
        return float(peak_lr) if decay == "hold-cosine" else peak_lr * (step + 1) / warmup_steps
    if decay == "constant":
        return float(peak_lr)
    if step >= total_steps:
        return float(final_lr)
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return final_lr + (peak_lr - final_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_steps_for(warmup_epochs: float, steps_per_epoch: int, total_steps: int) -> int:
    """Warmup length in steps: ``round(warmup_epochs * steps_per_epoch)``, unless the run cannot hold it.

    A run whose warmup would last as long as the run itself (a smoke test, a 5-epoch sweep cell with the
    paper's 10 warmup epochs) would never reach its peak learning rate; such a run warms up for 10% of its
    steps instead (0 for runs under 10 steps). Every other run keeps the warmup it asked for.

    >>> warmup_steps_for(10, 100, 100_000), warmup_steps_for(10, 100, 800)
    (1000, 80)
    """
    if warmup_epochs < 0:
        raise UserError(f"warmup epochs must be >= 0, got {warmup_epochs}; pass 0 to disable warmup")
    if steps_per_epoch < 0 or total_steps < 0:
        raise UserError(
            f"steps per epoch ({steps_per_epoch}) and total steps ({total_steps}) must be >= 0; "
            "check the dataset size, batch size and epochs"
        )
    planned = round(warmup_epochs * steps_per_epoch)
    return planned if planned < total_steps else total_steps // 10


class _WarmupCosineFactor:
    """Picklable LambdaLR factor; LambdaLR saves its attributes in the scheduler's state_dict.

    After :meth:`WarmupCosineLR.replan` it is anchored: from ``anchor_step`` (whose factor ``anchor_value`` it
    keeps) it joins the schedule of its new step counts without a jump. A warmup still under way ramps on from
    the anchor to the peak at the new warmup's end; a decay under way (or a warmup the new plan has already
    ended) goes on from the point of the cosine that has the anchor's value, over the steps left to the new end.
    """

    def __init__(self, total_steps: int, warmup_steps: int, final_ratio: float, decay: str = "cosine") -> None:
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps
        self.final_ratio = final_ratio
        self.decay = decay
        self.anchor_step: int | None = None
        self.anchor_value = 1.0

    def __call__(self, step: int) -> float:
        plain = warmup_cosine(step, self.total_steps, self.warmup_steps, 1.0, self.final_ratio, self.decay)
        anchor = self.anchor_step
        if anchor is None or step < anchor:
            return plain if anchor is None else self.anchor_value
        if anchor < self.warmup_steps - 1:  # the ramp goes on from the anchor to the peak at the warmup's end
            if step >= self.warmup_steps or self.decay == "hold-cosine":
                return plain
            return self.anchor_value + (1.0 - self.anchor_value) * (step - anchor) / (self.warmup_steps - 1 - anchor)
        if self.decay == "constant":
            return 1.0 if self.anchor_value >= 1.0 else self.anchor_value
        if step >= self.total_steps or anchor >= self.total_steps:
            return self.final_ratio
        start = _cosine_progress(self.anchor_value, self.final_ratio)
        progress = start + (1.0 - start) * (step - anchor) / (self.total_steps - anchor)
        return self.final_ratio + (1.0 - self.final_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _cosine_progress(value: float, final_ratio: float) -> float:
    """The progress (0 to 1) at which the cosine from 1 to ``final_ratio`` has ``value``."""
    span = 1.0 - final_ratio
    fraction = (value - final_ratio) / span if span > 0 else 0.0
    return math.acos(min(1.0, max(-1.0, 2.0 * fraction - 1.0))) / math.pi


class WarmupCosineLR(torch.optim.lr_scheduler.LambdaLR):
    """Per-step :func:`warmup_cosine` applied to every parameter group's initial ``lr``.

    Call ``scheduler.step()`` after every optimiser step (Lightning: ``"interval": "step"``). Each
    group's learning rate at step s is ``initial_lr * warmup_cosine(s, total, warmup, 1, final_ratio)``.

    Args:
        optimizer: the optimiser whose groups' ``lr`` is the peak learning rate.
        total_steps: number of optimiser steps in the run.
        warmup_steps: linear warmup length (see :func:`warmup_steps_for`).
        final_ratio: final learning rate as a fraction of the peak (0 in SimCLR).
        decay: ``"cosine"``, or ``"constant"`` to keep the peak after the warmup.

    Example:
        >>> import torch
        >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.4)
        >>> sched = WarmupCosineLR(opt, total_steps=10, warmup_steps=2)
        >>> opt.param_groups[0]["lr"]
        0.2
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        total_steps: int,
        warmup_steps: int,
        final_ratio: float = 0.0,
        last_epoch: int = -1,
        decay: str = "cosine",
    ) -> None:
        # Validate the arguments now rather than at the first step.
        warmup_cosine(0, total_steps, warmup_steps, 1.0, final_ratio, decay)
        factor = _WarmupCosineFactor(total_steps, warmup_steps, final_ratio, decay)
        super().__init__(optimizer, factor, last_epoch=last_epoch)

    def retarget(self, peak_lr: float, total_steps: int, warmup_steps: int, final_ratio: float, decay: str) -> None:
        """Follow another schedule from the step reached on: every group's peak becomes ``peak_lr`` and the
        warmup + cosine is the one of ``total_steps``, ``warmup_steps``, ``final_ratio`` and ``decay``; the
        groups' current ``lr`` is that schedule's at ``last_epoch``.

        A resumed run needs it: loading the scheduler's state brings back the peak and the step counts the
        run was started with, and a resume that changes ``--lr`` or ``--epochs`` must train with the new ones.

        >>> import torch
        >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.4)
        >>> sched = WarmupCosineLR(opt, total_steps=4, warmup_steps=0)
        >>> sched.step(); sched.step()
        >>> sched.retarget(1.0, total_steps=8, warmup_steps=0, final_ratio=0.0, decay="cosine")
        >>> round(opt.param_groups[0]["lr"], 6) == round(warmup_cosine(2, 8, 0, 1.0), 6)
        True
        """
        warmup_cosine(0, total_steps, warmup_steps, 1.0, final_ratio, decay)  # the same checks as a new schedule
        for factor in self.lr_lambdas:
            assert isinstance(factor, _WarmupCosineFactor)
            if (factor.total_steps, factor.warmup_steps) != (total_steps, warmup_steps):
                factor.anchor_step = None  # other step counts: the plain schedule of them (a replan's anchor stays)
            factor.total_steps, factor.warmup_steps = total_steps, warmup_steps
            factor.final_ratio, factor.decay = final_ratio, decay
        self.base_lrs = [float(peak_lr)] * len(self.optimizer.param_groups)
        step = max(self.last_epoch, 0)
        for group, factor in zip(self.optimizer.param_groups, self.lr_lambdas, strict=True):
            group["initial_lr"] = float(peak_lr)
            group["lr"] = float(peak_lr) * factor(step)
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def planned_warmup_steps(self) -> int:
        """The warmup (or hold) length, in steps, of the schedule followed now."""
        factor = self.lr_lambdas[0]
        assert isinstance(factor, _WarmupCosineFactor)
        return factor.warmup_steps

    def replan(self, total_steps: int, warmup_steps: int) -> int:
        """End the schedule at ``total_steps`` instead, from the step reached on, with no jump in the learning
        rate: the rest of the decay is stretched or shrunk to the new end, and a warmup under way ramps on to
        the peak at ``warmup_steps``; a warmup that is over stays so, and one the new warmup would have ended
        already ramps on to the peak over the new warmup's share of the steps left. Returns the
        warmup length the schedule follows. A time budget (:mod:`simclr.training.time_budget`) replans when it
        learns how fast the steps are.

        >>> import torch
        >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        >>> sched = WarmupCosineLR(opt, total_steps=10, warmup_steps=0)
        >>> for _ in range(5): sched.step()
        >>> before = opt.param_groups[0]["lr"]
        >>> sched.replan(total_steps=20, warmup_steps=0)  # the warmup it follows
        0
        >>> opt.param_groups[0]["lr"] == before, [round(f(20), 6) for f in sched.lr_lambdas]
        (True, [0.0])
        """
        kept = warmup_steps
        step = max(self.last_epoch, 0)
        for factor in self.lr_lambdas:
            assert isinstance(factor, _WarmupCosineFactor)
            value = factor(step)
            ramping = step < factor.warmup_steps - 1
            total_steps = max(total_steps, step, 1)
            kept = min(factor.warmup_steps, total_steps)  # a warmup that is over stays so
            if ramping:  # the ramp ends at the new warmup's end, or, when that is past, in its share of the rest
                rest = step + 1 + max(1, round((total_steps - step) * warmup_steps / total_steps))
                kept = min(total_steps, warmup_steps if warmup_steps > step + 1 else rest)
            warmup_cosine(0, total_steps, kept, 1.0, factor.final_ratio, factor.decay)  # a new schedule's checks
            factor.total_steps, factor.warmup_steps = total_steps, kept
            factor.anchor_step, factor.anchor_value = step, value
        for group, base, factor in zip(self.optimizer.param_groups, self.base_lrs, self.lr_lambdas, strict=True):
            group["lr"] = base * factor(step)
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]
        return kept
