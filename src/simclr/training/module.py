"""The SimCLR training step as a LightningModule (:class:`SimCLRModule`, public as ``simclr.SimCLRModule``):
views on the device -> network -> NT-Xent, built from a :class:`~simclr.config.PretrainConfig` in one call and
rebuilt from a checkpoint by Lightning's ``load_from_checkpoint``."""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from simclr.config import PretrainConfig, build_config
from simclr.data.catalog import DatasetInfo, dataset_info
from simclr.data.loader import PARTNER_KEY
from simclr.errors import UserError
from simclr.hardware import uses_gpu
from simclr.losses.invariance import gradient_penalty, pin_parameters
from simclr.losses.ntxent import NTXentLoss
from simclr.models.backbones import CUSTOM_PREFIX, custom_backbone_name
from simclr.models.simclr_model import SimCLRModel
from simclr.optim.build import build_optimizer, set_hyper_parameters
from simclr.optim.schedules import WarmupCosineLR
from simclr.resolve import local_view_config, normalized_info, view_config
from simclr.settings import config_to_dict
from simclr.training.checkpoint_io import load_checkpoint_safely
from simclr.training.datamodule import POSITION_KEY
from simclr.training.grad_cache import embed_in_micro_batches
from simclr.training.model_and_loss import build_loss, build_seeded_model
from simclr.training.plan import (
    InvarianceSettings,
    OptimSettings,
    invariance_settings,
    plan_schedule,
    trains_channels_last,
)
from simclr.views.factory import ViewMaker, build_views

PENDING_STEPS = 10_000  # steps of device values a module keeps until they are read


FIX_NONFINITE = "lower --lr, raise --temperature or use --precision 32"
QUEUE_KEY = "negative_queue"  # the checkpoint's entry holding the loss's queue of negatives (--queue-size)


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


def view_generator(seed: int, step: int, rank: int) -> torch.Generator:
    """The random source of the views of one step on one process.

    It depends only on (seed, step, rank), not on what ran before, so a resumed run draws exactly the
    views the uninterrupted run would have drawn, and W processes draw independent views.
    """
    generator = torch.Generator()
    generator.manual_seed((seed * 1_000_003 + step * 10_007 + rank * 7_919 + 17) % (2**63 - 1))
    return generator


def batch_as_dict(batch: Any, input_key: str) -> dict[str, Any]:
    """A training batch as the step reads it. simclr's loaders give dicts; a plain ``DataLoader`` gives the
    images tensor, or a tuple or list whose first item is the images (a ``TensorDataset``'s, or
    ``(images, labels)``), uint8 or float in [0, 1]."""
    if isinstance(batch, dict):
        return batch
    if isinstance(batch, Tensor):
        return {input_key: batch}
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], Tensor):
        return {input_key: batch[0]}
    raise UserError(
        f"a training batch is a {type(batch).__name__}; give SimCLRModule an images tensor (B, 3, H, W), a tuple "
        f"whose first item is one, or a dict with {input_key!r}"
    )


def _size_groups(views: list[Tensor]) -> list[tuple[int, int]]:
    """``(start, end)`` of each run of consecutive views of one shape: one group in plain SimCLR, the global and
    the local crops with multi-crop."""
    groups: list[tuple[int, int]] = []
    for index, view in enumerate(views):
        if groups and views[groups[-1][0]].shape == view.shape:
            groups[-1] = (groups[-1][0], index + 1)
        else:
            groups.append((index, index + 1))
    return groups


