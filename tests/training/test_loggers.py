"""--logger tensorboard | mlflow | wandb | csv: each tracker gets the hyperparameters as the run used them (with
the setting as typed under ``setting/`` where it differs), environment.yaml, the scalars of a short run and,
from every evaluation command, the evaluation metrics. Every test reads back what the tracker wrote."""

from __future__ import annotations

import json
import logging
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from simclr.cli import main
from simclr.config import build_config
from simclr.tracking import evaluation_scalars, headline_metric, tracker_hyperparameters
from simclr.training.pretrain import run_pretraining

pytestmark = pytest.mark.slow


def tiny_run(run: Path, logger: str, **settings: Any) -> dict[str, Any]:
    """4 steps of Spirograph (64 images of 16 px, batch 16), with the learning rate, weight decay and jitter
    strength left to the run to decide; returns environment.yaml's resolved block."""
    config = build_config(
        {},
        dict(
            dataset="spirograph", train_size=64, test_size=32, batch_size=16, image_size=16, epochs=1, out=str(run),
            workers=1, knn_every_epochs=0, precision="32", logger=logger, **settings,
        ),
    )  # fmt: skip
    run_pretraining(config, quiet=True)
    resolved: dict[str, Any] = yaml.safe_load((run / "environment.yaml").read_text())["resolved"]
    assert resolved["lr"] > 0 and resolved["image_size"] == 16 and resolved["jitter_strength"] is not None
    return resolved


def evaluate(run: Path) -> dict[str, Any]:
    """``simclr evaluate`` (the Spirograph regression); returns its metrics.json results."""
    assert main(["evaluate", str(run), "--no-plots"]) == 0
    results: dict[str, Any] = json.loads((run / "eval" / "metrics.json").read_text())["results"]
    return results


def test_tensorboard_gets_hparams_as_used_environment_and_the_evaluation_headline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    resolved = tiny_run(run, "tensorboard")
    r2 = evaluate(run)["regression"]["metrics"]["r2"]
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert "train_loss" in scalars and "eval/regression/r2" in scalars
    assert events.Scalars("hp_metric")[-1].value == pytest.approx(r2)  # Spirograph's headline, not -1
    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    assert hparams["lr"].number_value == pytest.approx(resolved["lr"])
    assert hparams["setting/lr"].string_value == "none"
    assert hparams["jitter_strength"].number_value == pytest.approx(resolved["jitter_strength"])
    assert hparams["setting/jitter_strength"].string_value == "none"
    assert hparams["global_batch"].number_value == 16 and hparams["warmup_steps"].number_value >= 0
    assert "setting/image_size" not in hparams and "setting/precision" not in hparams  # as typed: no second entry
    text = events.Tensors("environment.yaml/text_summary")[-1].tensor_proto.string_val[0].decode()
    assert f"lr: {resolved['lr']}" in text and "environment:" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # nothing written outside the run dir


def test_mlflow_keeps_two_runs_in_one_experiment_of_the_shared_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    runs = tmp_path / "runs"
    resolved = tiny_run(runs / "a", "mlflow", weight_decay=1e-4)
    tiny_run(runs / "b", "mlflow", weight_decay=1e-4)
    results = evaluate(runs / "a")
    # resumed for a second epoch: the same MLflow run, which keeps the first value of what changed
    assert main(["pretrain", "--resume", str(runs / "b"), "--resume-with-changes", "--epochs", "2", "--quiet"]) == 0
    monkeypatch.chdir(runs)  # where `mlflow ui` started with no setup looks: ./mlflow.db, artifacts in ./mlruns
    found = mlflow.search_runs(experiment_names=["simclr"], output_format="list")
    by_name = {item.info.run_name: item for item in found}
    assert sorted(by_name) == ["a", "b"]  # one experiment, the store beside the run directories
    params, metrics = by_name["a"].data.params, by_name["a"].data.metrics
    assert float(params["lr"]) == pytest.approx(resolved["lr"]) and params["setting/lr"] == "none"
    assert float(params["weight_decay"]) == pytest.approx(1e-4) and "setting/weight_decay" not in params
    assert int(params["warmup_steps"]) == resolved["warmup_steps"] and params["image_size"] == "16"
    assert metrics["eval/regression/r2"] == pytest.approx(results["regression"]["metrics"]["r2"])
    assert "eval/regression/r2" not in by_name["b"].data.metrics
    assert by_name["b"].data.params["epochs"] == "1" and by_name["b"].data.params["total_steps"] == "4"
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{runs / 'mlflow.db'}")
    losses = {name: client.get_metric_history(item.info.run_id, "train_loss") for name, item in by_name.items()}
    assert len(losses["b"]) > len(losses["a"]) >= 1  # b's second epoch went on in the same run
    artifacts = {item.path for item in client.list_artifacts(by_name["a"].info.run_id)}
    assert {"config.yaml", "backbone.safetensors", "environment.yaml", "metrics.json"} <= artifacts
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]  # nothing in the first working directory
    assert sorted(p.name for p in runs.iterdir()) == ["a", "b", "mlflow.db", "mlruns"]


