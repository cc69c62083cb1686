"""The run directory's layout: every file name and path inside it, in one place.

Everything a run produces lives in one directory, and every later command (evaluate, embed, report,
resume, sweep) finds its pieces through :class:`RunDir` and :class:`EvalDir`; no other module spells
these names. The module imports no torch, so the CLI and a sweep's parent process can read a run cheaply;
the few functions that move tensors import safetensors' torch API when called.

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
    RUN_DIR/tensorboard/, mlflow.db, mlflow-artifacts/, wandb/   the trackers' own stores (--logger)
    RUN_DIR/.lock                   held by the process training in it (pid, host, start), so a run has one writer

An autoencoder run (``simclr train-ae``) shares config.yaml, metrics.csv and train.log, and adds
``autoencoder.safetensors`` and ``reconstructions.png``.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simclr.errors import UserError

if TYPE_CHECKING:
    from torch import Tensor

    from simclr.config import PretrainConfig

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
MLFLOW_ARTIFACTS_DIR = "mlflow-artifacts"
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

# A safetensors file starts with the little-endian length of its JSON header; a larger header than
# this is not a backbone we wrote (it protects the torch-free reader from a hostile length field).
_MAX_HEADER_BYTES = 100 << 20


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
        return self.path / MLFLOW_DB_FILE

    @property
    def lock(self) -> Path:
        """Held by the process that trains in this directory (:mod:`simclr.training.run_setup`)."""
        return self.path / LOCK_FILE

    def temporaries(self) -> list[Path]:
        """Files an atomic write leaves behind when its process is killed mid-write (``.NAME.tmp-PID``)."""
        return sorted(p for folder in (self.path, self.checkpoints) for p in folder.glob(".*.tmp-*") if p.is_file())

    def claim(self) -> str | None:
        """Claim the directory for this process (an exclusive lock file with pid, host and start time): a
        UserError when a live process holds it; a note when the lock of a dead process was taken over."""
        return claim_run_dir(self)

    def release(self) -> None:
        release_run_dir(self)

    def live_holder(self) -> dict[str, object] | None:
        """Who holds the directory now (its lock's content), or None when no live process does."""
        holder = read_lock(self.lock)
        return holder if self.lock.exists() and not _is_stale(holder) else None

    @property
    def mlflow_artifacts(self) -> Path:
        """Where a run's own MLflow store (``mlflow.db``) keeps the artifacts."""
        return self.path / MLFLOW_ARTIFACTS_DIR

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
        from simclr.settings import read_yaml

        if not self.config.is_file():
            raise UserError(f"{self.path} has no {CONFIG_FILE}; pass the directory of a simclr run")
        return read_yaml(self.config)

    def read_config(self) -> PretrainConfig:
        """The validated pretraining config saved in this run."""
        from simclr.config import build_config

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
        import yaml

        entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "step": step, "changes": {}}
        entry["changes"] = {name: {"from": old, "to": new} for name, (old, new) in changes.items()}
        history = yaml.safe_load(self.config_history.read_text()) if self.config_history.is_file() else []
        write_text_atomic(self.config_history, yaml.safe_dump([*(history or []), entry], sort_keys=False))


@dataclass(frozen=True)
class BackboneMetadata:
    """What ``backbone.safetensors`` says about itself: enough to rebuild the network and name the weights.

    Safetensors metadata is a string-to-string map; :meth:`to_strings` and :meth:`from_strings` convert.
    Fields a file lacks (written elsewhere, or by an older version) are None.
    """

    backbone: str | None = None  # a torchvision name, timm:<model>, or custom:<module.Class> (the user's own module)
    stem: str | None = None  # cifar | stl | imagenet for a torchvision ResNet; None for the others
    feature_dim: int | None = None
    dataset: str | None = None
    image_size: int | None = None
    global_step: int | None = None
    epoch: int | None = None
    weights: str = "pretrained"
    mean: tuple[float, float, float] | None = None
    """The per-channel normalisation ``(x - mean) / std`` of [0, 1] pixels the backbone was trained with."""
    std: tuple[float, float, float] | None = None

    def to_strings(self) -> dict[str, str]:
        """Each field as text; mean and std as comma-separated numbers (``0.4914,0.4822,0.4465``), which any
        safetensors reader can split without knowing simclr."""
        return {key: _as_text(value) for key, value in asdict(self).items() if value is not None}

    @classmethod
    def from_strings(cls, values: dict[str, str], where: Path | str = "backbone file") -> BackboneMetadata:
        """The metadata of a file; a number field that is not a whole number is a UserError naming ``where``."""
        parsed: dict[str, Any] = {}
        for item in fields(cls):
            text = values.get(item.name)
            if text is None:
                continue
            if item.name in _NUMBER_FIELDS:
                if not text.strip().isdigit():
                    raise UserError(
                        f"{where}: metadata {item.name}={text[:40]!r} is not a whole number; the file is damaged"
                    )
                parsed[item.name] = int(text)
            elif item.name in _TRIPLE_FIELDS:
                parsed[item.name] = _parse_triple(item.name, text, where)
            else:
                parsed[item.name] = text
        return cls(**parsed)


