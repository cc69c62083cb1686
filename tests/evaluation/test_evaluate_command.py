"""simclr evaluate: the standard protocol per dataset, its plots and the report, in one command."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from simclr.cli import main
from simclr.evaluation.results import validate_metrics

CLASSIFICATION_PLOTS = {"training_curves.png", "confusion_matrix.png", "embedding_tsne.png", "augmented_views.png"}


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
    assert html.count("data:image/png;base64,") >= 4
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
