"""The SimCLR training step as a LightningModule: views on the device -> network -> NT-Xent."""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from torch import Tensor

from simclr.data.loader import PARTNER_KEY
from simclr.errors import UserError
from simclr.losses.invariance import gradient_penalty, pin_parameters
from simclr.losses.ntxent import NTXentLoss
from simclr.models.simclr_model import SimCLRModel
from simclr.optim.build import build_optimizer, set_hyper_parameters
from simclr.optim.schedules import WarmupCosineLR
from simclr.training.datamodule import POSITION_KEY
from simclr.views.factory import ViewMaker

PENDING_STEPS = 10_000  # steps of device values a module keeps until they are read


FIX_NONFINITE = "lower --lr, raise --temperature or use --precision 32"


class NonFiniteLossError(UserError):
    """Raised when a NaN or infinite loss is found (at the next log step or save), before any weights
    trained after it are saved. ``what`` says what happened; ``outcome`` what is left of the run and how to
    go on (the run's directory knows: :func:`simclr.training.run_setup.open_run_dir` says it)."""

    def __init__(self, what: str, outcome: str = FIX_NONFINITE) -> None:
        super().__init__(f"training stopped: {what}; {outcome}")
        self.what = what


@dataclass(frozen=True)
class StepMetrics:
    """What one training step logged, read from the device at the log interval."""

    step: int
    epoch: int
    values: dict[str, float]


class NonFiniteGuard:
    """Watches the loss on the device, without a host synchronisation per step.

    Each step it records whether the loss was finite (a device tensor the optimiser step uses to zero the
    gradients of a non-finite step) and keeps the first non-finite step and loss on the device; those are
    read only when :meth:`first_failure` is called, at log steps and before a save.
    """

    def __init__(self) -> None:
        self.finite: Tensor | None = None  # this step's verdict, a 0-d bool on the device
        self._first: Tensor | None = None  # [step, loss] of the first non-finite loss; step -1 while none

    def observe(self, loss: Tensor, step: int) -> None:
        self.finite = torch.isfinite(loss.detach())
        if self._first is None:
            self._first = torch.tensor([-1.0, 0.0], dtype=torch.float64, device=loss.device)
        fresh = ~self.finite & (self._first[0] < 0)
        now = torch.stack([torch.full_like(self._first[0], step), loss.detach().to(torch.float64)])
        self._first = torch.where(fresh, now, self._first)

    def zero_nonfinite_gradients(self, parameters: list[Tensor]) -> None:
        """Zero every gradient of a step whose loss was not finite (a masked fill on the device): the weights
        stay finite until the run stops at the next check."""
        if self.finite is None:
            return
        bad = ~self.finite
        for parameter in parameters:
            if parameter.grad is not None:
                parameter.grad.masked_fill_(bad, 0.0)

    def first_failure(self) -> tuple[int, float] | None:
        """(step, loss) of the first non-finite loss, or None; reads the device (a synchronisation)."""
        if self._first is None:
            return None
        step, loss = self._first.tolist()
        return (int(step), loss) if step >= 0 else None


@dataclass(frozen=True)
class OptimSettings:
    """The resolved optimiser and schedule of a run (learning rate already scaled by the batch)."""

    name: str
    peak_lr: float
    weight_decay: float
    momentum: float
    nesterov: bool
    total_steps: int
    warmup_steps: int
    steps_per_epoch: int
    global_batch: int  # images per step on all processes together: what the learning rate is scaled by
    decay: str = "cosine"  # after the warmup; or "constant"
    final_ratio: float = 0.0  # the cosine's final learning rate as a fraction of the peak


@dataclass(frozen=True)
class InvarianceSettings:
    """The gradient penalty of Foster et al. 2020 (``--lambda-gp`` > 0): weight, clamp, re-draws, and
    whether the representation is L2-normalised first."""

    weight: float
    upper_limit: float = 1.0
    draws: int = 100
    normalize: bool = True
    excluded_columns: tuple[int, ...] = ()  # view parameters left out (their re-draws pinned to the first view's)