class SimCLRModule(L.LightningModule):
    """The Lightning module of SimCLR pretraining: wires the views, the network (:class:`SimCLRModel`), the loss
    and the optimiser once; everything else lives in the building blocks.

    It owns the model (``self.model``: backbone and projection head), the view maker that draws ``n_views``
    random views of each batch on the training device (seeded by ``seed``, the step and the process rank), the
    NT-Xent loss (``self.criterion``, negatives gathered across processes) and the optimiser with its warmup +
    cosine schedule, stepped every optimiser step (``optim``). Its caller gives it batches of images (see
    :func:`batch_as_dict`) and a Trainer; :meth:`from_config` builds one from a :class:`PretrainConfig`, and
    ``load_from_checkpoint`` rebuilds one from a checkpoint whose ``hyper_parameters`` it wrote.
    """

    def __init__(
        self,
        model: SimCLRModel,
        views: ViewMaker,
        loss: NTXentLoss,
        optim: OptimSettings,
        seed: int,
        channels_last: bool = True,
        invariance: InvarianceSettings | None = None,
        hyper_parameters: dict[str, Any] | None = None,
        micro_batch: int | None = None,
    ) -> None:
        super().__init__()
        if hyper_parameters is not None:  # what rebuilds this module (plain values: weights_only loads them)
            self.save_hyperparameters(hyper_parameters, logger=False)  # the trackers get the config already
        self.model = model
        self.views: ViewMaker = views
        self.criterion = loss
        self.optim = optim
        self.seed = seed
        self.channels_last = channels_last
        self.invariance = invariance if invariance is not None and invariance.weight > 0 else None
        self.micro_batch = micro_batch  # embed the batch this many images at a time (gradient caching)
        self.train_loader: Any = None  # set by the trainer setup; told which batches were consumed
        self._last_step_time: float | None = None
        self.images_per_second: float = float("nan")
        self.guard = NonFiniteGuard()
        # per-step values stay on the device until the log interval reads them all at once (MetricsCSV); the
        # cap bounds what a module trained without that callback holds (the oldest steps are dropped)
        self._pending: deque[tuple[tuple[int, int], dict[str, Tensor]]] = deque(maxlen=PENDING_STEPS)
        self._host_values: dict[int, dict[str, float]] = {}

    @classmethod
    def from_config(
        cls,
        config: PretrainConfig,
        *,
        image_size: int,
        steps_per_epoch: int,
        processes: int = 1,
        backbone: nn.Module | None = None,
        streamed: bool = False,
        channels_last: bool | None = None,
        info: DatasetInfo | None = None,
    ) -> SimCLRModule:
        """The module ``simclr pretrain`` trains for ``config``, in one call.

        ``image_size``: the side of the (square) images the views are made at. ``steps_per_epoch``: optimiser
        steps in one epoch, each of ``config.batch_size`` images on each of ``processes`` processes (the
        schedule spans ``config.epochs`` such epochs; the learning rate is scaled by the global batch).
        ``backbone``: a module of your own instead of ``config.backbone``. ``streamed``: the batches hold
        views cropped per image by the loader (simclr's streamed data). ``channels_last``: the memory format
        (default: as ``config`` resolves it for its accelerator). ``info``: the constants of the data the run
        loaded (its ``TrainingData.info``: statistics, jitter strength, blur, whether its views are re-renders);
        without it they are the catalog's for ``config.dataset`` at ``image_size``. The views are normalised with
        those statistics, or ``config.normalization_mean``/``_std`` when set. The initial weights are drawn from
        ``config.seed`` (this seeds Python's, NumPy's and torch's generators).
        """
        config.validate()  # a PretrainConfig built by hand has not been checked
        if backbone is not None:
            config = replace(config, backbone=custom_backbone_name(backbone))
        elif config.backbone.startswith(CUSTOM_PREFIX):
            raise UserError(
                f"the backbone is a module of your own ({config.backbone[len(CUSTOM_PREFIX) :]}), which only Python "
                "holds; pass it: backbone=YourModule()"
            )
        info = normalized_info(config, info if info is not None else dataset_info(config.dataset, image_size))
        views = build_views(
            image_size,
            view_config(config, info, image_size),
            config.n_views,
            rerender=info.regression,
            streamed=streamed,
            local_config=local_view_config(config, info, image_size),
            local_views=config.local_crops,
        )
        if channels_last is None:
            channels_last = trains_channels_last(config, uses_gpu(config.accelerator))
        model = build_seeded_model(config, image_size, channels_last, backbone)
        rebuild = {
            "config": config_to_dict(config),
            "image_size": image_size,
            "steps_per_epoch": steps_per_epoch,
            "processes": processes,
            "streamed": streamed,
        }
        return cls(
            model,
            views,
            build_loss(config),
            plan_schedule(config, steps_per_epoch, processes),
            config.seed,
            channels_last,
            invariance_settings(config),
            hyper_parameters=rebuild,
            micro_batch=config.micro_batch,
        )

    @classmethod
    def load_from_checkpoint(  # type: ignore[override]
        cls,
        checkpoint_path: str | Path,
        map_location: str | torch.device | None = None,
        hparams_file: str | Path | None = None,
        strict: bool | None = None,
        weights_only: bool | None = None,
        **kwargs: Any,
    ) -> SimCLRModule:
        """The module a checkpoint was trained as (:meth:`from_config` on its ``hyper_parameters``), with its
        weights; on ``map_location`` (default: the CPU), in the default memory format.

        The checkpoint is always read with ``weights_only=True`` (a crafted file cannot run code). A run whose
        backbone was a module of your own needs it again: ``backbone=YourModule()``, the only other keyword.
        """
        unknown = sorted(set(kwargs) - {"backbone"})
        if hparams_file is not None or weights_only is False or unknown:
            what = "hparams_file" if hparams_file is not None else "weights_only=False" if not unknown else unknown[0]
            raise UserError(
                f"SimCLRModule.load_from_checkpoint takes no {what}; it rebuilds the module from the checkpoint's "
                "own hyper_parameters, read weights-only (pass only the path, map_location, strict, backbone)"
            )
        checkpoint = load_checkpoint_safely(Path(checkpoint_path))
        rebuild = checkpoint.get(cls.CHECKPOINT_HYPER_PARAMS_KEY)
        if not isinstance(rebuild, dict) or "config" not in rebuild:
            raise UserError(
                f"{checkpoint_path} holds no simclr hyper_parameters (an older simclr wrote it); resume the run once "
                "with this version (simclr pretrain --resume) and its next checkpoint holds them"
            )
        module = cls.from_config(
            build_config(rebuild["config"], {}),
            image_size=rebuild["image_size"],
            steps_per_epoch=rebuild["steps_per_epoch"],
            processes=rebuild["processes"],
            backbone=kwargs.get("backbone"),
            streamed=rebuild["streamed"],
            channels_last=False,
        )
        module.load_state_dict(checkpoint["state_dict"], strict=True if strict is None else strict)
        return module.to(map_location or "cpu")

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        batch = batch_as_dict(batch, self.views.input_key)
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
        features, projections = self._embed_views(views)
        loss, accuracy = self.criterion.loss_and_accuracy(
            *projections.chunk(len(views)), labels=batch.get("labels"), ks=(1, 5)
        )
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

    def _embed_views(self, views: list[Tensor]) -> tuple[Tensor, Tensor]:
        """The features and projections of ``views``, view-major as the loss reads them. Views of one size go
        through the network as one batch; multi-crop's global and local crops (two sizes) cannot be
        concatenated, so each size group runs once, the local crops first (the backbone's forward hooks, the
        online probe's, then see the global views last), and the outputs are put back in view order."""
        groups = _size_groups(views)
        if len(groups) == 1:
            return self._embed(self._as_input(views), len(views))
        outputs: dict[int, tuple[Tensor, Tensor]] = {}
        for start, end in reversed(groups):
            outputs[start] = self._embed(self._as_input(views[start:end]), end - start)
        in_order = [outputs[start] for start, _ in groups]
        return torch.cat([f for f, _ in in_order]), torch.cat([p for _, p in in_order])

    def _as_input(self, views: list[Tensor]) -> Tensor:
        """The views as one batch in the model's memory format (they come channels_last; a conv follows its
        input's format)."""
        return torch.cat(views).contiguous(
            memory_format=torch.channels_last if self.channels_last else torch.contiguous_format
        )

    def _embed(self, inputs: Tensor, n_views: int) -> tuple[Tensor, Tensor]:
        """The features and projections of the batch's views: in one pass, or with ``--micro-batch`` M images at
        a time with the same loss and gradients (:mod:`simclr.training.grad_cache`)."""
        if self.micro_batch is None:
            features, projections = self.model(inputs)
        else:
            features, projections = embed_in_micro_batches(self.model, inputs, n_views, self.micro_batch)
        return features, projections

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
        if self.criterion.queue is not None:  # the negatives a resumed run continues with (plain tensors)
            checkpoint[QUEUE_KEY] = self.criterion.queue.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.criterion.queue is not None and QUEUE_KEY in checkpoint:
            self.criterion.queue.load_state_dict(checkpoint[QUEUE_KEY])

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
        set_hyper_parameters(
            optimizer, settings.weight_decay, settings.momentum, settings.nesterov, settings.betas, settings.eps
        )
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
            betas=settings.betas,
            eps=settings.eps,
        )

        scheduler = WarmupCosineLR(
            optimizer, settings.total_steps, settings.warmup_steps, settings.final_ratio, decay=settings.decay
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
