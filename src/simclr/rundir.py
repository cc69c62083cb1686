"""The run directory's layout: every file name and path inside it, in one place.

Everything a run produces lives in one directory, and every later command (evaluate, embed, report,
resume, sweep) finds its pieces through :class:`RunDir` and :class:`EvalDir`; no other module spells
these names. The module imports no torch, so the CLI and a sweep's parent process can read a run cheaply.
The backbone file's format is :mod:`simclr.models.backbone_file`'s; opening a directory to write in it (its
lock, its log, the temporaries a killed writer left) is :mod:`simclr.runs`'s.

A pretraining run::

    RUN_DIR/config.yaml             the resolved config (what every later command rebuilds the run from)
    RUN_DIR/config-history.yaml     settings changed by --resume-with-changes: when, at which step, from what
    RUN_DIR/environment.yaml        the settings as resolved (precision, learning rate) and the machine and versions
    RUN_DIR/metrics.csv             one row per step, plus kNN rows at epoch ends
    RUN_DIR/train.log               the run's log
    RUN_DIR/checkpoints/last.ckpt   the Lightning checkpoint that --resume continues from
    RUN_DIR/checkpoints/epoch-NNNN.safetensors   kept backbones (--keep-every-epochs, --save-top-k), NNNN the
                                    epochs trained; best.safetensors: the lowest validation loss (--save-top-k)
    RUN_DIR/backbone.safetensors    the backbone alone, with metadata to rebuild it (BackboneMetadata)
    RUN_DIR/eval/                   evaluation: metrics.json, report.html, features/ (cache), plots/,
                                    checkpoint-scan.csv and plots/checkpoint-scan.png (--checkpoint all)
    RUN_DIR/eval/<protocol>/classifier.safetensors   a trained classifier (linear, finetune, ...) for predict
    RUN_DIR/eval-random-weights/    the same evaluation of the untrained architecture (the baseline)
    RUN_DIR/sweep-cell.json         written last by a sweep: the cell is finished
    RUN_DIR/tracking.json           where the run's tracker (MLflow, TensorBoard, W&B) keeps it, for evaluate
    RUN_DIR/tensorboard/, wandb/    the trackers' own stores (--logger); MLflow's is shared by the runs of a
                                    folder: RUN_DIR/../mlflow.db and RUN_DIR/../mlruns/ (artifacts)
    RUN_DIR/.lock                   held by the process writing in it (pid, host, start), so a run has one writer

An autoencoder run (``simclr train-ae``) shares config.yaml, metrics.csv and train.log, and adds
``autoencoder.safetensors`` and ``reconstructions.png``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from simclr.atomic import leftover_temporaries, write_text_atomic
from simclr.config import PretrainConfig, build_config
from simclr.errors import UserError
from simclr.settings import read_yaml

CONFIG_FILE = "config.yaml"
CONFIG_HISTORY_FILE = "config-history.yaml"
ENVIRONMENT_FILE = "environment.yaml"
METRICS_FILE = "metrics.csv"
LOG_FILE = "train.log"
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT_FILE = "last.ckpt"
BACKBONE_FILE = "backbone.safetensors"
EVAL_DIR = "eval"
RANDOM_WEIGHTS_EVAL_DIR = "eval-random-weights"
SWEEP_MARKER_FILE = "sweep-cell.json"
AUTOENCODER_FILE = "autoencoder.safetensors"
RECONSTRUCTIONS_FILE = "reconstructions.png"
MLFLOW_DB_FILE = "mlflow.db"
MLFLOW_ARTIFACTS_DIR = "mlruns"  # MLflow's own default names: `mlflow ui` started beside the runs finds them
TENSORBOARD_DIR = "tensorboard"
WANDB_DIR = "wandb"
TRACKING_FILE = "tracking.json"
EVAL_METRICS_FILE = "metrics.json"
REPORT_FILE = "report.html"
FEATURES_DIR = "features"
PLOTS_DIR = "plots"
CLASSIFIER_FILE = "classifier.safetensors"
LOCK_FILE = ".lock"
KEPT_BACKBONE_PREFIX = "epoch-"
KEPT_BACKBONE_SUFFIX = ".safetensors"
BEST_BACKBONE_NAME = "best"
CHECKPOINT_SCAN_FILE = "checkpoint-scan.csv"
CHECKPOINT_SCAN_PLOT = "checkpoint-scan.png"
CHECKPOINT_EVAL_PREFIX = "checkpoint-"


@dataclass(frozen=True)
class EvalDir:
    """Where the evaluation of one backbone writes: ``RUN_DIR/eval`` unless ``--eval-dir`` says otherwise."""

    path: Path

    @property
    def metrics(self) -> Path:
        """Every number with the protocol that produced it (:mod:`simclr.evaluation.results`)."""
        return self.path / EVAL_METRICS_FILE

    @property
    def report(self) -> Path:
        return self.path / REPORT_FILE

    @property
    def features(self) -> Path:
        """The cache of frozen features, keyed by the backbone's SHA-256."""
        return self.path / FEATURES_DIR

    @property
    def plots(self) -> Path:
        return self.path / PLOTS_DIR

    def classifier(self, protocol: str) -> Path:
        """The classifier a protocol trained (``linear``, ``finetune``, ...), kept for ``simclr predict``."""
        return self.path / protocol / CLASSIFIER_FILE

    def classifiers(self) -> dict[str, Path]:
        """Every saved classifier, by protocol."""
        found = sorted(self.path.glob(f"*/{CLASSIFIER_FILE}")) if self.path.is_dir() else []
        return {path.parent.name: path for path in found}

    def for_checkpoint(self, name: str) -> EvalDir:
        """Where ``--checkpoint NAME`` (``best``, ``epoch-N``) writes: a folder of its own inside this one, so
        the final backbone's results stay as they are."""
        return EvalDir(self.path / f"{CHECKPOINT_EVAL_PREFIX}{name}")

    @property
    def checkpoint_scan(self) -> Path:
        """One row per kept backbone of ``simclr evaluate --checkpoint all``."""
        return self.path / CHECKPOINT_SCAN_FILE

    @property
    def checkpoint_scan_plot(self) -> Path:
        """Accuracy against epochs trained, one point per kept backbone."""
        return self.plots / CHECKPOINT_SCAN_PLOT


