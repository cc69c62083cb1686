"""The pieces of benchmarks/time_to_accuracy.py that need neither the network nor lightly: the evaluation of
saved features (it must agree with ``simclr knn``), the bank, the budget, the table and its record."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch

from simclr.cli import main as simclr_main
from simclr.models.backbones import build_backbone

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from throughput import emit_report  # noqa: E402
from time_to_accuracy import (  # noqa: E402
    SECTION,
    FeatureSet,
    Row,
    evaluate_features,
    format_report,
    parse_budget,
    prepare_eval_data,
    recipe_flags,
    session_features,
)


@pytest.mark.slow
def test_saved_features_give_the_knn_of_the_knn_command(cifar_small: Path, tmp_path: Path) -> None:
    """A backbone from outside (as lightly's is), imported as a run: ``simclr knn`` on it and the benchmark's
    evaluation of its features, saved to the .npz the lightly side writes and read back, agree."""
    torch.manual_seed(0)
    module, _ = build_backbone("resnet18", "cifar")
    torch.save(module.state_dict(), tmp_path / "outside.pt")
    run = tmp_path / "run"
    imported = ["import-weights", str(tmp_path / "outside.pt"), str(run), "--backbone", "resnet18", "--stem", "cifar"]
    assert simclr_main([*imported, "--dataset", "cifar10", "--data-dir", str(cifar_small), "--image-size", "32"]) == 0
    assert simclr_main(["knn", str(run), "--k", "200", "--temperature", "0.1"]) == 0
    command_top1 = json.loads((run / "eval" / "metrics.json").read_text())["results"]["knn"]["metrics"]["k200"]["top1"]

    features = session_features(run, cifar_small, tmp_path / "bench-eval")
    features.save(tmp_path / "features.npz")
    loaded = FeatureSet.load(tmp_path / "features.npz")
    assert torch.equal(loaded.bank, features.bank) and torch.equal(loaded.test_labels, features.test_labels)
    knn, probe = evaluate_features(loaded)
    assert knn == pytest.approx(command_top1, abs=1e-6)
    assert 0.0 <= probe <= 1.0 and loaded.bank.shape == (300, 512) and loaded.test.shape == (100, 512)


def test_the_bank_is_the_first_files_of_each_class_and_the_test_split_whole(cifar_small: Path, tmp_path: Path) -> None:
    folder = prepare_eval_data(cifar_small, tmp_path, bank_size=25)
    counts = {path.name: len(list(path.iterdir())) for path in (folder / "train").iterdir()}
    assert sum(counts.values()) == 25 and sorted(counts.values()) == [2] * 5 + [3] * 5
    airplanes = sorted(path.name for path in (folder / "train" / "airplane").iterdir())
    assert airplanes == sorted(path.name for path in (cifar_small / "train" / "airplane").iterdir())[:3]
    assert len(list((folder / "test").glob("*/*"))) == len(list((cifar_small / "test").glob("*/*")))


def test_budgets_and_recipes_read_as_documented() -> None:
    assert [parse_budget(text) for text in ("90s", "10m", "2h", "1h30m", "45", "0.5m")] == [90, 600, 7200, 5400, 45, 30]
    for bad in ("", "10x", "m", "1d"):
        with pytest.raises(Exception, match="90s, 10m, 2h, 1h30m"):
            parse_budget(bad)
    assert recipe_flags("lightly-cifar10-resnet18-200ep") == ["--config", "lightly-cifar10-resnet18-200ep"]
    assert recipe_flags("--lr 0.5 --optimizer 'sgd'") == ["--lr", "0.5", "--optimizer", "sgd"]
    assert recipe_flags("  ") == []


def _report(knn: float = 0.5) -> list[str]:
    rows = [
        Row("lightly", 40.0, 6_400, 0.30, 0.35),
        Row("simclr-default", 100.0, 16_000, knn, 0.45),
        Row("simclr-budget", math.nan, 128, 0.29, 0.34),  # one step: no pace measured
        Row("random", None, None, 0.28, 0.33),
    ]
    context = dict(date="2026-12-08", machine="a CPU", command="python x", commit="abc", budget="30 s", bank="1,000")
    context |= dict(budget_recipe="", simclr_budget="emulated")
    return format_report(rows, context)


def test_the_table_has_every_row_and_the_pace_ratio() -> None:
    text = "\n".join(_report())
    assert "| lightly | 40.0 | 6,400 | 30.0% | 35.0% |" in text
    assert "| simclr-default | 100.0 | 16,000 | 50.0% | 45.0% |" in text
    assert "| random | - | - (untrained) | 28.0% | 33.0% |" in text
    assert "| simclr-budget | - | 128 | 29.0% | 34.0% |" in text
    assert "pace, simclr / lightly: simclr-default **2.50**." in text
    assert "k=200, T=0.1" in text and "first 1,000 training images" in text and "(the default recipe" in text


def test_recording_replaces_the_section_and_keeps_the_others(tmp_path: Path) -> None:
    record = tmp_path / "BENCHMARKS.md"
    record.write_text("# Benchmarks\n\n### Throughput, old\n\nkept above\n\n## Representation quality\n\nkept below\n")
    emit_report(_report(knn=0.5), record, replace=SECTION)
    emit_report(_report(knn=0.75), record, replace=SECTION)
    text = record.read_text()
    assert text.count(SECTION) == 1 and "75.0%" in text and "| 50.0%" not in text
    assert "kept above" in text and "kept below" in text
    # a section in the middle is replaced in place: what follows it stays after it
    record.write_text(f"# Benchmarks\n\n{SECTION} (issue 30), old\n\nold table\n\n### Next\n\nkept\n")
    emit_report(_report(), record, replace=SECTION)
    text = record.read_text()
    assert "old table" not in text and text.index(SECTION) < text.index("### Next") and text.endswith("kept\n")
