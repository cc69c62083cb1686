"""A damaged feature cache (truncated, a pickle with a payload, tensors that do not fit together) is ignored,
deleted and computed again with one warning line; a payload in it never runs."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import pytest
import torch

from simclr.evaluation.feature_cache import FeatureCache, SplitFeatures

KEY = {"backbone": "0" * 64, "dataset": "cifar10", "size": 8}


class Payload:
    """Unpickled by a full unpickler, it creates ``marker``: what a crafted cache file would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (Path.touch, (self.marker,))


def fresh() -> SplitFeatures:
    return SplitFeatures(torch.arange(12.0).reshape(4, 3), torch.tensor([0, 1, 0, 1]), None)


def get_counting(cache: FeatureCache) -> tuple[SplitFeatures, int]:
    calls = []

    def compute() -> SplitFeatures:
        calls.append(1)
        return fresh()

    return cache.get("train", KEY, compute), len(calls)


@pytest.fixture
def cache(tmp_path: Path) -> FeatureCache:
    cache = FeatureCache(tmp_path / "features", enabled=True)
    _, computed = get_counting(cache)
    assert computed == 1 and cache.path("train", KEY).is_file()
    return cache


def assert_recomputed(cache: FeatureCache, caplog: pytest.LogCaptureFixture, reason: str) -> None:
    with caplog.at_level(logging.WARNING, logger="simclr"):
        result, computed = get_counting(cache)
    assert computed == 1
    torch.testing.assert_close(result.features, fresh().features)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert f"feature cache {cache.path('train', KEY)} is damaged" in warnings[0] and reason in warnings[0]
    assert "computing the features again" in warnings[0]
    # written again, whole: the next lookup reads it without computing
    caplog.clear()
    again, computed = get_counting(cache)
    assert computed == 0 and not caplog.records
    torch.testing.assert_close(again.features, fresh().features)


def test_a_sound_cache_is_read_without_computing(cache: FeatureCache) -> None:
    result, computed = get_counting(cache)
    assert computed == 0
    torch.testing.assert_close(result.labels, fresh().labels)


def test_a_truncated_cache_is_deleted_and_computed_again(cache: FeatureCache, caplog: pytest.LogCaptureFixture) -> None:
    path = cache.path("train", KEY)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert_recomputed(cache, caplog, "is damaged (")


@pytest.mark.parametrize(("form", "reason"), [("torch.save", "not a file of tensors"), ("pickle.dump", "mmap")])
def test_a_cache_holding_a_pickled_payload_never_runs_it(
    cache: FeatureCache, caplog: pytest.LogCaptureFixture, tmp_path: Path, form: str, reason: str
) -> None:
    marker = tmp_path / "payload-ran"
    path = cache.path("train", KEY)
    payload = {"features": Payload(marker), "labels": torch.zeros(4)}
    if form == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    assert_recomputed(cache, caplog, reason)  # torch's zip of a pickle refused by its unpickler; a bare pickle unread
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ({"features": torch.zeros(4, 3)}, "not a dict of features and labels"),
        ([torch.zeros(4, 3), torch.zeros(4)], "not a dict of features and labels"),
        ({"features": torch.zeros(12), "labels": torch.zeros(12)}, "features are not a 2-D tensor"),
        ({"features": torch.zeros(4, 3, dtype=torch.int64), "labels": torch.zeros(4)}, "not a 2-D tensor of floats"),
        ({"features": torch.zeros(4, 3), "labels": torch.zeros(5)}, "labels are not one per row of its 4"),
        ({"features": torch.zeros(4, 3), "labels": "cats"}, "labels are not one per row"),
        ({"features": torch.zeros(4, 3), "labels": torch.zeros(4), "factors": torch.zeros(3, 2)}, "factors are not"),
    ],
)
def test_a_cache_of_wrong_keys_or_shapes_is_deleted_and_computed_again(
    cache: FeatureCache, caplog: pytest.LogCaptureFixture, content: object, reason: str
) -> None:
    torch.save(content, cache.path("train", KEY))
    assert_recomputed(cache, caplog, reason)