@dataclass(frozen=True)
class RunDir:
    """The paths inside one run directory (see the module docstring for the layout)."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path).expanduser())

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def metrics(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def log(self) -> Path:
        return self.path / LOG_FILE

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINT_DIR

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / LAST_CHECKPOINT_FILE

    @property
    def backbone(self) -> Path:
        return self.path / BACKBONE_FILE

    def kept_backbone(self, epochs: int) -> Path:
        """The backbone kept after ``epochs`` epochs of training (``--keep-every-epochs``, ``--save-top-k``)."""
        return self.checkpoints / f"{KEPT_BACKBONE_PREFIX}{epochs:04d}{KEPT_BACKBONE_SUFFIX}"

    @property
    def best_backbone(self) -> Path:
        """A copy of the kept backbone with the lowest validation loss (``--save-top-k``)."""
        return self.checkpoints / f"{BEST_BACKBONE_NAME}{KEPT_BACKBONE_SUFFIX}"

    def kept_backbones(self) -> dict[int, Path]:
        """The kept backbones on disk by epochs trained, in epoch order."""
        found: dict[int, Path] = {}
        for path in self.checkpoints.glob(f"{KEPT_BACKBONE_PREFIX}*{KEPT_BACKBONE_SUFFIX}"):
            number = path.name[len(KEPT_BACKBONE_PREFIX) : -len(KEPT_BACKBONE_SUFFIX)]
            if number.isdigit():
                found[int(number)] = path
        return dict(sorted(found.items()))

    def named_backbone(self, name: str) -> Path:
        """The backbone ``--checkpoint NAME`` names: ``best`` or ``epoch-N``; a UserError listing what the run
        kept when the name is unknown or its file is missing."""
        kept = self.kept_backbones()
        path: Path | None = None
        if name == BEST_BACKBONE_NAME:
            path = self.best_backbone
        elif name.startswith(KEPT_BACKBONE_PREFIX) and name[len(KEPT_BACKBONE_PREFIX) :].isdigit():
            path = self.kept_backbone(int(name[len(KEPT_BACKBONE_PREFIX) :]))
        if path is None or not path.is_file():
            names = ([BEST_BACKBONE_NAME] if self.best_backbone.is_file() else []) + [
                f"{KEPT_BACKBONE_PREFIX}{epochs}" for epochs in kept
            ]
            available = ", ".join(names) if names else "none (train with --keep-every-epochs or --save-top-k)"
            raise UserError(f"{self.path} kept no backbone {name!r}; use --checkpoint with one of: {available}, or all")
        return path

    @property
    def eval(self) -> EvalDir:
        return EvalDir(self.path / EVAL_DIR)

    @property
    def random_weights_eval(self) -> EvalDir:
        return EvalDir(self.path / RANDOM_WEIGHTS_EVAL_DIR)

    @property
    def sweep_marker(self) -> Path:
        return self.path / SWEEP_MARKER_FILE

    @property
    def autoencoder(self) -> Path:
        return self.path / AUTOENCODER_FILE

    @property
    def reconstructions(self) -> Path:
        return self.path / RECONSTRUCTIONS_FILE

    @property
    def mlflow_db(self) -> Path:
        """The MLflow store the runs of this folder share (beside the run directory, so one experiment in
        `mlflow ui` compares them)."""
        return self.path.resolve().parent / MLFLOW_DB_FILE

    @property
    def lock(self) -> Path:
        """Held by the process that writes in this directory (:func:`simclr.runs.open_run`)."""
        return self.path / LOCK_FILE

    def temporaries(self) -> list[Path]:
        """What atomic writes of killed processes left anywhere in the run (``.NAME.tmp-PID``,
        :mod:`simclr.atomic`); a running writer's temporaries are not listed."""
        return leftover_temporaries(self.path, recursive=True)

    @property
    def mlflow_artifacts(self) -> Path:
        """Where the shared MLflow store (:attr:`mlflow_db`) keeps the artifacts."""
        return self.path.resolve().parent / MLFLOW_ARTIFACTS_DIR

    @property
    def tracking(self) -> Path:
        """Which tracker run the run reports to (:mod:`simclr.tracking`)."""
        return self.path / TRACKING_FILE

    @property
    def wandb_dir(self) -> Path:
        return self.path / WANDB_DIR

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / TENSORBOARD_DIR

    @property
    def tensorboard_name(self) -> str:
        """The TensorBoard logger's folder inside the run directory."""
        return TENSORBOARD_DIR

    # -- the config ---------------------------------------------------------------------------------
    def holds_run(self) -> bool:
        """True once a run has saved its config here (a fresh run must not reuse the directory)."""
        return self.config.is_file()

    def read_config_values(self) -> dict[str, Any]:
        """The saved config as a mapping, unvalidated (pretraining or autoencoder)."""
        if not self.config.is_file():
            raise UserError(f"{self.path} has no {CONFIG_FILE}; pass the directory of a simclr run")
        return read_yaml(self.config)

    def read_config(self) -> PretrainConfig:
        """The validated pretraining config saved in this run."""
        return build_config(self.read_config_values(), {})

    def write_config(self, text: str) -> None:
        """Save the config atomically: a reader never sees half a file."""
        write_text_atomic(self.config, text)

    @property
    def environment(self) -> Path:
        """The resolved settings and the environment of the latest start (:mod:`simclr.environment`)."""
        return self.path / ENVIRONMENT_FILE

    @property
    def config_history(self) -> Path:
        return self.path / CONFIG_HISTORY_FILE

    def record_config_change(self, step: int, changes: dict[str, tuple[Any, Any]]) -> None:
        """Append one resume-with-changes to the history: the step it took effect at and each setting's
        old and new value."""
        entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "step": step, "changes": {}}
        entry["changes"] = {name: {"from": old, "to": new} for name, (old, new) in changes.items()}
        history = yaml.safe_load(self.config_history.read_text()) if self.config_history.is_file() else []
        write_text_atomic(self.config_history, yaml.safe_dump([*(history or []), entry], sort_keys=False))


def autoencoder_file(path: Path | str) -> Path:
    """The autoencoder ``--ae-checkpoint`` names: ``path`` itself when it is a file, the ``autoencoder.safetensors``
    of the ``simclr train-ae`` run when it is that run's directory; a UserError when there is none."""
    target = Path(path).expanduser()
    if target.is_dir():
        target = RunDir(target).autoencoder
    if not target.is_file():
        raise UserError(
            f"autoencoder checkpoint {target} does not exist; pass the {AUTOENCODER_FILE} (or run directory) "
            "written by 'simclr train-ae'"
        )
    return target
