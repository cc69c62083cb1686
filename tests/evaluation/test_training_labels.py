"""Label subsets: stratified, exact in size, seeded, and strict about their arguments."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from simclr.errors import UserError
from simclr.evaluation.classifiers.training_labels import label_subset, label_subset_protocol, split_labelled


def _labels(counts: list[int], seed: int = 0) -> torch.Tensor:
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    return labels[torch.randperm(labels.numel(), generator=torch.Generator().manual_seed(seed))]


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(1, 40), min_size=2, max_size=6),
    fraction=st.floats(0.01, 1.0),
    seed=st.integers(0, 2**31),
)
def test_fraction_keeps_each_class_share(counts: list[int], fraction: float, seed: int) -> None:
    labels = _labels(counts, seed)
    chosen = label_subset(labels, fraction=fraction, seed=seed)
    assert torch.equal(chosen, torch.sort(chosen).values)
    assert chosen.unique().numel() == chosen.numel()
    assert chosen.numel() == max(1, round(fraction * labels.numel()))
    kept = torch.bincount(labels[chosen], minlength=len(counts))
    for cls, count in enumerate(counts):
        assert abs(int(kept[cls]) - fraction * count) < 1.0 + 1e-9  # largest-remainder rounding


def test_fraction_one_keeps_everything() -> None:
    labels = _labels([5, 7, 3])
    assert torch.equal(label_subset(labels, fraction=1.0, seed=3), torch.arange(15))


def test_per_class_takes_n_of_each_class_or_the_whole_class() -> None:
    labels = _labels([10, 3, 8])
    chosen = label_subset(labels, per_class=5, seed=1)
    assert torch.bincount(labels[chosen]).tolist() == [5, 3, 5]
    assert chosen.unique().numel() == chosen.numel() == 13


@pytest.mark.parametrize("kwargs", [{"fraction": 0.3}, {"per_class": 4}])
def test_reproducible_by_seed_and_different_across_seeds(kwargs: dict[str, float]) -> None:
    labels = _labels([40, 40, 40])
    first = label_subset(labels, seed=7, **kwargs)  # type: ignore[arg-type]
    assert torch.equal(first, label_subset(labels, seed=7, **kwargs))  # type: ignore[arg-type]
    assert not torch.equal(first, label_subset(labels, seed=8, **kwargs))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({}, "exactly one"),
        ({"fraction": 0.5, "per_class": 3}, "exactly one"),
        ({"fraction": 0.0}, "(0, 1]"),
        ({"fraction": 1.5}, "(0, 1]"),
        ({"fraction": float("nan")}, "(0, 1]"),
        ({"per_class": 0}, ">= 1"),
    ],
)
def test_bad_arguments_are_user_errors(kwargs: dict[str, float], needle: str) -> None:
    with pytest.raises(UserError) as info:
        label_subset(_labels([4, 4]), seed=0, **kwargs)  # type: ignore[arg-type]
    assert needle in str(info.value)


def test_unlabelled_images_are_rejected() -> None:
    with pytest.raises(UserError, match="no label"):
        label_subset(torch.tensor([0, 1, -1, 1]), fraction=0.5, seed=0)


def test_validation_split_is_carved_from_the_subset_and_disjoint_from_fit() -> None:
    labels = _labels([30, 20, 10])
    split = split_labelled(labels, fraction=0.5, val_fraction=0.2, seed=4)
    assert torch.equal(split.labelled, label_subset(labels, fraction=0.5, seed=4))
    fit, val = set(split.fit.tolist()), set(split.val.tolist())
    assert not fit & val
    assert fit | val == set(split.labelled.tolist())
    assert len(val) == round(0.2 * 30)
    assert torch.bincount(labels[split.val], minlength=3).tolist() == [3, 2, 1]  # stratified too
    no_val = split_labelled(labels, per_class=4, val_fraction=0.0, seed=4)
    assert no_val.val.numel() == 0 and torch.equal(no_val.fit, no_val.labelled)
    with pytest.raises(UserError, match="val-fraction"):
        split_labelled(labels, val_fraction=1.0, seed=0)


def test_protocol_fields() -> None:
    assert label_subset_protocol(None, None) == {
        "label_fraction": 1.0,
        "labels_per_class": None,
        "label_subset": "all labels",
    }
    assert label_subset_protocol(None, 650)["label_subset"] == "650 labels per class (stratified)"
    assert label_subset_protocol(0.3, None)["label_subset"] == "30% of the labels (stratified)"
