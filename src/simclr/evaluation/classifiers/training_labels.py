"""Which training labels a classifier trains on: a stratified, seeded label subset (or a subset file's labelled
part), and the part of it held out for validation.

Label-efficiency protocols fine-tune on a part of the labelled training set: SimCLR (Chen et al.
2020, arXiv:2002.05709, sec. 7 / Table 7) on 1% and 10% of ImageNet's labels, SimCLR-Lightning on a
0.3 fraction of CIFAR-10 (sklearn ``StratifiedShuffleSplit(train_size=0.3)``), the CIFAR-10 ResNet-18
study on 6,500 CIFAR-10 images (650 per class when balanced; both sources: docs/SOURCES.md). Either way
every class keeps its share, so a small subset never silently drops a class, and the same seed always
gives the same images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from simclr.data.sampling import per_class_subset, split_train_val, stratified_subset
from simclr.data.subset_file import parse_subset_choice
from simclr.errors import UserError
from simclr.evaluation.options import FinetuneOptions
from simclr.evaluation.session import EvalSession

__all__ = [
    "LabelledSplit",
    "choose_labelled",
    "label_subset",
    "label_subset_protocol",
    "split_for_options",
    "split_labelled",
]


def _check_labels(labels: Tensor) -> Tensor:
    labels = torch.as_tensor(labels).reshape(-1).to(torch.int64)
    if labels.numel() and int(labels.min()) < 0:
        raise UserError(
            "the label subset needs a labelled split, but some images have no label (-1); "
            "use a dataset with class labels"
        )
    return labels


def label_subset(labels: Tensor, *, fraction: float | None = None, per_class: int | None = None, seed: int) -> Tensor:
    """Sorted indices of the labelled images kept for training, stratified by class.

    Give exactly one of:

    * ``fraction`` in (0, 1]: ``round(fraction * N)`` images (at least 1), split over the classes in
      proportion to their sizes with largest-remainder rounding, so each class keeps its share within
      one image (SimCLR-Lightning's ``--train_sample_ratio``); ``1.0`` keeps every image;
    * ``per_class`` >= 1: that many images of every class, or the whole class when it is smaller
      (a balanced budget such as the CIFAR-10 ResNet-18 study's 6,500 images = 650 per CIFAR-10 class).

    Images within a class are drawn uniformly from ``seed``; other seeds give other subsets.

    >>> label_subset(torch.tensor([0, 0, 0, 0, 1, 1]), fraction=0.5, seed=0).numel()
    3
    >>> label_subset(torch.tensor([0, 0, 0, 0, 1, 1]), per_class=3, seed=0).numel()
    5
    """
    if (fraction is None) == (per_class is None):
        raise UserError(
            "give exactly one of --label-fraction and --labels-per-class "
            f"(got fraction={fraction}, per_class={per_class})"
        )
    labels = _check_labels(labels)
    total = labels.numel()
    if fraction is not None:
        if isinstance(fraction, bool) or not (math.isfinite(fraction) and 0.0 < fraction <= 1.0):
            raise UserError(f"--label-fraction must be in (0, 1], got {fraction}; e.g. 0.1 for 10% of the labels")
        if fraction == 1.0:
            return torch.arange(total, dtype=torch.int64)
        return stratified_subset(labels, max(1, round(fraction * total)), seed)
    assert per_class is not None
    if isinstance(per_class, bool) or int(per_class) != per_class or per_class < 1:
        raise UserError(f"--labels-per-class must be an integer >= 1, got {per_class}")
    return per_class_subset(labels, int(per_class), seed)


def label_subset_protocol(fraction: float | None, per_class: int | None) -> dict[str, Any]:
    """The label-subset fields of a result's protocol (neither given means all labels)."""
    if per_class is not None:
        rule = f"{per_class} labels per class (stratified)"
    elif fraction is None or fraction == 1.0:
        rule = "all labels"
    else:
        rule = f"{100 * fraction:g}% of the labels (stratified)"
    return {
        "label_fraction": 1.0 if fraction is None and per_class is None else fraction,
        "labels_per_class": per_class,
        "label_subset": rule,
    }


def choose_labelled(
    labels: Tensor,
    *,
    dataset: str,
    fraction: float | None = None,
    per_class: int | None = None,
    subset: str | None = None,
    seed: int,
) -> tuple[Tensor, dict[str, Any]]:
    """The labelled images a fine-tuning trains on, and the protocol fields that say which: a stratified
    :func:`label_subset` (all labels when nothing is given), or the ``labelled`` part of the subset file
    ``subset`` (``FILE`` or ``FILE:labelled``; its path and SHA-256 are recorded)."""
    if subset is None:
        if fraction is None and per_class is None:
            fraction = 1.0
        chosen = label_subset(labels, fraction=fraction, per_class=per_class, seed=seed)
        return chosen, label_subset_protocol(fraction, per_class)
    choice = parse_subset_choice(subset, default_part="labelled")
    if choice.part != "labelled":
        raise UserError(
            f"--subset {subset}: fine-tuning trains on the file's labelled part; give FILE or FILE:labelled"
        )
    chosen = choice.load(dataset, torch.as_tensor(labels).numel())
    return chosen, {
        "label_fraction": None,
        "labels_per_class": None,
        "label_subset": f"the labelled part of {choice.path} ({chosen.numel()} images)",
        "subset_file": str(choice.path),
        "subset_sha256": choice.sha256(),
    }


@dataclass
class LabelledSplit:
    """Indices into the training split: the labelled subset, and its fit and validation parts."""

    labelled: Tensor
    fit: Tensor
    val: Tensor


def split_labelled(
    labels: Tensor,
    *,
    fraction: float | None = None,
    per_class: int | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    labelled: Tensor | None = None,
) -> LabelledSplit:
    """Keep a stratified label subset (all labels when neither ``fraction`` nor ``per_class`` is
    given; the indices ``labelled`` when given), then hold out a stratified ``val_fraction`` of it for
    model selection (``0``: none).

    The subset is drawn with ``seed`` and the validation part with ``seed + 1``; fit and validation
    are disjoint and together are the labelled subset.
    """
    if labelled is None:
        if fraction is None and per_class is None:
            fraction = 1.0
        labelled = label_subset(labels, fraction=fraction, per_class=per_class, seed=seed)
    if not 0.0 <= val_fraction < 1.0:
        raise UserError(f"--val-fraction must be in [0, 1) (0: no validation split), got {val_fraction}")
    if val_fraction == 0.0:
        return LabelledSplit(labelled, labelled, labelled[:0])
    fit, val = split_train_val(labels[labelled], val_fraction, seed + 1)
    return LabelledSplit(labelled, labelled[fit], labelled[val])


def split_for_options(session: EvalSession, options: FinetuneOptions) -> tuple[LabelledSplit, dict[str, Any]]:
    """The fit / validation split a fine-tuning (or supervised baseline) trains on, from its label options,
    and the protocol fields that name the labels used."""
    labels = session.splits["train"].labels
    labelled, protocol = choose_labelled(
        labels,
        dataset=session.config.dataset,
        fraction=options.label_fraction,
        per_class=options.labels_per_class,
        subset=options.subset,
        seed=options.seed,
    )
    return split_labelled(labels, labelled=labelled, val_fraction=options.val_fraction, seed=options.seed), protocol
