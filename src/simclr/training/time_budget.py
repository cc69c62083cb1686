"""The training time of a pretraining run, and the plan that fits its schedule into ``--time-budget``.

:class:`TrainingTime` counts the seconds a run trains: the steps, their data loading and the checkpoint writes,
not the kNN monitor, the validation or the online probe's scoring at epoch ends (:class:`ResumeTrainingTime`
marks where they end), and not what happens after training (the final evaluation). With a budget it measures
the seconds a step takes, after a few warm-up steps, and plans the number of optimiser steps so that the whole
schedule (warmup, then the decay to its end) ends within the budget; it checks the plan every few steps and
replans, without a jump in the learning rate (:meth:`~simclr.optim.schedules.WarmupCosineLR.replan`), when
the steps left at the measured speed would miss the time left by more than :data:`DRIFT`. ``--epochs`` (the
schedule's cap) and ``--max-steps`` (where the run stops) stay upper bounds. Rank 0 decides from its clock and
broadcasts the plan, so every process stops at the same step.

The checkpoint keeps the budget, the training seconds spent, the planned steps and the measured speed: a
resumed run continues with the time left and keeps the plan unless its own measured speed says otherwise.
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
import time
from datetime import datetime, timedelta
from typing import Any

import lightning as L

from simclr.optim.schedules import WarmupCosineLR, warmup_steps_for
from simclr.ranges import format_duration
from simclr.rundir import RunDir
from simclr.training.module import SimCLRModule
from simclr.training.run_record import record_training_time

log = logging.getLogger("simclr")

now = time.monotonic  # the clock training time is read from (tests put a fake clock here)

# The first steps pay once for what later steps reuse (CUDA and cuDNN's kernel choice, torch.compile's
# compilation, the loader workers starting): they count as training time but not towards the speed.
WARMUP_STEPS_SKIPPED = 3
# The speed is the median of this many steps: enough that one slow step (a checkpoint write, a new epoch's
# loader) does not move it, few enough that the plan is made within the first seconds of most runs.
MEASURED_STEPS = 10
CHECK_EVERY_STEPS = 10  # the plan is checked this often (on several processes: one broadcast per check)
DRIFT = 0.10  # the plan is remade when the steps it has left would miss the time left by more than this fraction
# A plan that would end early is kept while the time it leaves unused is under this many steps' time: near the
# end, 10% of the time left is less than a step, and every check would add a step or two (seen on 2 DDP ranks:
# 100 -> 104 -> 100 -> 101 steps in the last 40). A plan that would overrun the budget is always remade.
DRIFT_FLOOR_STEPS = 2


def planned_total_steps(step: int, spent: float, budget: float, seconds_per_step: float, cap: int) -> int:
    """The optimiser steps of a schedule that ends within ``budget`` seconds: ``step`` steps done in ``spent``
    seconds, then as many as the time left holds at ``seconds_per_step``; never more than ``cap`` (the epochs'
    steps), never fewer than ``step`` (a spent budget stops the run at once).

    >>> planned_total_steps(13, 6.5, 30.0, 0.5, 1000), planned_total_steps(13, 6.5, 30.0, 0.5, 40)
    (60, 40)
    """
    left = max(0.0, budget - spent)
    return max(step, min(cap, step + int(left / seconds_per_step + 1e-9)))


@dataclasses.dataclass
class BudgetState:
    """What the checkpoint keeps: the budget, the training seconds spent, the plan and the speed it used."""

    budget_seconds: float | None = None
    spent_seconds: float = 0.0
    planned_steps: int | None = None
    seconds_per_step: float | None = None


class TrainingTime(L.Callback):
    """Counts the run's training seconds and, with a budget, plans its steps to fit it (module docstring).

    Put it before the kNN monitor (its ``on_train_epoch_end`` stops the count) and before the checkpoint (the
    count is current when it is saved); :meth:`resume_marker` after the monitors starts the count again.
    """

    def __init__(
        self,
        run: RunDir,
        budget: float | None,
        cap: int,
        max_steps: int | None,
        lead_in_epochs: float,
        steps_per_epoch: int,
    ) -> None:
        self.run = run
        self.state = BudgetState(budget_seconds=budget)
        self.budget = budget
        self.cap = cap  # the epochs' steps: the schedule never spans more
        self.max_steps = max_steps  # where the run stops at the latest (the schedule is not shortened by it)
        self.lead_in_epochs, self.steps_per_epoch = lead_in_epochs, steps_per_epoch
        self._since: float | None = None  # the clock when the count last started; None while paused
        self._durations: list[float] = []  # training seconds of each step since the start, warm-up steps left out
        self._start_step = 0

    # -- counting -------------------------------------------------------------------------------------------
    def spent(self) -> float:
        """Training seconds so far, the current interval included."""
        running = now() - self._since if self._since is not None else 0.0
        return self.state.spent_seconds + running

    def _mark(self) -> float:
        """Add the interval since the last mark to the count; returns its length."""
        current = now()
        interval = current - self._since if self._since is not None else 0.0
        self.state.spent_seconds += interval
        self._since = current
        return interval

    def pause(self) -> None:
        self._mark()
        self._since = None

    def resume_marker(self) -> L.Callback:
        """The callback that starts the count again after the epoch-end monitors (placed after them)."""
        return ResumeTrainingTime(self)

    # -- Lightning hooks ------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(dataclasses.replace(self.state, spent_seconds=self.spent()))

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved = BudgetState(**state_dict)
        self.state = dataclasses.replace(saved, budget_seconds=self.budget)
        if self.budget is None:  # a budget dropped on resume: the run trains the schedule of its epochs again
            self.state.planned_steps = self.state.seconds_per_step = None
        elif saved.planned_steps is not None:  # kept until the measured speed, or another budget, remakes it
            log.info(
                "time budget %s: %s of training spent, continuing the plan of %d steps%s",
                format_duration(self.budget),
                format_duration(saved.spent_seconds),
                saved.planned_steps,
                "" if saved.budget_seconds == self.budget else " until the speed is measured against the new budget",
            )

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start_step = trainer.global_step
        self._durations = []
        self._since = now()
        if self.state.planned_steps is not None:  # a resumed run keeps its plan (before the module's retarget)
            self._apply(trainer, pl_module, self.state.planned_steps, replan_schedule=False)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        interval = self._mark()
        done = trainer.global_step - self._start_step
        if done > WARMUP_STEPS_SKIPPED:
            self._durations.append(interval)
        if self.budget is None:
            return
        measured = done - WARMUP_STEPS_SKIPPED - MEASURED_STEPS
        if measured >= 0 and measured % CHECK_EVERY_STEPS == 0:
            self._check_plan(trainer, pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.pause()  # the kNN monitor, the validation and the probe's scoring that follow are not training

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._since is None:  # paused by an epoch end without the resume marker after it
            self._since = now()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._mark()
        if trainer.global_rank == 0:
            record_training_time(self.run, self.budget, self.state.spent_seconds, trainer.global_step)

    # -- the plan -------------------------------------------------------------------------------------------
    def _check_plan(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Rank 0 measures and decides; every process applies the same plan."""
        decision = self._decide(trainer.global_step) if trainer.global_rank == 0 else None
        decision = trainer.strategy.broadcast(decision, src=0)
        if decision is not None:
            self.state.planned_steps, self.state.seconds_per_step = decision
            self._apply(trainer, pl_module, decision[0], replan_schedule=True)

    def _decide(self, step: int) -> tuple[int, float] | None:
        """``(planned steps, seconds per step)`` when the plan is made or remade, else None."""
        assert self.budget is not None
        window = self._durations[-(MEASURED_STEPS if self.state.planned_steps is None else CHECK_EVERY_STEPS) :]
        speed = max(statistics.median(window), 1e-9)
        spent, planned = self.state.spent_seconds, self.state.planned_steps
        if planned is not None:
            left = self.budget - spent
            overrun = (planned - step) * speed - left
            allowed = DRIFT * left if overrun > 0 else max(DRIFT * left, DRIFT_FLOOR_STEPS * speed)
            if left > 0 and abs(overrun) <= allowed:
                return None  # the plan still fits
        total = planned_total_steps(step, spent, self.budget, speed, self.cap)
        if total == planned:
            return None
        stop = min(total, self.max_steps) if self.max_steps else total
        if total <= step:
            log.warning("time budget %s: spent after %d steps; stopping now", format_duration(self.budget), step)
            return total, speed
        ends = datetime.now() + timedelta(seconds=(stop - step) * speed)
        log.info(
            "time budget %s: %.4g s/step measured, %d steps %s (%d of them done; the epochs allow %d%s), training "
            "ends around %s after %s of training",
            format_duration(self.budget),
            speed,
            total,
            "planned" if planned is None else f"replanned from {planned}",
            step,
            self.cap,
            f", --max-steps stops at {self.max_steps}" if self.max_steps and self.max_steps < total else "",
            ends.strftime("%H:%M:%S"),
            format_duration(spent + (stop - step) * speed),
        )
        return total, speed

    def _apply(self, trainer: L.Trainer, pl_module: L.LightningModule, total: int, *, replan_schedule: bool) -> None:
        """Stop at ``total`` (or ``--max-steps``), and end the schedule there."""
        trainer.fit_loop.epoch_loop.max_steps = min(total, self.max_steps) if self.max_steps else total
        warmup = warmup_steps_for(self.lead_in_epochs, self.steps_per_epoch, total)
        for config in trainer.lr_scheduler_configs:
            if isinstance(config.scheduler, WarmupCosineLR):
                if replan_schedule:
                    warmup = config.scheduler.replan(total, warmup)
                else:
                    warmup = config.scheduler.planned_warmup_steps()
        if isinstance(pl_module, SimCLRModule):  # the settings its on_train_start (a resume) sets the schedule to
            pl_module.optim = dataclasses.replace(pl_module.optim, total_steps=total, warmup_steps=warmup)


class ResumeTrainingTime(L.Callback):
    """Starts the count of :class:`TrainingTime` again when the epoch-end monitors are done."""

    def __init__(self, training_time: TrainingTime) -> None:
        self.training_time = training_time

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.training_time._since = now()
