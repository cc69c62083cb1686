"""--logger tensorboard and --logger mlflow write their stores inside the run directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from simclr.config import build_config
from simclr.training.pretrain import run_pretraining

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("logger", ["tensorboard", "mlflow"])
def test_tracking_store_lives_in_the_run_dir(
    logger: str, cifar_small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    config = build_config(
        {},
        dict(
            dataset="cifar10",
            data_dir=str(cifar_small),
            limit_train_images=32,
            batch_size=16,
            epochs=1,
            out=str(run),
            workers=1,
            knn_every_epochs=0,
            precision="32",
            logger=logger,
            log_every_steps=1,
        ),
    )
    run_pretraining(config, quiet=True)
    if logger == "tensorboard":
        events = list((run / "tensorboard").rglob("events.out.tfevents.*"))
        assert events and events[0].stat().st_size > 0
    else:
        import mlflow

        assert (run / "mlflow.db").is_file()
        client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{run / 'mlflow.db'}")
        (experiment,) = [e for e in client.search_experiments() if e.name == "simclr"]
        (found,) = client.search_runs([experiment.experiment_id])
        assert len(client.get_metric_history(found.info.run_id, "train_loss")) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # nothing written outside the run dir
