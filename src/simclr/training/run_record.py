"""What a pretraining run writes about itself: its decisions in the log (data, network, schedule, hardware,
the gradient penalty's scope) and environment.yaml (what ``auto`` settings became, the machine, the versions).
"""

from __future__ import annotations

import logging
import platform
import sys
import warnings
from collections.abc import Mapping
from typing import Any

import yaml

from simclr.atomic import write_text_atomic
from simclr.config import PretrainConfig
from simclr.data.catalog import dataset_info
from simclr.data.store import ImageStore, report_skipped
from simclr.data.streaming import PackedSplit
from simclr.environment import environment_record
from simclr.hardware import worker_processes
from simclr.resolve import backbone_stem, gp_penalised_names, resolved_lr
from simclr.rundir import RunDir
from simclr.training.plan import Hardware, OptimSettings, lead_in_epochs
from simclr.training.run_setup import is_worker_process
from simclr.training.training_data import TrainingData
from simclr.views.config import ViewConfig

log = logging.getLogger("simclr")


def describe_run(
    config: PretrainConfig,
    run: RunDir,
    data: TrainingData,
    hardware: Hardware,
    optim: OptimSettings,
    parameters: dict[str, int],
) -> None:
    """The decisions of this run, in its log: data, network, schedule, hardware."""
    _quiet_lightning()
    for split, store in (("train", data.train), ("test", data.test)):
        if isinstance(store, ImageStore):
            report_skipped(store, split)
        elif isinstance(store, PackedSplit) and store.info.skipped:
            log.warning("%s: %d file(s) were skipped when packing, listed in %s", split, store.info.skipped, store.path)
    log.info("run directory: %s", run.path)
    if isinstance(data.train, PackedSplit):
        log.info(
            "streaming the training split from %s with %d loader process(es)",
            data.train.path,
            worker_processes(config.workers),
        )
    tests = f", {len(data.test)} test images" if data.test is not None else ""
    tests += f", {len(data.val)} held out for validation" if data.val is not None else ""
    train_images = "an unknown number of" if data.train_images is None else data.train_images
    dataset = config.dataset if config.dataset_class is None else f"{config.dataset_class} (a Python Dataset)"
    log.info("dataset %s: %s training images of %dpx%s", dataset, train_images, data.image_size, tests)
    base_lr, rule = resolved_lr(config)
    stem = backbone_stem(config, data.image_size)
    log.info(
        "%s%s, head %s; %s lr %.4g (base %g, %s scaling by the global batch %d = %d per process x %d "
        "process(es) on %d machine(s)), wd %g, %s %d of %d steps, then %s; precision %s",
        config.backbone,
        f", {stem} stem" if stem else "",
        config.head,
        optim.name,
        optim.peak_lr,
        base_lr,
        rule,
        optim.global_batch,
        config.batch_size,
        hardware.processes,
        hardware.num_nodes,
        optim.weight_decay,
        "held at the peak for" if optim.decay == "hold-cosine" else "warmup",
        optim.warmup_steps,
        optim.total_steps,
        "constant" if optim.decay == "constant" else f"cosine to {optim.final_ratio:g} x the peak",
        hardware.precision,
    )
    planned_warmup = round(lead_in_epochs(config) * optim.steps_per_epoch)
    if optim.warmup_steps != planned_warmup:
        log.info(
            "%s: %g epochs (%d steps) do not fit in a run of %d steps; %s for %d steps (10%%) instead",
            "hold" if optim.decay == "hold-cosine" else "warmup",
            lead_in_epochs(config),
            planned_warmup,
            optim.total_steps,
            "holding the peak" if optim.decay == "hold-cosine" else "warming up",
            optim.warmup_steps,
        )
    log.info(
        "parameters: backbone %s (%s trainable), head %s (%s trainable)",
        *(f"{parameters[key]:,}" for key in ("backbone_parameters", "backbone_trainable_parameters")),
        *(f"{parameters[key]:,}" for key in ("head_parameters", "head_trainable_parameters")),
    )
    if config.channels_last and not hardware.channels_last:
        log.info("memory format: contiguous, not channels_last (faster for the gradient penalty on the CPU)")
    if hardware.processes > 1:
        log.info("BatchNorm statistics: %s", "synchronised" if hardware.sync_batchnorm else "per process")
        if data.streamed and worker_processes(config.workers) > 0 and sys.version_info[:3] < (3, 11, 8):
            # CPython gh-112275, fixed in 3.11.8: a loader worker forked while another thread of the rank held
            # the interpreter's thread-list lock hangs before it starts, and the whole run with it
            log.warning(
                "Python %s can hang a loader worker as it starts in a multi-process run (CPython issue 112275); "
                "use Python 3.11.8 or later, or --workers 0",
                platform.python_version(),
            )


