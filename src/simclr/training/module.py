"""The SimCLR training step as a LightningModule: views on the device -> network -> NT-Xent."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from torch import Tensor

from simclr.data.loader import PARTNER_KEY
from simclr.errors import UserError
from simclr.losses import NTXentLoss, gradient_penalty
from simclr.losses.invariance import pin_parameters
from simclr.models import SimCLRModel
from simclr.optim import WarmupCosineLR, build_optimizer
from simclr.training.datamodule import POSITION_KEY
from simclr.views.factory import ViewMaker


class NonFiniteLossError(UserError):
    """Raised before the optimiser step when the loss is NaN or infinite, so no bad weights are saved."""


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


class SimCLRModule(L.LightningModule):
    """Wires views, model, loss and optimiser once; everything else lives in the building blocks."""

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

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        generator = view_generator(self.seed, self.global_step, self.global_rank)
        source = batch[self.views.input_key]
        view_params: Tensor | None = None
        if self.invariance is None:
            views: list[Tensor] = self.views(source, generator, partners=batch.get(PARTNER_KEY))
        else:  # the same views, with the first view's parameters kept differentiable
            views, view_params = self.views.views_with_grad(source, generator)
        # the views come channels_last; the model's memory format decides (a conv follows its input's format)
        inputs = torch.cat(views).contiguous(
            memory_format=torch.channels_last if self.channels_last else torch.contiguous_format
        )
        features, projections = self.model(inputs)
        loss = self.criterion(*projections.chunk(len(views)))
        if self.invariance is not None and view_params is not None:
            loss = loss + self.invariance.weight * self._gradient_penalty(
                features[: source.shape[0]], view_params, generator, loss
            )
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"training stopped: the loss became {loss.item()} at step {self.global_step} "
                f"(lr {self.current_lr():.4g}); the run's last checkpoint still holds the last good state; "
                "lower --lr, raise --temperature or use --precision 32, then --resume"
            )
        if self.train_loader is not None and POSITION_KEY in batch:
            self.train_loader.mark_consumed(*batch[POSITION_KEY])
        self._update_throughput(source.shape[0])
        self.log("train_loss", loss.detach(), prog_bar=True, on_step=True, on_epoch=False)
        self.log("lr", self.current_lr(), prog_bar=True, on_step=True, on_epoch=False)
        if self.images_per_second == self.images_per_second:
            self.log("img_per_s", self.images_per_second, prog_bar=True, on_step=True, on_epoch=False)
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
        self.log("contrastive_loss", contrastive.detach(), on_step=True, on_epoch=False)
        self.log("gradient_penalty", penalty.detach(), prog_bar=True, on_step=True, on_epoch=False)
        self.log("gradient_penalty_unclamped", unclamped.detach(), on_step=True, on_epoch=False)
        return penalty

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
