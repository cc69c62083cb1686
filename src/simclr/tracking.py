"""The experiment tracker a run reports to (``--logger``): TensorBoard, MLflow or Weights & Biases.

Pretraining hands Lightning the tracker's logger (the scalars), logs the hyperparameters as the run used them
(what ``auto`` and ``null`` settings became, with the setting as typed under ``setting/`` where it differs)
and environment.yaml, and when training ends gives MLflow the config and the backbone as artifacts. Where the
tracker keeps the run is written to ``tracking.json`` in the run directory, so a resumed run reports to the
same tracker run and every evaluation command adds its metrics (and, for MLflow and W&B, metrics.json and the
report) to it. MLflow's store is shared by the runs of a folder (``mlflow.db`` and ``mlruns/`` beside the run
directory, MLflow's own default names) unless ``MLFLOW_TRACKING_URI`` is set, and runs are grouped by
``--experiment``. ``metrics.csv`` is written in every case; ``csv`` and ``none`` add no tracker.
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
from simclr.rundir import METRICS_FILE, RunDir

__all__ = [
    "evaluation_scalars",
    "finish_tracking",
    "headline_metric",
    "lightning_loggers",
    "report_evaluation",
    "start_tracking",
    "tracker_hyperparameters",
]

EXPERIMENT = "simclr"  # the W&B project of runs whose tracking.json predates --experiment
# TensorBoard's hp_metric once the run is evaluated: the headline of the dataset's standard protocol
# (commands/evaluate.py): linear top-1 for labelled data, the regression's R^2 for Spirograph
HEADLINE_METRICS = ("eval/linear/top1", "eval/regression/r2")
SETTING_PREFIX = "setting/"  # the value as typed, beside a hyperparameter the run resolved differently

log = logging.getLogger("simclr")


def _saved(run: RunDir) -> dict[str, Any]:
    try:
        doc = json.loads(run.tracking.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return doc if isinstance(doc, dict) else {}


def lightning_loggers(tracker: str, run: RunDir, experiment: str) -> list[Any]:
    """The Lightning logger of ``tracker``, grouping the run under ``experiment``: TensorBoard and W&B keep
    their store in the run directory, MLflow in the store the runs of the folder share (``MLFLOW_TRACKING_URI``
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
        # hp_metric: TensorBoard's HParams table shows the settings against it; evaluate fills in the headline
        return [
            TensorBoardLogger(save_dir=str(run.path), name=run.tensorboard_name, version="", default_hp_metric=True)
        ]
    if tracker == "mlflow":
        try:
            import mlflow  # noqa: F401
            from lightning.pytorch.loggers import MLFlowLogger
        except ImportError:
            raise UserError("--logger mlflow needs the mlflow package; pip install 'simclr-kit[mlflow]'") from None
        shared_store = f"sqlite:///{run.mlflow_db}"
        uri = saved.get("tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI") or shared_store
        return [
            MLFlowLogger(
                experiment_name=saved.get("experiment", experiment),
                run_name=run.name,
                tracking_uri=uri,
                run_id=saved.get("run_id"),
                # the shared store keeps its artifacts beside it, where `mlflow ui` looks (a relative ./mlruns
                # would follow the working directory); a tracking server decides for itself
                artifact_location=run.mlflow_artifacts.as_uri() if uri == shared_store else None,
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
                project=saved.get("experiment", experiment), name=run.name, save_dir=str(run.path), offline=offline,
                id=saved.get("run_id"), resume="allow", log_model=False,
            )
        ]  # fmt: skip
    return []


def _flat(value: Any) -> Any:
    """A hyperparameter value trackers accept: numbers, text and booleans; lists become text, None ``"none"``."""
    if value is None:
        return "none"
    return value if isinstance(value, bool | int | float | str) else str(value)


def tracker_hyperparameters(settings: Mapping[str, Any], resolved: Mapping[str, Any]) -> dict[str, Any]:
    """The hyperparameters as the run used them: the settings with what ``auto`` and ``null`` became
    (``resolved``: environment.yaml's block, with values no setting holds such as the global batch), and the
    setting as typed under ``setting/<name>`` where the two differ (``lr: 0.0375``, ``setting/lr: none``)."""
    hyperparameters = {key: _flat(value) for key, value in settings.items()}
    for key, value in resolved.items():
        used = _flat(value)
        if key in hyperparameters and hyperparameters[key] != used:
            hyperparameters[SETTING_PREFIX + key] = hyperparameters[key]
        hyperparameters[key] = used
    return hyperparameters


def start_tracking(
    loggers: Sequence[Any], run: RunDir, settings: Mapping[str, Any], resolved: Mapping[str, Any]
) -> None:
    """Log the hyperparameters as used and environment.yaml (MLflow artifact, W&B file, TensorBoard text), and
    remember where the tracker keeps the run."""
    hyperparameters = tracker_hyperparameters(settings, resolved)
    for logger in loggers:
        name = type(logger).__name__
        logger.log_hyperparams(
            _unchanged_mlflow_params(logger, hyperparameters) if name == "MLFlowLogger" else hyperparameters
        )
        if name == "MLFlowLogger":
            logger.experiment.log_artifact(logger.run_id, str(run.environment))
            experiment = logger.experiment.get_experiment(logger.experiment_id).name
            record = {"tracker": "mlflow", "tracking_uri": logger._tracking_uri, "run_id": logger.run_id}
        elif name == "WandbLogger":
            logger.experiment.save(str(run.environment), base_path=str(run.path), policy="now")
            experiment = logger.experiment.project
            record = {"tracker": "wandb", "run_id": logger.version, "offline": bool(logger._offline)}
        elif name == "TensorBoardLogger":
            # markdown: indented by four spaces, the YAML shows as written
            text = "".join(f"    {line}" for line in run.environment.read_text().splitlines(keepends=True))
            logger.experiment.add_text(run.environment.name, text)
            experiment = None
            record = {"tracker": "tensorboard", "log_dir": str(Path(logger.log_dir).resolve())}
        else:
            continue
        if experiment is not None:
            record["experiment"] = experiment
        write_text_atomic(run.tracking, json.dumps(record, indent=2) + "\n")


def _unchanged_mlflow_params(logger: Any, hyperparameters: Mapping[str, Any]) -> dict[str, Any]:
    """The hyperparameters a resumed MLflow run may take: MLflow refuses to change a logged parameter, so one
    that differs now (another machine's precision, a --resume-with-changes) keeps its first value, as said."""
    logged = logger.experiment.get_run(logger.run_id).data.params
    changed = sorted(key for key, value in hyperparameters.items() if key in logged and logged[key] != str(value)[:250])
    if changed:
        log.warning(
            "MLflow keeps the first value of a parameter: %s stay as first logged (environment.yaml has this start's)",
            ", ".join(changed),
        )
    return {key: value for key, value in hyperparameters.items() if key not in changed}


def finish_tracking(loggers: Sequence[Any], run: RunDir) -> None:
    """MLflow keeps the config and the backbone as artifacts of the run; the W&B run is closed, so a later
    evaluation in the same process (the Python API) resumes it as a command would."""
    for logger in loggers:
        if type(logger).__name__ == "MLFlowLogger":
            for path in (run.config, run.backbone):
                if path.is_file():
                    logger.experiment.log_artifact(logger.run_id, str(path))
        elif type(logger).__name__ == "WandbLogger":
            logger.experiment.finish()


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


def headline_metric(scalars: Mapping[str, float]) -> float | None:
    """The run's headline among ``scalars`` (:data:`HEADLINE_METRICS`), or None when they hold none."""
    return next((scalars[key] for key in HEADLINE_METRICS if key in scalars), None)


_TOLD: set[Path] = set()  # runs whose evaluation metrics were said to stay in the run directory, in this process


def report_evaluation(run: RunDir, results: Mapping[str, Mapping[str, Any]], files: Sequence[Path] = ()) -> None:
    """Add an evaluation's numbers (and, for MLflow and W&B, ``files``: metrics.json, the report) to the run's
    tracker run, at the backbone's step; where there is none to add them to, say why once (``--logger none``:
    nothing to say)."""
    saved = _saved(run)
    tracker = saved.get("tracker")
    scalars = evaluation_scalars(results)
    step = (read_backbone_metadata(run.backbone).global_step if run.backbone.is_file() else None) or 0
    reason: str | None = None
    if tracker == "mlflow":
        _report_to_mlflow(saved, scalars, files)
    elif tracker == "tensorboard":
        _report_to_tensorboard(saved, scalars, step)
    elif tracker == "wandb":
        reason = _report_to_wandb(run, saved, scalars, files, step)
    else:
        configured = _configured_logger(run)
        if configured == "none":
            return
        reason = (
            f"--logger csv has no tracker run: {METRICS_FILE} holds the training steps"
            if configured == "csv"
            else f"the run has no {run.tracking.name}: its --logger {configured} run is not known"
        )
    if reason is not None:
        if run.path not in _TOLD:  # once per run, not once per result
            _TOLD.add(run.path)
            # a warning: an evaluation command's log has no handler for info, and the user asked for a tracker
            log.warning("evaluation metrics stay in %s (%s)", run.eval.metrics, reason)
        return
    log.info("evaluation: %d number(s) and %d file(s) sent to the run's %s", len(scalars), len(files), tracker)


def _configured_logger(run: RunDir) -> str:
    """The run's ``--logger`` as saved in its config (``csv`` when the config does not say)."""
    try:
        return str(run.read_config_values().get("logger", "csv"))
    except (UserError, OSError):
        return "csv"


def _report_to_mlflow(saved: Mapping[str, Any], scalars: Mapping[str, float], files: Sequence[Path]) -> None:
    import mlflow  # optional and heavy: kept out of `import simclr`

    client = mlflow.MlflowClient(tracking_uri=saved["tracking_uri"])
    for key, value in scalars.items():
        client.log_metric(saved["run_id"], key, value)
    for path in files:
        if Path(path).is_file():
            client.log_artifact(saved["run_id"], str(path))


def _report_to_tensorboard(saved: Mapping[str, Any], scalars: Mapping[str, float], step: int) -> None:
    from torch.utils.tensorboard import SummaryWriter  # torch stays out of `import simclr`

    headline = headline_metric(scalars)
    with SummaryWriter(log_dir=saved["log_dir"]) as writer:
        for key, value in scalars.items():
            writer.add_scalar(key, value, global_step=step)
        if headline is not None:  # the HParams table's column
            writer.add_scalar("hp_metric", headline, global_step=step)


def _report_to_wandb(
    run: RunDir, saved: Mapping[str, Any], scalars: Mapping[str, float], files: Sequence[Path], step: int
) -> str | None:
    """Resume the run's W&B run (offline as it was made, or online) and add the numbers to its history and
    summary, and ``files`` to its files; returns why it could not, or None."""
    import wandb  # optional and heavy: kept out of `import simclr`

    offline = bool(saved.get("offline", True))
    if not offline and not os.environ.get("WANDB_API_KEY"):
        return f"its W&B run {saved['run_id']} is online and WANDB_API_KEY is not set"
    try:
        tracker_run = wandb.init(
            project=saved.get("experiment", EXPERIMENT), id=saved["run_id"], resume="allow", dir=str(run.path),
            mode="offline" if offline else "online",
        )  # fmt: skip
    except Exception as error:  # any W&B failure (network, account): the numbers are on disk already
        return f"W&B did not resume run {saved['run_id']}: {str(error).splitlines()[0] if str(error) else error!r}"
    try:
        if scalars:
            # x axis: Lightning's WandbLogger logs trainer/global_step beside every training scalar
            tracker_run.log({**scalars, "trainer/global_step": step})
            tracker_run.summary.update(dict(scalars))
        for path in files:
            if Path(path).is_file():
                tracker_run.save(str(path), base_path=str(Path(path).parent), policy="now")
    finally:
        tracker_run.finish()
    return None