def _quiet_lightning() -> None:
    """Lightning's banners (GPU/TPU availability, tips) and a torch-internal deprecation warning are noise
    for simclr users: our own log says what hardware and precision the run uses."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=r".*weights_only.*")
    # litdata shards a streamed split by rank and worker itself, so its length is exact
    warnings.filterwarnings("ignore", message=r".*IterableDataset. has .__len__. defined.*")


def resolved_settings(
    config: PretrainConfig, hardware: Hardware, optim: OptimSettings, views: ViewConfig, parameters: dict[str, int]
) -> dict[str, Any]:
    """What the run's ``auto`` and ``null`` settings became here, and its parameter counts: the one source of
    environment.yaml's ``resolved`` block and of the hyperparameters the trackers get
    (:func:`simclr.tracking.start_tracking`)."""
    base_lr, rule = resolved_lr(config)
    return {
        "precision": hardware.precision,
        "accelerator": "gpu" if hardware.gpu else "cpu",
        "processes": hardware.processes,
        "global_batch": optim.global_batch,
        "optimizer": optim.name,
        "lr": optim.peak_lr,
        "base_lr": base_lr,
        "lr_scaling": rule,
        "weight_decay": optim.weight_decay,
        "warmup_steps": optim.warmup_steps,
        "total_steps": optim.total_steps,
        "image_size": views.size,
        "jitter_strength": views.jitter_strength,
        "blur_p": views.blur_p,
        "channels_last": hardware.channels_last,
        "sync_batchnorm": hardware.sync_batchnorm,
        **parameters,
    }


def record_environment(run: RunDir, resolved: Mapping[str, Any]) -> None:
    """``environment.yaml``: what ``auto`` and ``null`` settings became (:func:`resolved_settings`), and the
    machine and versions (rewritten at every start, so a resumed run records where it continued)."""
    if is_worker_process():
        return
    record = {"resolved": dict(resolved), "environment": environment_record()}
    write_text_atomic(run.environment, yaml.safe_dump(record, sort_keys=False))


def record_training_time(run: RunDir, budget: float | None, training_seconds: float, steps: int) -> None:
    """Add the ``training`` block to environment.yaml when training ends: the time budget (seconds, or null),
    the training seconds used (kNN monitor, validation and evaluation left out) and the steps done, over the
    whole run (a resumed run counts the time spent before its resume)."""
    record = yaml.safe_load(run.environment.read_text()) if run.environment.is_file() else {}
    record["training"] = {
        "time_budget_seconds": budget,
        "training_seconds": round(training_seconds, 3),
        "steps": steps,
    }
    write_text_atomic(run.environment, yaml.safe_dump(record, sort_keys=False))


def describe_gradient_penalty(config: PretrainConfig) -> str:
    """One line saying what ``--lambda-gp`` penalises, so a run's log records the penalty's scope.

    On Spirograph the first-order penalty over the shape parameter h dominates the others
    (docs/REPRODUCING.md, "Invariance"), so the line says so while h is penalised.
    """
    names = gp_penalised_names(config)
    line = (
        f"gradient penalty: lambda {config.lambda_gp:g} over {', '.join(names)}; "
        f"{config.gp_draws} re-draws, clamp {config.gp_upper_limit:g}, "
        f"{'normalised' if config.gp_normalization else 'raw'} features"
    )
    if "h" in names and dataset_info(config.dataset).regression:
        line += (
            " (h dominates this penalty on Spirograph: see docs/REPRODUCING.md, Invariance; "
            "--gp-exclude h leaves it out)"
        )
    return line
