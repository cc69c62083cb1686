"""Classification and regression metrics computed from scores; the classification ones by torchmetrics.

The PyTorch SimCLR fork for firefighting-device schematics reports top-1/top-5, SimCLR-AE (Schliebitz et
al. 2024) macro F1, the CIFAR-10 ResNet-18 study weighted F1 and a confusion matrix (sources:
docs/SOURCES.md); here every classifier reports all of them, on the test split, as plain JSON-ready numbers.

torchmetrics' functional API computes them on the device the scores are on. Where a class is missing, each
metric follows its definition (and scikit-learn, which the tests compare against):

- a macro mean over precision, recall or F1 runs over the classes that occur in the labels or the
  predictions; a class that occurs in neither has no defined value and is left out, and a class predicted but
  never present has precision 0 and F1 0 (its false positives count), recall 0;
- macro (balanced) accuracy is the mean recall over the classes present in the labels only: a class that is
  never present has no recall to average (torchmetrics' ``multiclass_accuracy(average="macro")`` would count
  a predicted-but-absent class as 0, so it is not used here);
- one-vs-rest AUROC is defined only for a class with both positives and negatives in the labels; the others
  are left out of the mean (torchmetrics' macro AUROC would count a class with no positives as 0), and it is
  None when no class has a curve (a single class in the labels). Tied scores count half (the Mann-Whitney
  statistic, which the exact ROC curve's trapezoids compute).

The numbers come back as float32; each is written as the shortest decimal that reads back as the same
float32 (0.6, not 0.6000000238418579).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchmetrics.functional.classification import (
    binary_auroc,
    multiclass_accuracy,
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
)


def _number(value: Tensor | float) -> float:
    """A float32 metric as the shortest decimal that reads back as the same float32 (0.6, not 0.60000002384)."""
    return float(str(np.float32(float(value))))


def auroc_one_vs_rest(probabilities: Tensor, labels: Tensor) -> float | None:
    """Mean over classes of the area under the ROC curve of "this class vs the rest", each from its probability
    column (ties count half). A class with no positives or no negatives in ``labels`` has no curve and is left
    out of the mean; None when no class has one."""
    positives = torch.bincount(labels, minlength=probabilities.shape[1]).tolist()
    areas = [
        binary_auroc(probabilities[:, c], (labels == c).long(), validate_args=False)
        for c, count in enumerate(positives)
        if 0 < count < labels.numel()
    ]
    return _number(torch.stack(areas).mean()) if areas else None


def classification_metrics(
    scores: Tensor,
    labels: Tensor,
    class_names: Sequence[str] | None = None,
    probabilities: Tensor | None = None,
) -> dict[str, Any]:
    """Top-1, top-5, macro and weighted F1, macro and micro precision and recall, macro (balanced) accuracy,
    one-vs-rest AUROC, per-class accuracy and the confusion matrix.

    ``scores`` is ``(N, C)`` with ``C >= 2`` (logits, probabilities or kNN votes: only the ranking matters,
    except for AUROC, which reads ``probabilities``: by default the softmax of ``scores``, as for logits).
    Accuracies are fractions in [0, 1]. Top-5 is reported only with more than 5 classes. A class absent from
    ``labels`` has no per-class accuracy (None); the module docstring says how each mean treats it.
    """
    num_classes = scores.shape[1]
    scores = scores.float()
    labels = labels.long().to(scores.device)
    predictions = scores.argmax(1)
    matrix = multiclass_confusion_matrix(predictions, labels, num_classes)
    present = matrix.sum(1) > 0
    per_class = multiclass_recall(predictions, labels, num_classes, average="none")  # a class's accuracy
    names = list(class_names) if class_names else [str(i) for i in range(num_classes)]

    def averaged(metric: Callable[..., Tensor], average: str) -> float:
        return _number(metric(predictions, labels, num_classes, average=average))

    result: dict[str, Any] = {
        "top1": averaged(multiclass_accuracy, "micro"),
        "macro_f1": averaged(multiclass_f1_score, "macro"),
        "weighted_f1": averaged(multiclass_f1_score, "weighted"),
        "macro_precision": averaged(multiclass_precision, "macro"),
        "macro_recall": averaged(multiclass_recall, "macro"),
        "micro_precision": averaged(multiclass_precision, "micro"),
        "micro_recall": averaged(multiclass_recall, "micro"),
        "macro_accuracy": _number(per_class[present].mean()) if bool(present.any()) else 0.0,
        "auroc_ovr": auroc_one_vs_rest(
            probabilities.float().to(scores.device) if probabilities is not None else scores.softmax(1), labels
        ),
        "per_class_accuracy": {
            names[i]: (_number(accuracy) if seen else None)
            for i, (accuracy, seen) in enumerate(zip(per_class.tolist(), present.tolist(), strict=True))
        },
        "confusion_matrix": matrix.tolist(),
        "class_names": names,
        "n_test": int(labels.numel()),
    }
    if num_classes > 5:
        result["top5"] = _number(multiclass_accuracy(scores, labels, num_classes, average="micro", top_k=5))
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
