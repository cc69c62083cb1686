"""--compile trains the same network as the eager run (issue 15): a 3-step CPU run compiled with the
aot_eager backend (the graph capture and the autograd split of inductor, without generated C++) takes
the steps of the eager run, in float32."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from safetensors.torch import load_file

from simclr.config import build_config
from simclr.training.pretrain import run_pretraining

pytestmark = pytest.mark.slow


def _run(cifar_small: Path, out: Path, compile: bool) -> list[float]:
    config = build_config(
        {},
        dict(
            dataset="cifar10",
            data_dir=str(cifar_small),
            limit_train_images=24,
            batch_size=8,
            image_size=16,
            epochs=1,
            out=str(out),
            workers=0,
            knn_every_epochs=0,
            precision="32",
            optimizer="sgd",
            lr=0.05,
            compile=compile,
            compile_backend="aot_eager",
        ),
    )
    run_pretraining(config, quiet=True)
    with open(out / "metrics.csv", newline="") as handle:
        return [float(row["train_loss"]) for row in csv.DictReader(handle) if row["train_loss"]]


def test_compiled_run_takes_the_eager_runs_steps(cifar_small: Path, tmp_path: Path) -> None:
    eager = _run(cifar_small, tmp_path / "eager", compile=False)
    compiled = _run(cifar_small, tmp_path / "compiled", compile=True)
    assert len(eager) == len(compiled) == 3
    assert compiled == pytest.approx(eager, rel=1e-4, abs=1e-5)
    # the state dict keeps its names (compiled in place), so the backbone file is the eager run's
    expected, got = (
        load_file(str(tmp_path / "eager" / "backbone.safetensors")),
        load_file(str(tmp_path / "compiled" / "backbone.safetensors")),
    )
    assert expected.keys() == got.keys()