_NUMBER_FIELDS = ("feature_dim", "image_size", "global_step", "epoch")
_TRIPLE_FIELDS = ("mean", "std")


def _as_text(value: object) -> str:
    if isinstance(value, tuple | list):
        return ",".join(repr(float(number)) for number in value)
    return str(value)


def _parse_triple(name: str, text: str, where: Path | str) -> tuple[float, float, float]:
    """Three finite numbers, one per RGB channel; anything else is a UserError naming ``where``."""
    import math

    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or not all(math.isfinite(value) for value in values):
        raise UserError(f"{where}: metadata {name}={text[:40]!r} is not three numbers; the file is damaged")
    return values  # type: ignore[return-value]


def _process_start(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot), or None when it does not run: with the
    pid, it tells a live lock holder from a later process that was given the same pid."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return "unknown"


def claim_run_dir(run: RunDir) -> str | None:
    """Create the lock; returns a note to log when it took over the lock of a process that died."""
    me = {"pid": os.getpid(), "host": socket.gethostname(), "start": _process_start(os.getpid()), "since": time.ctime()}
    takeover = None
    for _ in range(2):
        try:
            descriptor = os.open(run.lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = read_lock(run.lock)
            if not _is_stale(holder):
                raise UserError(
                    f"{run.path} is in use by process {holder.get('pid')} on {holder.get('host')} since "
                    f"{holder.get('since')}; wait for it to end or choose another --out "
                    f"(if that process is gone, delete {run.lock})"
                ) from None
            takeover = (
                f"{run.path}: process {holder.get('pid')}, which trained here, ended without releasing the "
                "directory; taking it over"
            )
            run.lock.unlink(missing_ok=True)
            continue
        with os.fdopen(descriptor, "w") as handle:
            json.dump(me, handle)
        return takeover
    raise UserError(f"{run.path} is being claimed by another process at the same time; choose another --out")


def read_lock(lock: Path) -> dict[str, object]:
    try:
        value = json.loads(lock.read_text())
        return value if isinstance(value, dict) else {}
    except (OSError, ValueError):
        return {}


def _is_stale(holder: dict[str, object]) -> bool:
    """A lock of this machine whose process has ended (or whose pid now names another process)."""
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False
    start = _process_start(int(holder["pid"]))  # type: ignore[call-overload]
    return start is None or (start != "unknown" and start != holder.get("start"))


def release_run_dir(run: RunDir) -> None:
    if read_lock(run.lock).get("pid") == os.getpid():
        run.lock.unlink(missing_ok=True)


def read_backbone_metadata(path: Path) -> BackboneMetadata:
    """The metadata of a safetensors file, read from its JSON header without loading torch or the tensors."""
    try:
        with open(path, "rb") as handle:
            (size,) = struct.unpack("<Q", handle.read(8))
            if size > _MAX_HEADER_BYTES:
                raise ValueError(f"header of {size} bytes")
            header = json.loads(handle.read(size))
        metadata = header.get("__metadata__") or {}
        if not isinstance(metadata, dict):
            raise ValueError("metadata is not a mapping")
    except (OSError, struct.error, ValueError, AttributeError) as exc:
        raise UserError(f"cannot read {path}: {exc}; the file is damaged or not a safetensors backbone") from None
    return BackboneMetadata.from_strings({str(key): str(value) for key, value in metadata.items()}, path)


def write_backbone(path: Path, tensors: dict[str, Tensor], metadata: BackboneMetadata) -> None:
    """Write the backbone's tensors with their metadata as safetensors, atomically."""
    write_safetensors(path, tensors, metadata.to_strings())


def write_safetensors(path: Path, tensors: dict[str, Tensor], metadata: dict[str, str]) -> None:
    """Write tensors (copied to the CPU) and string metadata as safetensors, atomically: a reader never
    sees half a file, and a killed writer leaves only a ``.NAME.tmp-PID`` behind."""
    from safetensors.torch import save_file

    contiguous = {name: tensor.detach().cpu().contiguous() for name, tensor in tensors.items()}
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        save_file(contiguous, str(tmp), metadata=metadata)
        # safetensors writes through a private temporary file (mode 0600); the file is meant to be shared,
        # so give it the mode every other file of the run gets from the process umask
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    """The process umask: from /proc on Linux (reading it elsewhere means setting it, then restoring it,
    which another thread creating a file in between would see)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def read_backbone_tensors(path: Path) -> dict[str, Tensor]:
    """The tensors of a backbone file; a damaged file is a one-line UserError."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise UserError(f"cannot read {path}: {exc}; the file is damaged") from None


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` through a temporary file in the same folder and rename it over ``path``."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
