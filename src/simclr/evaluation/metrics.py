"""Classification and regression metrics computed from scores, with no library in between.

The PyTorch SimCLR fork for firefighting-device schematics reports top-1/top-5, SimCLR-AE (Schliebitz et
al. 2024) macro F1, the CIFAR-10 ResNet-18 study weighted F1 and a confusion matrix (sources:
docs/SOURCES.md); here every classifier reports all of them, on the test split, as plain JSON-ready numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor


def confusion_matrix(predictions: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """``(C, C)`` counts; row = true class, column = predicted class."""
    index = labels.long() * num_classes + predictions.long()
    return torch.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def f1_scores(matrix: Tensor) -> Tensor:
    """Per-class F1 from a confusion matrix; a class never predicted and never present scores 0."""
    matrix = matrix.double()
    tp = matrix.diag()
    precision_den = matrix.sum(0)
    recall_den = matrix.sum(1)
    denom = precision_den + recall_den
    return torch.where(denom > 0, 2 * tp / denom.clamp_min(1e-12), torch.zeros_like(tp))


def average_ranks(values: Tensor) -> Tensor:
    """1-based ranks of ``values`` with ties sharing their average rank (``scipy.stats.rankdata``'s default)."""
    _, inverse, counts = torch.unique(values, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()
    return (ends - (counts.double() - 1) / 2)[inverse]


def auroc_one_vs_rest(probabilities: Tensor, labels: Tensor) -> float | None:
    """Mean over classes of the area under the ROC curve of "this class vs the rest", each computed from its
    probability column as the Mann-Whitney statistic (ties count half). Classes absent from ``labels`` (no
    positives) have no curve and are left out of the mean; None when no class has one."""
    areas = []
    for c in range(probabilities.shape[1]):
        positive = labels == c
        n_pos, n_neg = int(positive.sum()), int((~positive).sum())
        if n_pos == 0 or n_neg == 0:
            continue
        ranks = average_ranks(probabilities[:, c].double())
        areas.append((float(ranks[positive].sum()) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
    return sum(areas) / len(areas) if areas else None


def precision_recall(matrix: Tensor) -> dict[str, float]:
    """Macro and micro precision and recall, with scikit-learn's conventions: the macro mean runs over the
    classes that occur in the labels or the predictions, a class never predicted has precision 0 (never
    present: recall 0). With one label per image, micro precision = micro recall = top-1."""
    matrix = matrix.double()
    tp, predicted, actual = matrix.diag(), matrix.sum(0), matrix.sum(1)
    seen = (predicted + actual) > 0
    precision = torch.where(predicted > 0, tp / predicted.clamp_min(1), torch.zeros_like(tp))[seen]
    recall = torch.where(actual > 0, tp / actual.clamp_min(1), torch.zeros_like(tp))[seen]
    total = float(matrix.sum().clamp_min(1))
    return {
        "macro_precision": float(precision.mean()) if seen.any() else 0.0,
        "macro_recall": float(recall.mean()) if seen.any() else 0.0,
        "micro_precision": float(tp.sum()) / total,
        "micro_recall": float(tp.sum()) / total,
    }


def classification_metrics(
    scores: Tensor,
    labels: Tensor,
    class_names: Sequence[str] | None = None,
    probabilities: Tensor | None = None,
) -> dict[str, Any]:
    """Top-1, top-5, macro and weighted F1, macro and micro precision and recall, macro (balanced) accuracy,
    one-vs-rest AUROC, per-class accuracy and the confusion matrix.

    ``scores`` is ``(N, C)`` (logits, probabilities or kNN votes: only the ranking matters, except for
    AUROC, which reads ``probabilities``: by default the softmax of ``scores``, as for logits). Accuracies
    are fractions in [0, 1]. Top-5 is reported only with more than 5 classes. Macro accuracy is the mean
    per-class accuracy over the classes present in ``labels`` (scikit-learn's balanced accuracy).
    """
    num_classes = scores.shape[1]
    labels = labels.long().cpu()
    scores = scores.float().cpu()
    predictions = scores.argmax(1)
    matrix = confusion_matrix(predictions, labels, num_classes)
    support = matrix.sum(1)
    per_class = torch.where(
        support > 0,
        matrix.diag().double() / support.clamp_min(1),
        torch.full_like(support, float("nan"), dtype=torch.double),
    )
    f1 = f1_scores(matrix)
    present = support > 0
    names = list(class_names) if class_names else [str(i) for i in range(num_classes)]
    result: dict[str, Any] = {
        "top1": float((predictions == labels).double().mean()),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "weighted_f1": float((f1 * support).sum() / support.sum().clamp_min(1)),
        **precision_recall(matrix),
        "macro_accuracy": float(per_class[present].mean()) if present.any() else 0.0,
        "auroc_ovr": auroc_one_vs_rest(
            probabilities.float().cpu() if probabilities is not None else scores.softmax(1), labels
        ),
        "per_class_accuracy": {
            names[i]: (None if torch.isnan(per_class[i]) else float(per_class[i])) for i in range(num_classes)
        },
        "confusion_matrix": matrix.tolist(),
        "class_names": names,
        "n_test": int(labels.numel()),
    }
    if num_classes > 5:
        top5 = scores.topk(5, dim=1).indices
        result["top5"] = float((top5 == labels[:, None]).any(1).double().mean())
    return result


def regression_metrics(predictions: Tensor, targets: Tensor, names: Sequence[str]) -> dict[str, Any]:
    """Mean squared error and R^2, in total (averaged over targets, as Foster et al. 2020 report) and per target."""
    predictions = predictions.double().cpu()
    targets = targets.double().cpu()
    mse = ((predictions - targets) ** 2).mean(0)
    variance = targets.var(0, unbiased=False)
    r2 = 1.0 - mse / variance.clamp_min(1e-12)
    return {
        "mse": float(mse.mean()),
        "r2": float(r2.mean()),
        "per_factor": {name: {"mse": float(mse[i]), "r2": float(r2[i])} for i, name in enumerate(names)},
        "n_test": int(targets.shape[0]),
    }
