"""Frozen features kept on disk, so linear-eval, kNN, the plots and the report compute them once.

A file per split and key: the key holds everything the features depend on (the backbone's SHA-256, the dataset,
the split's size and subset, the augmentation), so retrained weights or another subset never reuse stale
features. Files are written atomically and read memory-mapped: the features of a big split are paged in as a fit
reads them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from simclr.atomic import atomic_write


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
        """The cached features of ``split`` under ``key``, else ``compute()``'s, kept for the next time."""
        path = self.path(split, key)
        if self.enabled and path.is_file():
            # memory-mapped: the features of a big split are paged in as a fit reads them
            cached = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            return SplitFeatures(cached["features"], cached["labels"], cached.get("factors"))
        result = compute()
        if self.enabled:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_write(path) as tmp:
                torch.save({"features": result.features, "labels": result.labels, "factors": result.factors}, tmp)
        return result
