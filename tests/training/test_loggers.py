"""--logger tensorboard | mlflow | wandb: the stores live in the run directory, the tracker gets the settings,
the scalars of a short run, the artifacts (MLflow) and, from simclr evaluate, the evaluation metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simclr.cli import main
from simclr.config import build_config
from simclr.tracking import evaluation_scalars
from simclr.training.pretrain import run_pretraining

pytestmark = pytest.mark.slow


def short_run(cifar_small: Path, run: Path, logger: str) -> None:
    """4 steps (64 images, batch 16) with the default logging interval of 50 steps."""
    config = build_config(
        {},
        dict(
            dataset="cifar10", data_dir=str(cifar_small), limit_train_images=64, batch_size=16, epochs=1,
            out=str(run), workers=1, knn_every_epochs=0, precision="32", logger=logger,
        ),
    )  # fmt: skip
    run_pretraining(config, quiet=True)


def test_tensorboard_gets_scalars_hparams_and_the_evaluation(
    cifar_small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    short_run(cifar_small, run, "tensorboard")
    assert main(["evaluate", str(run), "--no-plots", "--limit-train-images", "100"]) == 0
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert "train_loss" in scalars  # 4 steps, interval 50: the epoch's end still logs
    assert "eval/linear/top1" in scalars and any(tag.startswith("eval/knn/k") for tag in scalars)
    assert "_hparams_/session_start_info" in events.PluginTagToContent("hparams")  # the settings, as hparams
    linear = json.loads((run / "eval" / "metrics.json").read_text())["results"]["linear"]["metrics"]["top1"]
    assert events.Scalars("hp_metric")[-1].value == pytest.approx(linear)  # the HParams table's column
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # nothing written outside the run dir


def test_mlflow_gets_params_artifacts_and_the_evaluation(
    cifar_small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    short_run(cifar_small, run, "mlflow")
    assert main(["evaluate", str(run), "--no-plots", "--limit-train-images", "100"]) == 0
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{run / 'mlflow.db'}")
    (experiment,) = [e for e in client.search_experiments() if e.name == "simclr"]
    (found,) = client.search_runs([experiment.experiment_id])  # evaluate reported to the same run
    data = found.data
    assert data.params["batch_size"] == "16" and data.params["dataset"] == "cifar10"
    assert len(client.get_metric_history(found.info.run_id, "train_loss")) >= 1
    metrics = json.loads((run / "eval" / "metrics.json").read_text())["results"]
    assert data.metrics["eval/linear/top1"] == pytest.approx(metrics["linear"]["metrics"]["top1"])
    artifacts = {item.path for item in client.list_artifacts(found.info.run_id)}
    assert {"config.yaml", "backbone.safetensors", "metrics.json"} <= artifacts
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_wandb_runs_offline_inside_the_run_directory(
    cifar_small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("wandb")
    for key in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_DIR"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    short_run(cifar_small, run, "wandb")
    tracking = json.loads((run / "tracking.json").read_text())
    assert tracking["tracker"] == "wandb" and tracking["offline"] is True
    (offline,) = (run / "wandb").glob("offline-run-*")
    assert list(offline.glob("*.wandb")) and offline.name.endswith(tracking["run_id"])


def test_evaluation_scalars_flatten_every_number() -> None:
    results = {
        "linear": {"metrics": {"top1": 0.5, "confusion_matrix": [[1, 0], [0, 1]], "class_names": ["a", "b"]}},
        "knn": {"metrics": {"k200": {"top1": 0.4, "top5": 0.9}}},
    }
    assert evaluation_scalars(results) == {
        "eval/linear/top1": 0.5,
        "eval/knn/k200/top1": 0.4,
        "eval/knn/k200/top5": 0.9,
    }
