"""Resuming a run: one policy for ``simclr pretrain --resume``, for ``simclr.pretrain(config)`` with
``config.resume``, and for the same command line run again on its own ``--out``.

A resumed run trains as its config.yaml says. Settings that say where the data is, how it is read, and what is
logged, monitored or checkpointed may differ (:data:`RESUME_NEUTRAL`); any other change is refused in one line
unless the user allows it (``--resume-with-changes``, ``resume_with_changes=True``), and an allowed change is
recorded in the run's config history from the step it takes effect and applied from that step on: the run is
built anew from the changed config, and the optimiser's hyper-parameters and its schedule, which the checkpoint
brings back, are set to the new ones (:meth:`~simclr.training.module.SimCLRModule.on_train_start`). What
no resume can apply (:data:`FIXED_ON_RESUME`: the network the checkpoint's weights belong to, the optimiser
whose state it holds, the batch its steps count) is refused in one line even when changes are allowed. What
the run measured when it started (its
subset file's SHA-256, the ``--standardize`` statistics) is taken from config.yaml, not measured again.

``--out DIR`` of a directory that already holds a run continues it only when every setting is the one it was
started with (:func:`continue_same_run`): the same command line again, as a requeued SLURM job or a rerun after
a crash gives, goes on; anything else is refused, so no run is overwritten or continued by another experiment.
A changed ``--time-budget`` (or one added or dropped) is such a change: the resumed run plans with the new
budget less the training time the checkpoint says was spent, from the resumed step on, without a jump in the
learning rate (:mod:`simclr.training.time_budget`); a dropped budget trains the schedule of its epochs again.

A run that stopped before its first checkpoint (killed while loading its data, or a crash at the first step)
starts again from scratch (:func:`starting_step`), saying so.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from simclr.config import PretrainConfig, build_config
from simclr.errors import UserError
from simclr.rundir import RunDir
from simclr.training.checkpoint_io import load_checkpoint_safely
from simclr.training.run_setup import is_worker_process

log = logging.getLogger("simclr")

Changes = dict[str, tuple[Any, Any]]
"""``{setting: (the run's value, the requested value)}``."""

# Settings that may differ when a run is resumed: where the data is and how it is read, where the run is, and
# what is logged, monitored or checkpointed; and max_steps, which only stops the run at another step of the
# same schedule. The subset file's hash follows the subset setting, which is compared.
RESUME_NEUTRAL = frozenset(
    {
        "data_dir", "download", "workers", "memory_budget", "pack_dir", "out", "resume", "logger",
        "checkpoint_every_steps", "knn_every_epochs", "knn_k", "knn_temperature", "knn_max_images",
        "log_every_steps", "max_steps", "accelerator", "compile", "compile_backend", "deterministic", "save_top_k",
        "keep_every_epochs", "online_probe", "subset_sha256",
    }
)  # fmt: skip
_NETWORK = "the checkpoint holds the weights of the network the run started with"
_STARTING_WEIGHTS = "it only says how a new run's network starts, and a resumed run's weights come from its checkpoint"
_STEPS = "the run's steps and its place in the epoch count batches of the size it started with"
_OPTIMIZER = "the checkpoint holds the state of the optimiser it started with, over the parameters it trains"
# Settings no resume can apply, with the reason; every other setting that is not neutral is applied from the
# resumed step on: the data, views, loss and trainer are built from the changed config, and the optimiser's
# hyper-parameters and schedule are set to it after the checkpoint is loaded.
FIXED_ON_RESUME: dict[str, str] = {
    **dict.fromkeys(
        ("backbone", "stem", "image_size", "head", "head_hidden_dim", "head_out_dim", "head_layers",
         "head_batch_norm", "head_activation"),
        _NETWORK,
    ),
    **dict.fromkeys(("weights", "ae_checkpoint"), _STARTING_WEIGHTS),
    **dict.fromkeys(("batch_size", "devices", "num_nodes"), _STEPS),
    **dict.fromkeys(("optimizer", "freeze_head_input"), _OPTIMIZER),
}  # fmt: skip
# What a run measures when it starts and keeps in its config.yaml.
MEASURED_AT_START = ("subset_sha256", "normalization_mean", "normalization_std")


def training_changes(config: PretrainConfig, saved: PretrainConfig) -> Changes:
    """The settings of ``config`` that would change how the run saved with ``saved`` trains."""
    return {
        item.name: (getattr(saved, item.name), getattr(config, item.name))
        for item in dataclasses.fields(config)
        if item.name not in RESUME_NEUTRAL and getattr(saved, item.name) != getattr(config, item.name)
    }


def describe_changes(changes: Changes) -> str:
    """``lr 0.3 -> 1.0, batch_size 256 -> 32``: what a resume changes, for a message or the log."""
    return ", ".join(f"{name} {old} -> {new}" for name, (old, new) in changes.items())


def settle_resume(
    requested: PretrainConfig, saved: PretrainConfig, *, allowed: bool, switch: str
) -> tuple[PretrainConfig, Changes]:
    """The config a resume trains with, and what it changes in the run saved with ``saved``.

    ``requested`` gets what the run measured at its start where it leaves it unset; another subset file is
    the exception, its hash is pinned afresh when training starts. A change is a one-line UserError naming
    ``switch``, the way to allow it, unless ``allowed``.
    """
    config = with_measured_values(requested, saved)
    changes = training_changes(config, saved)
    if changes and not allowed:
        raise UserError(
            f"resuming {config.resume} would change how it trains ({describe_changes(changes)}); resume with "
            f"the run's own settings, or pass {switch} to change the run and record it"
        )
    refuse_fixed_changes(changes, flags=switch.startswith("--"))
    return config, changes


def with_measured_values(requested: PretrainConfig, saved: PretrainConfig) -> PretrainConfig:
    """``requested`` with what the run saved with ``saved`` measured at its start where it leaves it unset (the
    hash of a subset file is measured again when the subset file is another)."""
    measured = {name: getattr(saved, name) for name in MEASURED_AT_START if getattr(requested, name) is None}
    if requested.subset != saved.subset:
        measured.pop("subset_sha256", None)
    return dataclasses.replace(requested, **measured)


def refuse_fixed_changes(changes: Changes, *, flags: bool) -> None:
    """A one-line UserError naming the first change of :data:`FIXED_ON_RESUME` (as its flag when ``flags``,
    else as the config's name) and why it cannot be applied, instead of recording a change the run would not
    make (or a checkpoint that no longer fits)."""
    fixed = [name for name in changes if name in FIXED_ON_RESUME]
    if not fixed:
        return
    name = fixed[0]
    shown = _flag_of(name) if flags else name
    old, new = changes[name]
    raise UserError(
        f"{shown} cannot change on resume ({old} -> {new}): {FIXED_ON_RESUME[name]}; start a new run with "
        "another --out, or resume with the run's own value"
    )


def _flag_of(name: str) -> str:
    field = next(item for item in dataclasses.fields(PretrainConfig) if item.name == name)
    return "--" + (field.metadata.get("flag") or name).replace("_", "-")


def resume_from_values(
    file_values: dict[str, Any], overrides: dict[str, Any], *, allowed: bool
) -> tuple[PretrainConfig, Changes]:
    """The command line's resume: the run's config.yaml, then a recipe's values, then the flags given
    (``overrides`` holds ``resume``); the result as :func:`settle_resume` settles it."""
    run = RunDir(Path(overrides["resume"]))
    saved_values = run.read_config_values()
    unmeasured = {key: value for key, value in saved_values.items() if key not in MEASURED_AT_START}
    requested = build_config({**unmeasured, **file_values}, {**overrides, "out": str(run.path)})
    return settle_resume(requested, build_config(saved_values, {}), allowed=allowed, switch="--resume-with-changes")


def continue_same_run(config: PretrainConfig) -> PretrainConfig:
    """``config`` as the continuation of the run its ``out`` already holds (``resume`` set to it, what the
    run measured at its start filled in) when every setting but ``out`` and ``resume`` is the run's own;
    ``config`` unchanged when its ``out`` holds no run. Other settings are a one-line error that lists them:
    a new run needs another ``--out``, a change to the run needs ``--resume`` (which allows those of
    :data:`RESUME_NEUTRAL` and, when asked, the others). The other processes of a multi-process run follow
    the first, whose config.yaml may already be in the directory when they start."""
    if config.resume or not config.out or not RunDir(Path(config.out)).holds_run():
        return config
    run = RunDir(Path(config.out))
    continued = dataclasses.replace(config, resume=str(run.path))
    if is_worker_process():
        return continued
    saved = run.read_config()
    continued = with_measured_values(continued, saved)
    differences = {
        item.name: (getattr(saved, item.name), getattr(continued, item.name))
        for item in dataclasses.fields(continued)
        if item.name not in ("out", "resume") and getattr(saved, item.name) != getattr(continued, item.name)
    }
    if differences:
        raise UserError(
            f"{run.path} already holds a run with other settings ({describe_changes(differences)}); choose "
            f"another --out, or continue that run with --resume {run.path}"
        )
    log.info("%s holds a run started with the same settings: continuing it", run.path)
    return continued


def starting_step(config: PretrainConfig) -> int | None:
    """The step a resume continues from, read weights-only from the run's last checkpoint (it may be anyone's
    file); None for a fresh run, and for a run that stopped before its first checkpoint, which starts again
    from scratch under its settings (said in the log)."""
    if not config.resume:
        return None
    run = RunDir(Path(config.resume))
    checkpoint = run.last_checkpoint
    if checkpoint.is_file():
        step = int(load_checkpoint_safely(checkpoint)["global_step"])
        log.info("resuming from %s (step %d)", checkpoint, step)
        return step
    if not run.holds_run():
        raise UserError(
            f"cannot resume: {checkpoint} does not exist; pass the directory of a run that saved a checkpoint"
        )
    log.warning(
        "%s holds a run that stopped before its first checkpoint (%s does not exist): starting it again from "
        "scratch with its settings",
        run.path,
        checkpoint,
    )
    return None


def record_changes(run: RunDir, step: int | None, changes: Changes) -> str | None:
    """Log the settings a resume changed and append them to the run's config history; returns the note that
    marks their first step in the metrics (None when nothing changed)."""
    if not changes or step is None:
        return None
    note = f"settings changed on resume: {describe_changes(changes)}"
    log.warning("%s (from step %d; recorded in %s)", note, step, run.config_history.name)
    run.record_config_change(step, changes)
    return note
