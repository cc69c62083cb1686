"""Frozen features kept on disk, so linear-eval, kNN, the plots and the report compute them once.

A file per split and key: the key holds everything the features depend on (the backbone's SHA-256, the dataset,
the split's size and subset, the augmentation), so retrained weights or another subset never reuse stale
features. Files are written atomically and read memory-mapped: the features of a big split are paged in as a fit
reads them.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from simclr.atomic import atomic_write
from simclr.disk_full import DiskFull

log = logging.getLogger("simclr")


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
            # memory-mapped: the features of a big split are paged in as a fit reads them
            cached = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            return SplitFeatures(cached["features"], cached["labels"], cached.get("factors"))
        result = compute()
        if self.enabled:
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                with atomic_write(path, what="feature cache") as tmp:
                    torch.save({"features": result.features, "labels": result.labels, "factors": result.factors}, tmp)
            except DiskFull as exc:  # a cache is a saving, not a result: the evaluation goes on without it
                log.warning("the feature cache was not kept: %s", exc)
        return result
