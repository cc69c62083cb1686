"""Frozen features kept on disk, so linear-eval, kNN, the plots and the report compute them once.

A file per split and key: the key holds everything the features depend on (the backbone's SHA-256, the dataset,
the split's size and subset, the augmentation), so retrained weights or another subset never reuse stale
features. Files are written atomically and read memory-mapped: the features of a big split are paged in as a fit
reads them.

A cache file is read weights-only (tensors and plain containers: a pickled payload never runs) and checked: a
file that is truncated, not torch's, holds other objects, or whose tensors do not fit together (features one
row per label, the same rows of factors) is damaged; it is deleted, said in one warning line, and the features
are computed again. A cache is the project's own file: damage means recompute, never a crash nor a wrong result.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from simclr.atomic import atomic_write
from simclr.disk_full import DiskFull

log = logging.getLogger("simclr")

# what torch.load raises on a file that is not a (whole) torch file of tensors: truncated zip, a pickle of other
# objects (refused by the weights-only unpickler), bytes of anything else
_UNREADABLE = (pickle.UnpicklingError, RuntimeError, OSError, EOFError, ValueError, AttributeError, TypeError)


@dataclass
class SplitFeatures:
    """Frozen features of one split with their targets: class labels (``labels``) or, for Spirograph,
    the generative factors (``factors``)."""

    features: Tensor
    labels: Tensor
    factors: Tensor | None


class FeatureCache:
    """The features files of one evaluation folder; with ``enabled`` False (``--no-cache``) every lookup
    computes afresh and nothing is written."""

    def __init__(self, folder: Path, *, enabled: bool) -> None:
        self.folder = folder
        self.enabled = enabled

    def path(self, split: str, key: Mapping[str, Any]) -> Path:
        """``FOLDER/<split>-<digest>.pt``: the digest is the SHA-256 of ``key`` as sorted JSON."""
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        return self.folder / f"{split}-{digest}.pt"

    def get(self, split: str, key: Mapping[str, Any], compute: Callable[[], SplitFeatures]) -> SplitFeatures:
        """The cached features of ``split`` under ``key``, else ``compute()``'s, kept for the next time. When
        the disk has no room for them, one line of warning says so and the features are returned uncached:
        the evaluation goes on (its results are small, and their own writer reports a disk with no room)."""
        path = self.path(split, key)
        if self.enabled and path.is_file():
            cached = _read_cached(path)
            if cached is not None:
                return cached
        result = compute()
        if self.enabled:
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                with atomic_write(path, what="feature cache") as tmp:
                    torch.save({"features": result.features, "labels": result.labels, "factors": result.factors}, tmp)
            except DiskFull as exc:  # a cache is a saving, not a result: the evaluation goes on without it
                log.warning("the feature cache was not kept: %s", exc)
        return result


def _read_cached(path: Path) -> SplitFeatures | None:
    """The features kept in ``path``; None, with the file deleted and a warning line, when it is damaged."""
    try:
        # memory-mapped: the features of a big split are paged in as a fit reads them
        cached = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        problem = _problem(cached)
    except _UNREADABLE as exc:
        problem = " ".join(str(exc).split())[:120] or type(exc).__name__
        if isinstance(exc, pickle.UnpicklingError):  # torch wraps the unpickler's error in a page of advice
            problem = f"not a file of tensors: {' '.join(str(exc.__context__ or exc).split())[:120]}"
    if problem is None:
        return SplitFeatures(cached["features"], cached["labels"], cached.get("factors"))
    log.warning("feature cache %s is damaged (%s): deleted, computing the features again", path, problem)
    path.unlink(missing_ok=True)
    return None


def _problem(cached: object) -> str | None:
    """What is wrong with a loaded cache file, or None when it holds features as :meth:`FeatureCache.get` wrote
    them: a 2-D features tensor, a 1-D labels tensor of one label per row, factors absent or one row per row."""
    if not isinstance(cached, dict) or not {"features", "labels"} <= cached.keys():
        return "not a dict of features and labels"
    features, labels, factors = cached["features"], cached["labels"], cached.get("factors")
    if not isinstance(features, Tensor) or features.dim() != 2 or not features.is_floating_point():
        return "its features are not a 2-D tensor of floats"
    if not isinstance(labels, Tensor) or labels.shape != (features.shape[0],):
        return f"its labels are not one per row of its {features.shape[0]} features"
    if factors is not None and (not isinstance(factors, Tensor) or factors.shape[:1] != features.shape[:1]):
        return f"its factors are not one row per row of its {features.shape[0]} features"
    return None
