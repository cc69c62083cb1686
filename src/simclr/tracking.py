"""The experiment tracker a run reports to (``--logger``): TensorBoard, MLflow or Weights & Biases.

Pretraining hands Lightning the tracker's logger (the scalars), logs the run's settings as its
hyperparameters, and when training ends gives MLflow the config and the backbone as artifacts. Where the
tracker keeps the run is written to ``tracking.json`` in the run directory, so a resumed run reports to the
same tracker run and ``simclr evaluate`` adds the evaluation metrics (and, for MLflow, metrics.json and the
report) to it. ``metrics.csv`` is written in every case; ``csv`` and ``none`` add no tracker.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from simclr.atomic import write_text_atomic
from simclr.errors import UserError
from simclr.models.backbone_file import read_backbone_metadata
from simclr.rundir import RunDir

__all__ = [
    "evaluation_scalars",
    "finish_tracking",
    "lightning_loggers",
    "report_evaluation",
    "start_tracking",
]

EXPERIMENT = "simclr"  # the MLflow experiment and the W&B project of every run
HP_METRIC_SOURCE = "linear/top1"  # what TensorBoard's hp_metric shows once the run is evaluated

log = logging.getLogger("simclr")


def _saved(run: RunDir) -> dict[str, Any]:
    try:
        doc = json.loads(run.tracking.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return doc if isinstance(doc, dict) else {}


def lightning_loggers(tracker: str, run: RunDir) -> list[Any]:
    """The Lightning logger of ``tracker`` with its store in the run directory (MLflow: ``MLFLOW_TRACKING_URI``
    when set); a resumed run continues its tracker run."""
    saved = _saved(run)
    if tracker == "tensorboard":
        try:
            import tensorboard  # noqa: F401
            from lightning.pytorch.loggers import TensorBoardLogger
        except ImportError:
            raise UserError(
                "--logger tensorboard needs the tensorboard package; pip install 'simclr-kit[tensorboard]'"
            ) from None
        # hp_metric: TensorBoard's HParams table shows the settings against it; evaluate fills in the linear top-1
        return [
            TensorBoardLogger(save_dir=str(run.path), name=run.tensorboard_name, version="", default_hp_metric=True)
        ]
    if tracker == "mlflow":
        try:
            import mlflow  # noqa: F401
            from lightning.pytorch.loggers import MLFlowLogger
        except ImportError:
            raise UserError("--logger mlflow needs the mlflow package; pip install 'simclr-kit[mlflow]'") from None
        own_store = f"sqlite:///{run.mlflow_db.resolve()}"
        uri = saved.get("tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI") or own_store
        return [
            MLFlowLogger(
                experiment_name=EXPERIMENT,
                run_name=run.name,
                tracking_uri=uri,
                run_id=saved.get("run_id"),
                # the run's own store keeps its artifacts beside it (MLflow's default is ./mlruns); a tracking
                # server decides for itself
                artifact_location=run.mlflow_artifacts.resolve().as_uri() if uri == own_store else None,
            )
        ]
    if tracker == "wandb":
        try:
            import wandb  # noqa: F401
            from lightning.pytorch.loggers import WandbLogger
        except ImportError:
            raise UserError("--logger wandb needs the wandb package; pip install 'simclr-kit[wandb]'") from None
        run.wandb_dir.mkdir(parents=True, exist_ok=True)
        offline = not os.environ.get("WANDB_API_KEY")  # no key: a local run, `wandb sync` uploads it later
        return [
            WandbLogger(
                project=EXPERIMENT, name=run.name, save_dir=str(run.path), offline=offline,
                id=saved.get("run_id"), resume="allow", log_model=False,
            )
        ]  # fmt: skip
    return []


def _flat(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Hyperparameters trackers accept: numbers, text and booleans; lists become text, None is ``"none"``."""
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        if value is None:
            flat[key] = "none"
        elif isinstance(value, bool | int | float | str):
            flat[key] = value
        else:
            flat[key] = str(value)
    return flat


def start_tracking(loggers: Sequence[Any], run: RunDir, settings: Mapping[str, Any]) -> None:
    """Log the run's settings as hyperparameters and remember where the tracker keeps the run."""
    for logger in loggers:
        logger.log_hyperparams(_flat(settings))
        name = type(logger).__name__
        if name == "MLFlowLogger":
            record = {"tracker": "mlflow", "tracking_uri": logger._tracking_uri, "run_id": logger.run_id}
        elif name == "WandbLogger":
            record = {"tracker": "wandb", "run_id": logger.version, "offline": bool(logger._offline)}
        elif name == "TensorBoardLogger":
            record = {"tracker": "tensorboard", "log_dir": str(Path(logger.log_dir).resolve())}
        else:
            continue
        write_text_atomic(run.tracking, json.dumps(record, indent=2) + "\n")


def finish_tracking(loggers: Sequence[Any], run: RunDir) -> None:
    """MLflow keeps the config and the backbone as artifacts of the run."""
    for logger in loggers:
        if type(logger).__name__ == "MLFlowLogger":
            for path in (run.config, run.backbone):
                if path.is_file():
                    logger.experiment.log_artifact(logger.run_id, str(path))


def evaluation_scalars(results: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """``eval/<method>/<metric>`` for every number of every result (nested blocks such as kNN's ``k200``
    included; tables and matrices left out)."""
    scalars: dict[str, float] = {}

    def walk(prefix: str, metrics: Mapping[str, Any]) -> None:
        for key, value in metrics.items():
            if isinstance(value, bool):
                continue
            if isinstance(value, int | float):
                scalars[f"{prefix}/{key}"] = float(value)
            elif isinstance(value, Mapping):
                walk(f"{prefix}/{key}", value)

    for method, entry in results.items():
        walk(f"eval/{method}", entry.get("metrics", {}))
    return scalars


def report_evaluation(run: RunDir, results: Mapping[str, Mapping[str, Any]], files: Sequence[Path] = ()) -> None:
    """Add an evaluation's numbers (and, for MLflow, ``files``: metrics.json, the report) to the run's tracker
    run; a run without one is left alone. The TensorBoard scalars are placed at the backbone's step."""
    saved = _saved(run)
    tracker = saved.get("tracker")
    if tracker is None:
        return
    scalars = evaluation_scalars(results)
    if tracker == "mlflow":
        import mlflow

        client = mlflow.MlflowClient(tracking_uri=saved["tracking_uri"])
        for key, value in scalars.items():
            client.log_metric(saved["run_id"], key, value)
        for path in files:
            if Path(path).is_file():
                client.log_artifact(saved["run_id"], str(path))
    elif tracker == "tensorboard":
        from torch.utils.tensorboard import SummaryWriter

        step = (read_backbone_metadata(run.backbone).global_step if run.backbone.is_file() else None) or 0
        headline = scalars.get(f"eval/{HP_METRIC_SOURCE}")
        with SummaryWriter(log_dir=saved["log_dir"]) as writer:
            for key, value in scalars.items():
                writer.add_scalar(key, value, global_step=step)
            if headline is not None:
                writer.add_scalar("hp_metric", headline, global_step=step)
    else:
        log.info("evaluation metrics stay in %s (%s runs are not updated after training)", run.path, tracker)
        return
    log.info("evaluation: %d number(s) and %d file(s) sent to the run's %s", len(scalars), len(files), tracker)
