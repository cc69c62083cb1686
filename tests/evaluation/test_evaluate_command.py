"""simclr evaluate: the standard protocol per dataset, its plots and the report, in one command."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from PIL import Image

from simclr.cli import main
from simclr.evaluation.results import validate_metrics

CLASSIFICATION_PLOTS = {
    "training_curves.png",
    "confusion_matrix.png",
    "confusion_matrix_knn.png",
    "embedding_tsne.png",
    "augmented_views.png",
}


def test_evaluate_labelled_run(make_run, cifar_small: Path, capsys) -> None:
    run = make_run("cifar10", cifar_small)
    assert main(["evaluate", str(run), "--limit-train-images", "200"]) == 0
    out = capsys.readouterr().out
    report = run / "eval" / "report.html"
    assert f"report: {report.resolve()}" in out
    assert "linear top-1" in out and "knn k200 top-1" in out
    doc = json.loads((run / "eval" / "metrics.json").read_text())
    validate_metrics(doc)
    assert set(doc["results"]) == {"linear", "knn"}
    assert {p.name for p in (run / "eval" / "plots").iterdir()} == CLASSIFICATION_PLOTS
    views = Image.open(run / "eval" / "plots" / "augmented_views.png")
    assert views.width > views.height / 3  # original + 2 views per row
    html = report.read_text()
    assert html.count("data:image/png;base64,") >= 5 and "kNN: confusion matrix on the test split" in html
    assert f"{100 * doc['results']['linear']['metrics']['top1']:.1f}" in html


def test_evaluate_spirograph_regresses_factors(make_run, capsys) -> None:
    run = make_run("spirograph", train_size=200, test_size=60)
    assert main(["evaluate", str(run)]) == 0
    out = capsys.readouterr().out
    assert "regression MSE" in out
    doc = json.loads((run / "eval" / "metrics.json").read_text())
    assert set(doc["results"]) == {"regression"}
    plots = {p.name for p in (run / "eval" / "plots").iterdir()}
    assert plots == {"training_curves.png", "embedding_tsne.png", "augmented_views.png"}


def test_evaluate_random_weights_baseline_writes_no_report(make_run, cifar_small: Path) -> None:
    run = make_run("cifar10", cifar_small)
    assert main(["evaluate", str(run), "--random-weights", "--no-plots", "--limit-train-images", "100"]) == 0
    doc = json.loads((run / "eval-random-weights" / "metrics.json").read_text())
    assert doc["backbone"]["weights"] == "random"
    assert not (run / "eval").exists()


def _keep_backbones(run: Path, epochs: list[int], image_size: int = 32) -> None:
    """Kept backbones as a run with --keep-every-epochs writes them (seeded random weights here)."""
    import torch

    from simclr.models.backbone_file import BackboneMetadata, write_backbone
    from simclr.models.backbones import build_backbone
    from simclr.rundir import RunDir

    kept = RunDir(run)
    kept.checkpoints.mkdir(parents=True, exist_ok=True)
    for number in epochs:
        torch.manual_seed(number)
        module, dim = build_backbone("resnet18", "cifar")
        meta = BackboneMetadata(
            backbone="resnet18", stem="cifar", feature_dim=dim, image_size=image_size, epoch=number - 1
        )
        write_backbone(kept.kept_backbone(number), module.state_dict(), meta)


def test_evaluate_checkpoint_all_scans_every_kept_backbone(make_run, cifar_small: Path, capsys) -> None:
    run = make_run("cifar10", cifar_small)
    _keep_backbones(run, [2, 4])
    limits = ["--limit-train-images", "60", "--limit-test-images", "30"]
    assert main(["evaluate", str(run), "--checkpoint", "all", *limits]) == 0
    out, err = capsys.readouterr()
    assert "checkpoint scan:" in out
    # progress on stderr (a line per tenth off a terminal): the backbones done, and each one's own stages
    assert "evaluate kept backbones: 0/2" in err and "evaluate kept backbones: 2/2" in err
    assert "evaluate epoch 2: train: 60/60" in err and "evaluate epoch 4: test: 30/30" in err
    assert "evaluate epoch 2: knn: 1/1" in err and "evaluate epoch 4: knn: 1/1" in err
    with open(run / "eval" / "checkpoint-scan.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["epochs"]) for row in rows] == [2, 4]
    assert [row["file"] for row in rows] == ["epoch-0002.safetensors", "epoch-0004.safetensors"]
    assert all(0 <= float(row["knn_top1"]) <= 1 for row in rows)
    assert (run / "eval" / "plots" / "checkpoint-scan.png").stat().st_size > 0


def test_evaluate_checkpoint_all_on_spirograph_regresses_every_kept_backbone(make_run, capsys) -> None:
    run = make_run("spirograph", train_size=120, test_size=40, image_size=16)
    _keep_backbones(run, [1, 2], image_size=16)
    assert main(["evaluate", str(run), "--checkpoint", "all"]) == 0
    assert "checkpoint scan:" in capsys.readouterr().out
    with open(run / "eval" / "checkpoint-scan.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["epochs"]) for row in rows] == [1, 2]
    assert all(float(row["regression_r2"]) <= 1 and float(row["regression_mse"]) > 0 for row in rows)
    assert "knn_top1" not in rows[0]
    assert (run / "eval" / "plots" / "checkpoint-scan.png").stat().st_size > 0


def test_a_scan_with_the_linear_probe_keeps_the_final_backbones_classifier(make_run, cifar_small: Path) -> None:
    run = make_run("cifar10", cifar_small)
    limits = ["--limit-train-images", "60", "--limit-test-images", "30"]
    assert main(["evaluate", str(run), *limits, "--no-plots"]) == 0
    final = (run / "eval" / "linear" / "classifier.safetensors").read_bytes()
    _keep_backbones(run, [2])
    assert main(["evaluate", str(run), "--checkpoint", "all", "--scan-linear", *limits]) == 0
    assert (run / "eval" / "linear" / "classifier.safetensors").read_bytes() == final
    assert (run / "eval" / "checkpoint-epoch-2" / "linear" / "classifier.safetensors").is_file()


def test_evaluate_one_kept_checkpoint_writes_to_its_own_folder(make_run, cifar_small: Path) -> None:
    run = make_run("cifar10", cifar_small)
    _keep_backbones(run, [3])
    limits = ["--limit-train-images", "60", "--limit-test-images", "30", "--no-plots"]
    assert main(["evaluate", str(run), "--checkpoint", "epoch-3", *limits]) == 0
    doc = json.loads((run / "eval" / "checkpoint-epoch-3" / "metrics.json").read_text())
    assert doc["backbone"]["epoch"] == 2
    assert not (run / "eval" / "metrics.json").exists()  # the final backbone's results are untouched


def test_evaluate_unknown_checkpoint_is_a_one_line_error(make_run, cifar_small: Path, capsys) -> None:
    run = make_run("cifar10", cifar_small)
    _keep_backbones(run, [2])
    assert main(["evaluate", str(run), "--checkpoint", "epoch-7"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "epoch-7" in err and "epoch-2" in err and "all" in err