def view_generator(seed: int, step: int, rank: int) -> torch.Generator:
    """The random source of the views of one step on one process.

    It depends only on (seed, step, rank), not on what ran before, so a resumed run draws exactly the
    views the uninterrupted run would have drawn, and W processes draw independent views.
    """
    generator = torch.Generator()
    generator.manual_seed((seed * 1_000_003 + step * 10_007 + rank * 7_919 + 17) % (2**63 - 1))
    return generator


class PretrainingModule(L.LightningModule):
    """The Lightning module of pretraining: wires the views, the network (:class:`SimCLRModel`), the loss and
    the optimiser once; everything else lives in the building blocks."""

    def __init__(
        self,
        model: SimCLRModel,
        views: ViewMaker,
        loss: NTXentLoss,
        optim: OptimSettings,
        seed: int,
        channels_last: bool = True,
        invariance: InvarianceSettings | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.views: ViewMaker = views
        self.criterion = loss
        self.optim = optim
        self.seed = seed
        self.channels_last = channels_last
        self.invariance = invariance if invariance is not None and invariance.weight > 0 else None
        self.train_loader: Any = None  # set by the trainer setup; told which batches were consumed
        self._last_step_time: float | None = None
        self.images_per_second: float = float("nan")
        self.guard = NonFiniteGuard()
        # per-step values stay on the device until the log interval reads them all at once (MetricsCSV); the
        # cap bounds what a module trained without that callback holds (the oldest steps are dropped)
        self._pending: deque[tuple[tuple[int, int], dict[str, Tensor]]] = deque(maxlen=PENDING_STEPS)
        self._host_values: dict[int, dict[str, float]] = {}

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        generator = view_generator(self.seed, self.global_step, self.global_rank)
        source = batch[self.views.input_key]
        view_params: Tensor | None = None
        if self.invariance is None:
            partners = batch.get(PARTNER_KEY)  # only with --positives class: other view makers need not take it
            views: list[Tensor] = (
                self.views(source, generator) if partners is None else self.views(source, generator, partners=partners)
            )
        else:  # the same views, with the first view's parameters kept differentiable
            views, view_params = self.views.views_with_grad(source, generator)
        # the views come channels_last; the model's memory format decides (a conv follows its input's format)
        inputs = torch.cat(views).contiguous(
            memory_format=torch.channels_last if self.channels_last else torch.contiguous_format
        )
        features, projections = self.model(inputs)
        loss, accuracy = self.criterion.loss_and_accuracy(*projections.chunk(len(views)), ks=(1, 5))
        if self.invariance is not None and view_params is not None:
            loss = loss + self.invariance.weight * self._gradient_penalty(
                features[: source.shape[0]], view_params, generator, loss
            )
        self.guard.observe(loss, self.global_step)
        if self.train_loader is not None and POSITION_KEY in batch:
            self.train_loader.mark_consumed(*batch[POSITION_KEY])
        self._update_throughput(source.shape[0])
        self._host_values[self.global_step] = {"lr": self.current_lr(), "img_per_s": self.images_per_second}
        top1, top5 = accuracy.unbind()
        self._record(train_loss=loss.detach(), contrastive_top1=top1, contrastive_top5=top5)
        return loss

    def _gradient_penalty(
        self, representation: Tensor, view_params: Tensor, generator: torch.Generator, contrastive: Tensor
    ) -> Tensor:
        settings = self.invariance
        assert settings is not None
        batch = view_params.shape[0]
        redraws = self.views.redraw_invariance_params(batch, settings.draws, generator, view_params.device)
        redraws = pin_parameters(redraws, view_params, settings.excluded_columns)
        unclamped = gradient_penalty(
            representation,
            view_params,
            redraws,
            normalize=settings.normalize,
            upper_limit=math.inf,
            generator=generator,
        )
        penalty = unclamped.clamp(max=settings.upper_limit)  # the seed's clamp: no gradient when saturated
        self._record(
            contrastive_loss=contrastive.detach(),
            gradient_penalty=penalty.detach(),
            gradient_penalty_unclamped=unclamped.detach(),
        )
        return penalty

    def _record(self, **values: Tensor) -> None:
        """Keep this step's device values for the next :meth:`drain_step_metrics` (no synchronisation)."""
        key = (self.global_step, self.current_epoch)
        if not self._pending or self._pending[-1][0] != key:
            self._pending.append((key, {}))
        self._pending[-1][1].update(values)

    def drain_step_metrics(self) -> list[StepMetrics]:
        """The steps logged since the last call, read from the device at once (one synchronisation for the
        whole log interval, not one per step). Steps from the first non-finite loss on are left out: the run
        stops there (:meth:`raise_if_nonfinite`)."""
        pending, self._pending = list(self._pending), deque(maxlen=PENDING_STEPS)
        host, self._host_values = self._host_values, {}
        if not pending:
            return []
        names = [sorted(values) for _, values in pending]
        flat = torch.stack([values[name].float() for (_, values) in pending for name in sorted(values)])
        numbers = iter(flat.tolist())
        failure = self.guard.first_failure()
        rows = []
        for ((step, epoch), _), keys in zip(pending, names, strict=True):
            values = {name: next(numbers) for name in keys}
            values.update(host.get(step, {}))
            if failure is None or step < failure[0]:
                rows.append(StepMetrics(step, epoch, values))
        return rows

    def raise_if_nonfinite(self) -> None:
        """Stop the run if any process saw a non-finite loss: called at log steps and before every save,
        so weights trained after a non-finite loss are never saved."""
        failure = self.guard.first_failure()
        if self._trainer is not None and self.trainer.world_size > 1:
            flag = torch.tensor([0 if failure is None else 1], device=self.device)
            if not int(self.trainer.strategy.reduce(flag, reduce_op="max").item()):
                return
        elif failure is None:
            return
        where = f"at step {failure[0]}" if failure is not None else "on another process"
        value = f"{failure[1]}" if failure is not None else "non-finite"
        raise NonFiniteLossError(f"the loss became {value} {where} (lr {self.current_lr():.4g})")

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        self.guard.zero_nonfinite_gradients([p for group in optimizer.param_groups for p in group["params"]])

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.raise_if_nonfinite()

    def _update_throughput(self, images: int) -> None:
        """Source images per second (each gives n_views views), smoothed; the unit of BENCHMARKS.md."""
        now = time.perf_counter()
        if self._last_step_time is not None:
            rate = images / max(now - self._last_step_time, 1e-9)
            old = self.images_per_second
            self.images_per_second = rate if old != old else 0.9 * old + 0.1 * rate
        self._last_step_time = now

    def on_train_epoch_start(self) -> None:
        self._last_step_time = None

    def on_train_start(self) -> None:
        """Make the optimiser and its schedule follow this module's settings from the step reached on.

        Resuming loads the optimiser's and the scheduler's state from the checkpoint, and with it the learning
        rate, weight decay, momentum and step counts the run was started with; a resume that changes them
        (``--resume-with-changes --lr``, ``--epochs``, ...) is recorded in the run, and this is where it is
        applied. For a run that starts afresh it changes nothing.
        """
        settings = self.optim
        optimizer = self.trainer.optimizers[0]
        set_hyper_parameters(optimizer, settings.weight_decay, settings.momentum, settings.nesterov)
        for config in self.trainer.lr_scheduler_configs:
            if isinstance(config.scheduler, WarmupCosineLR):
                config.scheduler.retarget(
                    settings.peak_lr, settings.total_steps, settings.warmup_steps, settings.final_ratio, settings.decay
                )

    def current_lr(self) -> float:
        if self._trainer is None or not self.trainer.optimizers:
            return float("nan")
        return float(self.trainer.optimizers[0].param_groups[0]["lr"])

    def configure_optimizers(self) -> Any:
        settings = self.optim
        optimizer = build_optimizer(
            self.model,
            settings.name,
            lr=settings.peak_lr,
            weight_decay=settings.weight_decay,
            momentum=settings.momentum,
            nesterov=settings.nesterov,
        )

        scheduler = WarmupCosineLR(
            optimizer, settings.total_steps, settings.warmup_steps, settings.final_ratio, decay=settings.decay
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