def wandb_records(offline_run: Path) -> Iterator[Any]:
    """The records of an offline W&B run's ``.wandb`` file: a LevelDB-style log of protobuf records in 32 KiB
    blocks (7-byte file header; per chunk: crc32, length, type 1 full / 2 first / 3 middle / 4 last)."""
    from wandb.proto import wandb_internal_pb2

    (path,) = offline_run.glob("*.wandb")
    data, block = path.read_bytes(), 32 * 1024
    assert data[:4] == b":W&B"
    position, pending = 7, b""
    while position + 7 <= len(data):
        if block - position % block < 7:  # a block's tail too short for a header is padding
            position += block - position % block
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):
            yield wandb_internal_pb2.Record.FromString(pending)
            pending = b""


def wandb_items(items: Any) -> dict[str, Any]:
    """Key and value of W&B's config, history or summary items (a key is ``key`` or its ``nested_key`` path)."""
    return {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items}


def test_wandb_offline_gets_hparams_environment_and_the_evaluation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("wandb")
    for key in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_DIR"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    resolved = tiny_run(run, "wandb", experiment="spirals")
    results = evaluate(run)
    tracking = json.loads((run / "tracking.json").read_text())
    assert tracking["tracker"] == "wandb" and tracking["offline"] is True and tracking["experiment"] == "spirals"
    # a second run in the same second gets a -1 suffix
    offline_runs = sorted((run / "wandb").glob(f"offline-run-*-{tracking['run_id']}*"))
    assert len(offline_runs) >= 2  # training, then evaluate resuming the same run id (`wandb sync` joins them)
    config, history, summary, files = {}, {}, {}, set()
    for offline in offline_runs:
        for record in wandb_records(offline):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                assert record.run.run_id == tracking["run_id"] and record.run.project == "spirals"
            if kind == "config":
                config.update(wandb_items(record.config.update))
            if kind == "history":
                history.update(wandb_items(record.history.item))
            if kind == "summary":
                summary.update(wandb_items(record.summary.update))
            if kind == "files":
                files |= {item.path for item in record.files.files}
    assert config["lr"] == pytest.approx(resolved["lr"]) and config["setting/lr"] == "none"
    assert config["global_batch"] == 16
    r2 = results["regression"]["metrics"]["r2"]
    assert history["eval/regression/r2"] == pytest.approx(r2) and summary["eval/regression/r2"] == pytest.approx(r2)
    assert {"environment.yaml", "metrics.json"} <= files


def test_csv_evaluation_says_once_where_the_metrics_stay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    tiny_run(run, "csv")
    monkeypatch.setattr(logging.getLogger("simclr"), "handlers", [])  # as in a fresh `simclr evaluate` process
    capsys.readouterr()
    evaluate(run)
    said = [line for line in capsys.readouterr().err.splitlines() if "evaluation metrics stay in" in line]
    assert len(said) == 1 and said[0].endswith(
        f"evaluation metrics stay in {run / 'eval' / 'metrics.json'} (--logger csv has no tracker run: "
        "metrics.csv holds the training steps)"
    )


def test_hyperparameters_are_the_values_used_with_the_setting_where_it_differs() -> None:
    settings = {"lr": None, "batch_size": 16, "precision": "auto", "image_size": None, "crop_scale": [0.08, 1.0]}
    resolved = {"lr": 0.0375, "precision": "bf16-mixed", "image_size": 32, "global_batch": 64}
    assert tracker_hyperparameters(settings, resolved) == {
        "lr": 0.0375,
        "setting/lr": "none",
        "batch_size": 16,
        "precision": "bf16-mixed",
        "setting/precision": "auto",
        "image_size": 32,
        "setting/image_size": "none",
        "crop_scale": "[0.08, 1.0]",
        "global_batch": 64,
    }


def test_the_headline_is_linear_top1_or_the_regression_r2() -> None:
    assert headline_metric({"eval/knn/k200/top1": 0.4, "eval/linear/top1": 0.5}) == 0.5
    assert headline_metric({"eval/regression/mse": 0.1, "eval/regression/r2": 0.7}) == 0.7
    assert headline_metric({"eval/knn/k200/top1": 0.4}) is None


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
