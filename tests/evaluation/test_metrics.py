"""Classification metrics against scikit-learn's definitions; metrics.json layout and atomic updates."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import (
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
    top_k_accuracy_score,
)

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


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_precision_recall_balanced_accuracy_and_auroc_match_sklearn(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 5, (200,), generator=gen)
    scores = torch.randn(200, 5, generator=gen) + 1.5 * torch.nn.functional.one_hot(labels, 5)
    scores[:, 4] -= 3.0  # class 4 is hardly ever predicted: precision's 0/0 convention matters
    scores = (scores * 4).round() / 4  # ties, which AUROC counts half
    metrics = classification_metrics(scores, labels)
    pred, y = scores.argmax(1).numpy(), labels.numpy()
    for average in ("macro", "micro"):
        expected = precision_score(y, pred, average=average, zero_division=0)
        assert metrics[f"{average}_precision"] == pytest.approx(expected)
        assert metrics[f"{average}_recall"] == pytest.approx(recall_score(y, pred, average=average, zero_division=0))
    assert metrics["macro_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    probabilities = scores.softmax(1).double().numpy()
    assert metrics["auroc_ovr"] == pytest.approx(roc_auc_score(y, probabilities, multi_class="ovr", average="macro"))


def test_macro_precision_counts_a_predicted_but_absent_class_as_sklearn_does() -> None:
    labels = torch.tensor([0, 0, 1, 1, 1])
    scores = torch.nn.functional.one_hot(torch.tensor([0, 2, 1, 1, 0]), 3).float()
    metrics = classification_metrics(scores, labels)
    pred = scores.argmax(1).numpy()
    assert metrics["macro_precision"] == pytest.approx(precision_score(labels, pred, average="macro", zero_division=0))
    assert metrics["macro_recall"] == pytest.approx(recall_score(labels, pred, average="macro", zero_division=0))
    assert metrics["macro_accuracy"] == pytest.approx(balanced_accuracy_score(labels, pred))
    # AUROC of the classes that occur (class 2 has no positives), from the given probabilities
    probabilities = torch.tensor([[0.9, 0.1, 0.0], [0.4, 0.5, 0.1], [0.2, 0.7, 0.1], [0.3, 0.6, 0.1], [0.6, 0.3, 0.1]])
    got = classification_metrics(scores, labels, probabilities=probabilities)["auroc_ovr"]
    expected = np.mean([roc_auc_score(labels == c, probabilities[:, c]) for c in (0, 1)])
    assert got == pytest.approx(expected)


def test_absent_class_has_no_accuracy_and_no_top5_for_few_classes() -> None:
    labels = torch.tensor([0, 0, 1, 1])
    scores = torch.tensor([[2.0, 0, 0], [2.0, 0, 0], [0, 2.0, 0], [2.0, 0, 0]])
    metrics = classification_metrics(scores, labels, ["a", "b", "c"])
    assert metrics["per_class_accuracy"] == {"a": 1.0, "b": 0.5, "c": None}
    assert "top5" not in metrics
    assert metrics["macro_f1"] == pytest.approx(f1_score([0, 0, 1, 1], [0, 0, 1, 0], average="macro"))


def test_a_class_predicted_but_never_present_counts_in_f1_but_has_no_recall_to_balance() -> None:
    """By the definitions: F1 = 2TP / (2TP + FP + FN) is defined (0) for a class with false positives only, so
    it enters the macro mean (as in scikit-learn); balanced accuracy averages recall, which such a class does
    not have (torchmetrics' macro accuracy would count it as 0)."""
    labels = torch.tensor([0, 0, 1, 1, 1])
    scores = torch.nn.functional.one_hot(torch.tensor([0, 2, 1, 1, 0]), 3).float()
    metrics = classification_metrics(scores, labels)
    f1 = {0: 2 / 4, 1: 4 / 5, 2: 0.0}  # class 0: TP 1, FP 1, FN 1; class 1: TP 2, FN 1; class 2: FP 1
    assert metrics["macro_f1"] == pytest.approx(sum(f1.values()) / 3)
    assert metrics["weighted_f1"] == pytest.approx((2 * f1[0] + 3 * f1[1]) / 5)
    assert metrics["macro_accuracy"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert metrics["per_class_accuracy"] == {"0": 0.5, "1": pytest.approx(2 / 3), "2": None}


def test_a_class_never_present_nor_predicted_changes_no_mean() -> None:
    gen = torch.Generator().manual_seed(3)
    labels = torch.randint(0, 4, (60,), generator=gen)
    scores = torch.randn(60, 4, generator=gen) + torch.nn.functional.one_hot(labels, 4)
    unseen_class = torch.full((60, 1), -1e4)  # never the argmax, and its softmax is exactly 0
    seen_only = classification_metrics(scores, labels)
    with_unseen = classification_metrics(torch.cat([scores, unseen_class], 1), labels)
    for key in ("top1", "macro_f1", "weighted_f1", "macro_precision", "macro_recall", "macro_accuracy", "auroc_ovr"):
        assert with_unseen[key] == pytest.approx(seen_only[key]), key
    assert with_unseen["per_class_accuracy"]["4"] is None


def test_auroc_counts_tied_scores_half() -> None:
    labels = torch.tensor([0, 0, 1, 1])
    p1 = torch.tensor([0.2, 0.5, 0.5, 0.9])
    probabilities = torch.stack([1 - p1, p1], 1)
    # Mann-Whitney for class 1: 0.5 beats 0.2 (1), ties 0.5 (1/2), 0.9 beats both (2): 3.5 of 4 pairs; the
    # column of class 0 is the mirror image, with the same count
    got = classification_metrics(probabilities, labels, probabilities=probabilities)["auroc_ovr"]
    assert got == pytest.approx(3.5 / 4)
    same = torch.full((4, 2), 0.5)  # every score tied: no better than chance
    assert classification_metrics(same, labels, probabilities=same)["auroc_ovr"] == pytest.approx(0.5)


def test_a_single_class_in_the_labels_has_no_auroc() -> None:
    labels = torch.tensor([1, 1, 1, 1])
    scores = torch.nn.functional.one_hot(torch.tensor([1, 1, 0, 1]), 3).float()
    metrics = classification_metrics(scores, labels)
    assert metrics["auroc_ovr"] is None  # no class has both positives and negatives
    assert metrics["top1"] == 0.75 and metrics["macro_accuracy"] == 0.75
    assert metrics["macro_f1"] == pytest.approx(f1_score(labels, scores.argmax(1), average="macro"))
    assert metrics["per_class_accuracy"] == {"0": None, "1": 0.75, "2": None}


def test_numbers_read_as_the_fractions_they_are() -> None:
    """torchmetrics computes in float32; metrics.json gets 0.6, not 0.6000000238418579."""
    labels = torch.tensor([0, 1, 0, 1, 0])
    scores = torch.nn.functional.one_hot(torch.tensor([0, 1, 1, 0, 0]), 2).float()
    metrics = classification_metrics(scores, labels)
    assert json.dumps(metrics["top1"]) == "0.6"
    assert metrics["per_class_accuracy"] == {"0": json.loads("0.6666667"), "1": 0.5}


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
    assert not list(eval_dir.glob(".*.tmp*"))


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
