"""Fake run directories for report tests: a real config.yaml, a metrics.csv, an eval/metrics.json in the
documented layout and PNGs drawn by the plot functions, all without training or evaluating."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from simclr.config import build_config
from simclr.evaluation.results import validate_metrics
from simclr.reports import plots
from simclr.rundir import RunDir
from simclr.settings import config_to_yaml

CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck<script>"]
SHA = "ab" * 32
MakeRun = Callable[..., Path]


def classification_block(top1: float, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    matrix = (rng.integers(0, 30, (10, 10)) + np.eye(10, dtype=int) * 4321).tolist()
    return {
        "top1": top1,
        "top5": 0.9512,
        "macro_f1": 0.6034,
        "weighted_f1": 0.6021,
        "per_class_accuracy": {name: round(0.5 + i / 40, 4) for i, name in enumerate(CIFAR_NAMES)},
        "confusion_matrix": matrix,
        "class_names": CIFAR_NAMES,
        "n_test": 10000,
    }


def cifar_metrics(run_dir: Path, linear_top1: float = 0.61, knn_top1: float = 0.55) -> dict[str, Any]:
    protocol = {"backbone_sha256": SHA, "seed": 0, "n_train": 5000, "n_test": 10000}
    doc = {
        "schema_version": 1,
        "run_dir": str(run_dir),
        "dataset": {"name": "cifar10", "image_size": 32, "num_classes": 10, "class_names": CIFAR_NAMES},
        "backbone": {
            "name": "resnet18",
            "stem": "cifar",
            "feature_dim": 512,
            "global_step": 585,
            "epoch": 2,
            "sha256": SHA,
            "weights": "pretrained",
        },
        "results": {
            "linear": {
                "method": "linear",
                "metrics": classification_block(linear_top1),
                "seconds": 12.3,
                "created": "2026-11-23T10:00:00+00:00",
                "protocol": {
                    **protocol,
                    "n_val": 500,
                    "l2_grid": [1e-6, 1e-4, 1e-2],
                    "chosen_l2": 1e-4,
                    "standardize": True,
                    "tta": 0,
                    "optimizer": "L-BFGS (full batch, strong Wolfe)",
                    "val_top1_by_l2": {"1e-06": 0.5, "0.0001": 0.6},
                },
            },
            "knn": {
                "method": "knn",
                "seconds": 3.1,
                "created": "2026-11-23T10:01:00+00:00",
                "protocol": {**protocol, "k": [200, 20], "temperature": 0.1},
                "metrics": {"k200": classification_block(knn_top1, 1), "k20": classification_block(0.5311, 2)},
            },
        },
    }
    validate_metrics(doc)
    return doc


def spirograph_metrics(run_dir: Path) -> dict[str, Any]:
    factors = {
        name: {"mse": 0.0123 + i / 1000, "r2": 0.81 - i / 100} for i, name in enumerate(["m", "b", "sigma", "rfore"])
    }
    doc = {
        "schema_version": 1,
        "run_dir": str(run_dir),
        "dataset": {"name": "spirograph", "image_size": 32, "num_classes": 0, "targets": list(factors)},
        "backbone": {
            "name": "resnet18",
            "stem": "cifar",
            "feature_dim": 512,
            "global_step": 120,
            "epoch": 3,
            "sha256": SHA,
            "weights": "pretrained",
        },
        "results": {
            "regression": {
                "method": "regression",
                "seconds": 2.0,
                "created": "2026-11-23T11:00:00+00:00",
                "protocol": {"backbone_sha256": SHA, "seed": 0, "n_train": 3072, "n_test": 1024},
                "metrics": {"mse": 0.01234, "r2": 0.7654, "per_factor": factors, "n_test": 1024},
            }
        },
    }
    validate_metrics(doc)
    return doc


def write_metrics_csv(path: Path, steps: int = 12, knn: bool = True) -> Path:
    rows = ["step,epoch,train_loss,lr,img_per_s,knn_top1"]
    for step in range(steps):
        rows.append(
            f"{step},{step // 6},{6.0 - step / 10:.4f},{0.3 * (step + 1) / steps:.5f},{'' if step == 0 else 40.0},"
        )
        if knn and step % 6 == 5:
            rows.append(f"{step},{step // 6},,,,{0.2 + step / 100:.4f}")
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="session")
def plot_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real PNGs from the plot functions, drawn once per session (t-SNE is the slow one)."""
    folder = tmp_path_factory.mktemp("plots")
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 15)
    features = rng.normal(size=(60, 16)) + 3 * labels[:, None]
    curves = plots.plot_training_curves(write_metrics_csv(folder / "m.csv"), folder / plots.TRAINING_CURVES)
    assert curves is not None
    return {
        plots.TRAINING_CURVES: curves,
        plots.CONFUSION_MATRIX: plots.plot_confusion_matrix(
            classification_block(0.6)["confusion_matrix"], CIFAR_NAMES, folder / plots.CONFUSION_MATRIX
        ),
        plots.EMBEDDING_TSNE: plots.plot_embedding_map(
            features, folder / plots.EMBEDDING_TSNE, labels=labels, class_names=list("abcd")
        ),
        plots.AUGMENTED_VIEWS: plots.plot_view_grid(
            torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8),
            [torch.rand(3, 3, 16, 16)],
            folder / plots.AUGMENTED_VIEWS,
        ),
    }


@pytest.fixture
def make_run(tmp_path: Path, plot_files: dict[str, Path]) -> MakeRun:
    """``make_run(name, kind="cifar"|"spirograph"|None, with_plots=True, **metrics_kwargs) -> run_dir``.

    ``kind`` None makes a run that was pretrained but never evaluated (no eval/ folder).
    """

    def factory(name: str, kind: str | None = "cifar", with_plots: bool = True, **kwargs: Any) -> Path:
        run = tmp_path / name
        dataset = "spirograph" if kind == "spirograph" else "cifar10"
        run.mkdir(parents=True)
        (run / "config.yaml").write_text(
            config_to_yaml(build_config({"dataset": dataset, "out": str(run), "epochs": 3}, {}))
        )
        write_metrics_csv(run / "metrics.csv")
        if kind is None:
            return run
        doc = spirograph_metrics(run) if kind == "spirograph" else cifar_metrics(run, **kwargs)
        (run / "eval").mkdir()
        (run / "eval" / "metrics.json").write_text(json.dumps(doc))
        if with_plots:
            target = RunDir(run).eval.plots
            target.mkdir(parents=True)
            for name_, path in plot_files.items():
                shutil.copyfile(path, target / name_)
        return run

    return factory
