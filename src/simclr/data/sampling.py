"""Which images: reproducible stratified subsets, train/validation splits and per-class draws of a label vector."""

from __future__ import annotations

import torch

from simclr.errors import UserError

__all__ = ["class_quotas", "labelled_unlabelled", "per_class_subset", "split_train_val", "stratified_subset"]


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed) & 0xFFFF_FFFF_FFFF_FFFF)


def class_quotas(counts: torch.Tensor, n: int) -> torch.Tensor:
    """Split ``n`` over groups proportionally to ``counts`` with largest-remainder rounding.

    The result sums to exactly ``min(n, counts.sum())`` and never exceeds a group's count; ties in
    the remainders go to the earlier group.
    """
    counts = counts.to(torch.int64)
    total = int(counts.sum())
    n = min(int(n), total)
    if n <= 0 or total == 0:
        return torch.zeros_like(counts)
    exact = counts.to(torch.float64) * n / total
    # Integer arithmetic for the floors avoids float rounding at exact multiples.
    base = (counts * n) // total
    remainder = exact - base.to(torch.float64)
    missing = n - int(base.sum())
    if missing > 0:
        # Stable sort: equal remainders keep group order.
        order = torch.sort(-remainder, stable=True).indices
        base[order[:missing]] += 1
    return base


def stratified_subset(labels: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """Sorted indices of an ``n``-element subset with per-class counts proportional to the class
    frequencies (largest-remainder rounding, so the total is exactly ``n``).

    Labels of -1 (unlabeled) form their own group; an all-unlabeled vector gives a plain random
    subset. ``n >= len(labels)`` returns every index. The same ``(labels, n, seed)`` always gives
    the same subset.
    """
    labels = torch.as_tensor(labels).reshape(-1).to(torch.int64)
    total = labels.numel()
    if n < 0:
        raise UserError(f"subset size must be >= 0, got {n}; pass a non-negative --limit")
    if n >= total:
        return torch.arange(total, dtype=torch.int64)
    gen = _generator(seed)
    if n == 0:
        return torch.empty(0, dtype=torch.int64)
    groups, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    if groups.numel() == 1:
        return torch.sort(torch.randperm(total, generator=gen)[:n]).values
    quotas = class_quotas(counts, n)
    order = torch.argsort(inverse, stable=True)  # indices grouped by class, ascending within
    chosen = []
    start = 0
    for count, quota in zip(counts.tolist(), quotas.tolist(), strict=True):
        members = order[start : start + count]
        start += count
        perm = torch.randperm(count, generator=gen)
        if quota:
            chosen.append(members[perm[:quota]])
    return torch.sort(torch.cat(chosen)).values


def split_train_val(labels: torch.Tensor, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Stratified, disjoint ``(train_idx, val_idx)`` (both sorted) covering every index.

    The validation part holds ``round(N * val_fraction)`` indices, at least 1 and at most N - 1.
    """
    labels = torch.as_tensor(labels).reshape(-1).to(torch.int64)
    total = labels.numel()
    if not 0.0 < float(val_fraction) < 1.0:
        raise UserError(
            f"validation fraction must be between 0 and 1 (exclusive), got {val_fraction}; pass e.g. --val-fraction 0.1"
        )
    if total < 2:
        raise UserError(
            f"cannot split {total} image(s) into train and validation; use a dataset with at least 2 images"
        )
    n_val = min(max(1, round(total * float(val_fraction))), total - 1)
    val_idx = stratified_subset(labels, n_val, seed)
    mask = torch.ones(total, dtype=torch.bool)
    mask[val_idx] = False
    train_idx = torch.nonzero(mask).reshape(-1)
    return train_idx, val_idx


def per_class_subset(labels: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    """Sorted indices of ``per_class`` images of every class (the whole class when it is smaller), drawn
    uniformly within each class from ``seed``; labels of -1 count as one more class.

    >>> per_class_subset(torch.tensor([0, 0, 0, 0, 1, 1]), 3, seed=0).numel()
    5
    """
    if isinstance(per_class, bool) or int(per_class) != per_class or per_class < 1:
        raise UserError(f"the number of images per class must be an integer >= 1, got {per_class}")
    labels = torch.as_tensor(labels).reshape(-1).to(torch.int64)
    generator = _generator(seed)
    chosen = []
    for cls in torch.unique(labels).tolist():
        members = torch.nonzero(labels == cls).flatten()
        order = torch.randperm(members.numel(), generator=generator)
        chosen.append(members[order[: int(per_class)]])
    if not chosen:
        return torch.empty(0, dtype=torch.int64)
    return torch.sort(torch.cat(chosen)).values


def labelled_unlabelled(labels: torch.Tensor, per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Disjoint sorted ``(labelled, unlabelled)`` indices covering every image: ``per_class`` labelled images
    of each class (:func:`per_class_subset`), the rest unlabelled (the rittik9/SimCLR notebooks pretrain on
    CIFAR-10's 42,000 unlabelled images and fine-tunes on the 8,000 = 800 per class others)."""
    labelled = per_class_subset(labels, per_class, seed)
    rest = torch.ones(torch.as_tensor(labels).numel(), dtype=torch.bool)
    rest[labelled] = False
    return labelled, torch.nonzero(rest).reshape(-1)
