"""Classification metrics against scikit-learn's definitions; metrics.json layout and atomic updates."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix, f1_score, top_k_accuracy_score

from simclr.errors import UserError
from simclr.evaluation.metrics import classification_metrics
from simclr.evaluation.results import make_entry, read_metrics, record_result, validate_metrics


def test_classification_metrics_match_sklearn() -> None:
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 8, (300,), generator=gen)
    scores = torch.randn(300, 8, generator=gen) + 2.0 * torch.nn.functional.one_hot(labels, 8)
    scores[labels == 3] = torch.randn(int((labels == 3).sum()), 8, generator=gen)  # one hard class
    metrics = classification_metrics(scores, labels, [f"c{i}" for i in range(8)])
    pred = scores.argmax(1).numpy()
    y = labels.numpy()
    assert metrics["top1"] == pytest.approx((pred == y).mean())
    assert metrics["top5"] == pytest.approx(top_k_accuracy_score(y, scores.numpy(), k=5))
    assert metrics["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert metrics["weighted_f1"] == pytest.approx(f1_score(y, pred, average="weighted"))
    assert np.array_equal(np.array(metrics["confusion_matrix"]), confusion_matrix(y, pred, labels=range(8)))
    per_class = confusion_matrix(y, pred).diagonal() / np.bincount(y)
    assert [metrics["per_class_accuracy"][f"c{i}"] for i in range(8)] == pytest.approx(per_class.tolist())


def test_absent_class_has_no_accuracy_and_no_top5_for_few_classes() -> None:
    labels = torch.tensor([0, 0, 1, 1])
    scores = torch.tensor([[2.0, 0, 0], [2.0, 0, 0], [0, 2.0, 0], [2.0, 0, 0]])
    metrics = classification_metrics(scores, labels, ["a", "b", "c"])
    assert metrics["per_class_accuracy"] == {"a": 1.0, "b": 0.5, "c": None}
    assert "top5" not in metrics
    assert metrics["macro_f1"] == pytest.approx(f1_score([0, 0, 1, 1], [0, 0, 1, 0], average="macro"))


def _record(eval_dir: Path, key: str, top1: float) -> Path:
    entry = make_entry(
        key, {"backbone_sha256": "abc", "seed": 0, "n_train": 10}, {"top1": top1, "nan": float("nan")}, 1.0
    )
    return record_result(
        eval_dir, key, entry, run_dir=eval_dir.parent, dataset={"name": "cifar10"}, backbone={"sha256": "abc"}
    )


def test_record_result_merges_and_writes_valid_json(tmp_path: Path) -> None:
    eval_dir = tmp_path / "eval"
    _record(eval_dir, "linear", 0.5)
    _record(eval_dir, "knn", 0.4)
    path = _record(eval_dir, "linear", 0.6)
    doc = json.loads(path.read_text())  # strict JSON: NaN became null
    validate_metrics(doc)
    assert doc["results"]["linear"]["metrics"]["top1"] == 0.6
    assert doc["results"]["knn"]["metrics"]["top1"] == 0.4
    assert doc["results"]["linear"]["metrics"]["nan"] is None
    assert not list(eval_dir.glob(".*.tmp"))


def test_protocol_must_name_weights_and_seed() -> None:
    with pytest.raises(ValueError, match="backbone_sha256"):
        make_entry("linear", {"seed": 0}, {}, 0.0)


@pytest.mark.parametrize(
    "content, problem",
    [
        ("{not json", "not valid JSON"),
        ('{"schema_version": 99, "dataset": {}, "backbone": {}, "results": {}}', "schema_version"),
        (
            '{"schema_version": 1, "dataset": {}, "backbone": {}, "results": {"linear": {"method": "linear"}}}',
            "has no 'protocol'",
        ),
    ],
)
def test_bad_metrics_file_is_a_clear_error(tmp_path: Path, content: str, problem: str) -> None:
    (tmp_path / "metrics.json").write_text(content)
    with pytest.raises(UserError, match=problem):
        read_metrics(tmp_path)
