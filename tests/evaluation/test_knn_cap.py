"""``simclr knn --k`` above the bank size (issue 14): the k that ran is recorded, with the k that was asked."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from simclr.cli import main
from simclr.evaluation.protocols.knn import capped_ks
from simclr.evaluation.results import validate_metrics


@pytest.fixture
def cifar_tiny(cifar_small: Path, tmp_path: Path) -> Path:
    """3 train and 1 test image per class: a bank of 30."""
    for split, count in (("train", 3), ("test", 1)):
        for class_dir in sorted((cifar_small / split).iterdir()):
            (tmp_path / "tiny" / split / class_dir.name).mkdir(parents=True)
            for image in sorted(class_dir.iterdir())[:count]:
                shutil.copyfile(image, tmp_path / "tiny" / split / class_dir.name / image.name)
    return tmp_path / "tiny"


def test_capped_ks_keeps_order_and_drops_repeats() -> None:
    assert capped_ks([200, 20], 300) == ([200, 20], [])
    assert capped_ks([100_000, 50, 20, 30], 30) == (
        [30, 20],
        ["capped from 100000 to 30 (bank size)", "capped from 50 to 30 (bank size)"],
    )


def test_k_above_the_bank_records_the_k_that_ran(make_run, cifar_tiny: Path, capsys, caplog) -> None:
    run = make_run("cifar10", cifar_tiny)
    with caplog.at_level(logging.WARNING, logger="simclr"):
        assert main(["knn", str(run), "--k", "100000", "5"]) == 0
    assert "knn k30 top-1" in capsys.readouterr().out
    assert "knn: k capped from 100000 to 30 (bank size)" in caplog.text
    doc = json.loads((run / "eval" / "metrics.json").read_text())
    validate_metrics(doc)
    knn = doc["results"]["knn"]
    assert set(knn["metrics"]) == {"k30", "k5"}
    assert knn["protocol"]["k"] == [30, 5] and knn["protocol"]["k_requested"] == [100000, 5]
    assert knn["protocol"]["k_capped"] == "capped from 100000 to 30 (bank size)"
    assert knn["protocol"]["n_train"] == 30
