"""What a pretraining config becomes on the machine at hand: the hardware (device kind, precision, processes,
memory format, BatchNorm synchronisation) and the optimisation (the global batch, the scaled learning rate,
the warmup + cosine schedule in steps), each resolved once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from simclr.config import PretrainConfig
from simclr.errors import UserError
from simclr.hardware import pick_device, resolve_precision, use_channels_last
from simclr.optim.schedules import scaled_learning_rate, warmup_steps_for
from simclr.resolve import gp_excluded_columns, resolved_lr, resolved_weight_decay


@dataclass(frozen=True)
class OptimSettings:
    """The resolved optimiser and schedule of a run (learning rate already scaled by the batch)."""

    name: str
    peak_lr: float
    weight_decay: float
    momentum: float
    nesterov: bool
    total_steps: int
    warmup_steps: int  # the linear ramp to the peak; with decay "hold-cosine", the steps held at the peak
    steps_per_epoch: int
    global_batch: int  # images per step on all processes together: what the learning rate is scaled by
    decay: str = "cosine"  # after the warmup; or "constant", or "hold-cosine"
    final_ratio: float = 0.0  # the cosine's final learning rate as a fraction of the peak
    betas: tuple[float, float] = (0.9, 0.999)  # Adam and AdamW
    eps: float = 1e-8  # Adam and AdamW


@dataclass(frozen=True)
class InvarianceSettings:
    """The gradient penalty of Foster et al. 2020 (``--lambda-gp`` > 0): weight, clamp, re-draws, and
    whether the representation is L2-normalised first."""

    weight: float
    upper_limit: float = 1.0
    draws: int = 100
    normalize: bool = True
    excluded_columns: tuple[int, ...] = ()  # view parameters left out (their re-draws pinned to the first view's)


@dataclass(frozen=True)
class Hardware:
    """Where and how the run computes, resolved once from the config."""

    gpu: bool
    precision: str
    devices: int | list[int] | str  # per machine
    num_nodes: int
    processes: int  # on all machines together: the global batch is batch_size x processes
    channels_last: bool
    sync_batchnorm: bool


def resolve_hardware(config: PretrainConfig) -> Hardware:
    """Device kind, precision, process count, memory format and BatchNorm synchronisation."""
    gpu = pick_device(config.accelerator).type == "cuda"
    devices = _parse_devices(config.devices)
    if isinstance(devices, list):
        processes = len(devices)
    elif devices == "auto":
        processes = torch.cuda.device_count() if gpu else 1
    else:
        processes = int(devices)
    check_launched_processes(processes, config.num_nodes)
    several = processes * config.num_nodes > 1
    if config.sync_batchnorm and several and not gpu:
        raise UserError(
            "--sync-batchnorm needs GPUs (torch's SyncBatchNorm has no CPU implementation); "
            "drop it to keep per-process BatchNorm statistics on CPUs"
        )
    return Hardware(
        gpu=gpu,
        precision=resolve_precision(config.precision, gpu),
        devices=devices,
        num_nodes=config.num_nodes,
        processes=processes * config.num_nodes,
        channels_last=trains_channels_last(config, gpu),
        # with synchronised statistics, N processes compute the forward pass of one process on the global
        # batch; torch's SyncBatchNorm runs on GPUs only, so processes on CPUs keep per-process statistics
        sync_batchnorm=config.sync_batchnorm if config.sync_batchnorm is not None else several and gpu,
    )


def trains_channels_last(config: PretrainConfig, gpu: bool) -> bool:
    """Whether the network trains in the channels_last memory format (``--channels-last``, on a GPU or
    without the gradient penalty)."""
    return use_channels_last(config.channels_last, gpu, config.lambda_gp > 0)


def is_slurm_job_step(env: Mapping[str, str] = os.environ) -> bool:
    """True in the tasks ``srun`` started, where Lightning takes its processes from SLURM (as Lightning
    decides it: an interactive job named ``bash`` or ``interactive`` is not one)."""
    return "SLURM_NTASKS" in env and env.get("SLURM_JOB_NAME") not in ("bash", "interactive")


def check_launched_processes(per_machine: int, num_nodes: int, env: Mapping[str, str] = os.environ) -> None:
    """A one-line error, before any work, when ``--devices`` (``per_machine`` processes) and ``--num-nodes``
    do not match the processes SLURM or torchrun started, where Lightning would stop later with a traceback.
    Lightning's order is kept: a SLURM job step (``srun``, not an interactive ``bash`` job) first, then
    torchrun (``TORCHELASTIC_RUN_ID``)."""
    asked = f"--devices {per_machine} --num-nodes {num_nodes}"
    if is_slurm_job_step(env):
        tasks, per_node, nodes = int(env["SLURM_NTASKS"]), env.get("SLURM_NTASKS_PER_NODE"), env.get("SLURM_NNODES")
        if tasks > 1 and per_node is None:
            raise UserError(
                f"SLURM started {tasks} tasks without --ntasks-per-node; ask for one task per device with "
                "#SBATCH --ntasks-per-node (docs/SCALING.md)"
            )
        if (per_node is not None and int(per_node) != per_machine) or (nodes is not None and int(nodes) != num_nodes):
            raise UserError(
                f"SLURM started {per_node or 1} task(s) per node on {nodes or 1} node(s), but {asked} ask for "
                f"{per_machine} per node on {num_nodes}; pass --devices {per_node or 1} --num-nodes {nodes or 1} "
                "(one task per device)"
            )
    elif env.get("TORCHELASTIC_RUN_ID") is not None:
        world = int(env.get("WORLD_SIZE", "1"))
        local = int(env.get("LOCAL_WORLD_SIZE", str(world)))
        if per_machine * num_nodes != world or per_machine != local:
            raise UserError(
                f"torchrun started {world} process(es), {local} on this node, but {asked} ask for "
                f"{per_machine * num_nodes}; pass --devices {local} --num-nodes {max(1, world // local)} "
                "(--nproc-per-node and --nnodes of torchrun)"
            )


def _parse_devices(value: str) -> int | list[int] | str:
    text = str(value).strip()
    if text == "auto":
        return "auto"
    if text.isdigit():
        return int(text)
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserError(f"--devices {value!r} is not a count or a list like 0,1") from None


def plan_optimisation(config: PretrainConfig, train_images: int, processes: int) -> OptimSettings:
    """The optimiser and its warmup + cosine schedule for ``train_images`` images a run trains on (whole global
    batches only: the last partial batch of an epoch is dropped), with the learning rate scaled by the global
    batch."""
    steps_per_epoch = train_images // (config.batch_size * processes)
    if steps_per_epoch < 1:
        raise UserError(
            f"{train_images} training images are fewer than one batch of {config.batch_size} x {processes} "
            "process(es); lower --batch-size or use more images"
        )
    return plan_schedule(config, steps_per_epoch, processes)


def plan_schedule(config: PretrainConfig, steps_per_epoch: int, processes: int = 1) -> OptimSettings:
    """The optimiser and its warmup + cosine schedule over ``config.epochs`` epochs of ``steps_per_epoch``
    optimiser steps, each of ``config.batch_size`` images on each of ``processes`` processes (the global batch
    the learning rate is scaled by)."""
    if steps_per_epoch < 1:
        raise UserError(f"steps_per_epoch is {steps_per_epoch}; pass the number of batches of one epoch (1 or more)")
    global_batch = config.batch_size * processes
    total_steps = steps_per_epoch * config.epochs
    base_lr, rule = resolved_lr(config)
    return OptimSettings(
        name=config.optimizer,
        peak_lr=scaled_learning_rate(base_lr, global_batch, rule),
        weight_decay=resolved_weight_decay(config),
        momentum=config.momentum,
        nesterov=config.nesterov,
        total_steps=total_steps,
        warmup_steps=warmup_steps_for(lead_in_epochs(config), steps_per_epoch, total_steps),
        steps_per_epoch=steps_per_epoch,
        global_batch=global_batch,
        decay=config.schedule,
        final_ratio=config.final_lr_ratio,
        betas=(config.adam_betas[0], config.adam_betas[1]),
        eps=config.adam_eps,
    )


def lead_in_epochs(config: PretrainConfig) -> float:
    """The epochs before the decay: held at the peak (``--schedule hold-cosine``) or a linear warmup."""
    return config.hold_epochs if config.schedule == "hold-cosine" else config.warmup_epochs


def invariance_settings(config: PretrainConfig) -> InvarianceSettings:
    """The gradient penalty's settings from ``--lambda-gp`` and the ``--gp-*`` flags."""
    return InvarianceSettings(
        config.lambda_gp,
        config.gp_upper_limit,
        config.gp_draws,
        config.gp_normalization,
        gp_excluded_columns(config),
    )
