"""stratified_subset and split_train_val."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from simclr.data.sampling import class_quotas, split_train_val, stratified_subset
from simclr.errors import UserError


def _labels(counts: list[int]) -> torch.Tensor:
    labels = torch.cat([torch.full((c,), k, dtype=torch.int64) for k, c in enumerate(counts)])
    return labels[torch.randperm(labels.numel(), generator=torch.Generator().manual_seed(0))]


def test_exact_size_and_proportions() -> None:
    labels = _labels([600, 300, 100])
    idx = stratified_subset(labels, 100, seed=0)
    assert idx.numel() == 100
    assert torch.bincount(labels[idx]).tolist() == [60, 30, 10]
    assert torch.equal(idx, torch.sort(idx).values) and idx.unique().numel() == 100


def test_largest_remainder_rounding() -> None:
    labels = _labels([600, 300, 100])
    # Exact quotas 4.2, 2.1, 0.7: floors 4, 2, 0 and the missing one goes to the largest remainder.
    picked = labels[stratified_subset(labels, 7, 1)]
    assert torch.bincount(picked, minlength=3).tolist() == [4, 2, 1]
    assert class_quotas(torch.tensor([1, 1, 1]), 2).tolist() == [1, 1, 0]


def test_reproducible_and_seed_dependent() -> None:
    labels = _labels([50, 50, 50, 50])
    a = stratified_subset(labels, 40, seed=7)
    b = stratified_subset(labels, 40, seed=7)
    c = stratified_subset(labels, 40, seed=8)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.bincount(labels[c]).tolist() == [10] * 4


def test_unlabeled_is_plain_random_subset() -> None:
    labels = torch.full((1000,), -1, dtype=torch.int64)
    a = stratified_subset(labels, 100, seed=0)
    assert a.numel() == 100 and a.unique().numel() == 100
    assert not torch.equal(a, torch.arange(100))  # random, not a prefix
    assert torch.equal(a, stratified_subset(labels, 100, seed=0))


def test_n_at_least_len_returns_all() -> None:
    labels = _labels([3, 2])
    assert torch.equal(stratified_subset(labels, 5, 0), torch.arange(5))
    assert torch.equal(stratified_subset(labels, 50, 0), torch.arange(5))
    assert stratified_subset(labels, 0, 0).numel() == 0
    with pytest.raises(UserError):
        stratified_subset(labels, -1, 0)


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(0, 40), min_size=1, max_size=8).filter(lambda c: sum(c) > 0),
    frac=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**31),
)
def test_quota_properties(counts: list[int], frac: float, seed: int) -> None:
    labels = _labels(counts)
    n = int(round(frac * labels.numel()))
    idx = stratified_subset(labels, n, seed)
    assert idx.numel() == n
    got = torch.bincount(labels[idx], minlength=len(counts)).tolist()
    total = sum(counts)
    for c, g in zip(counts, got, strict=True):
        assert g <= c
        assert abs(g - c * n / total) < 1.0


def test_split_train_val_disjoint_stratified_and_complete() -> None:
    labels = _labels([200, 100, 100])
    train, val = split_train_val(labels, 0.25, seed=3)
    assert val.numel() == 100 and train.numel() == 300
    assert set(train.tolist()).isdisjoint(val.tolist())
    assert sorted(train.tolist() + val.tolist()) == list(range(400))
    assert torch.bincount(labels[val]).tolist() == [50, 25, 25]
    t2, v2 = split_train_val(labels, 0.25, seed=3)
    assert torch.equal(train, t2) and torch.equal(val, v2)
    with pytest.raises(UserError):
        split_train_val(labels, 1.5, seed=0)
    with pytest.raises(UserError):
        split_train_val(labels[:1], 0.5, seed=0)
