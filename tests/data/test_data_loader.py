"""InMemoryBatchLoader: epoch permutations, rank sharding, resumption."""

from __future__ import annotations

import pytest
import torch

from simclr.data.loader import InMemoryBatchLoader, epoch_permutation
from simclr.data.store import ImageStore
from simclr.errors import UserError


def _store(n: int = 103, factors: bool = False) -> ImageStore:
    # Every image encodes its own index in pixel (0, 0, 0) and (0, 0, 1) so gathers can be checked.
    images = torch.zeros((n, 3, 4, 4), dtype=torch.uint8)
    images[:, 0, 0, 0] = torch.arange(n) % 256
    images[:, 0, 0, 1] = torch.arange(n) // 256
    return ImageStore(
        images=images,
        labels=torch.arange(n) % 7,
        class_names=[str(i) for i in range(7)],
        factors=torch.arange(n, dtype=torch.float32)[:, None].repeat(1, 4) if factors else None,
    )


def _indices(loader: InMemoryBatchLoader) -> list[list[int]]:
    return [b["index"].tolist() for b in loader]


def test_batches_are_consistent_gathers() -> None:
    store = _store(factors=True)
    loader = InMemoryBatchLoader(store, batch_size=10, seed=0)
    for batch in loader:
        idx = batch["index"]
        assert batch["images"].dtype == torch.uint8 and batch["images"].shape == (10, 3, 4, 4)
        assert batch["labels"].dtype == torch.int64 and batch["index"].dtype == torch.int64
        decoded = batch["images"][:, 0, 0, 0].long() + 256 * batch["images"][:, 0, 0, 1].long()
        assert torch.equal(decoded, idx)
        assert torch.equal(batch["labels"], idx % 7)
        assert torch.equal(batch["factors"][:, 0], idx.float())
    assert "factors" not in next(iter(InMemoryBatchLoader(_store(), 10, seed=0)))


def test_epoch_covers_every_index_once_without_drop_last() -> None:
    loader = InMemoryBatchLoader(_store(103), batch_size=10, seed=1, drop_last=False)
    assert len(loader) == 11
    loader.set_position(4)
    batches = _indices(loader)
    assert [len(b) for b in batches] == [10] * 10 + [3]
    assert sorted(i for b in batches for i in b) == list(range(103))


def test_drop_last_and_shuffle_off() -> None:
    loader = InMemoryBatchLoader(_store(103), batch_size=10, seed=1, drop_last=True, shuffle=False)
    assert len(loader) == 10
    batches = _indices(loader)
    assert batches[0] == list(range(10)) and batches[-1] == list(range(90, 100))


def test_permutation_depends_on_seed_and_epoch_only() -> None:
    a = epoch_permutation(50, seed=3, epoch=2)
    assert torch.equal(a, epoch_permutation(50, seed=3, epoch=2))
    assert not torch.equal(a, epoch_permutation(50, seed=3, epoch=3))
    assert not torch.equal(a, epoch_permutation(50, seed=4, epoch=2))
    assert sorted(a.tolist()) == list(range(50))


def test_iteration_advances_epochs() -> None:
    loader = InMemoryBatchLoader(_store(40), batch_size=8, seed=0)
    first = _indices(loader)
    second = _indices(loader)
    assert loader.epoch == 2
    assert first != second
    loader.set_epoch(0)
    assert _indices(loader) == first


@pytest.mark.parametrize("drop_last", [True, False])
def test_two_ranks_disjoint_and_union_is_single_rank_epoch(drop_last: bool) -> None:
    store = _store(103)
    single = InMemoryBatchLoader(store, batch_size=20, seed=5, drop_last=drop_last)
    ranks = [
        InMemoryBatchLoader(store, batch_size=10, seed=5, drop_last=drop_last, rank=r, world_size=2) for r in range(2)
    ]
    for loader in (single, *ranks):
        loader.set_position(3)
    assert len(ranks[0]) == len(ranks[1]) == len(single)
    single_batches = _indices(single)
    per_rank = [_indices(r) for r in ranks]
    for step, global_batch in enumerate(single_batches):
        a, b = per_rank[0][step], per_rank[1][step]
        assert set(a).isdisjoint(b)
        assert sorted(a + b) == sorted(global_batch)
    flat = [sorted(i for b in batches for i in b) for batches in per_rank]
    assert set(flat[0]).isdisjoint(flat[1])
    assert sorted(flat[0] + flat[1]) == sorted(i for b in single_batches for i in b)
    if not drop_last:
        assert sorted(flat[0] + flat[1]) == list(range(103))


def test_set_position_resumes_with_identical_remaining_batches() -> None:
    store = _store(97, factors=True)
    full = InMemoryBatchLoader(store, batch_size=8, seed=11)
    full.set_position(6)
    reference = list(full)
    resumed = InMemoryBatchLoader(store, batch_size=8, seed=11)
    resumed.set_position(6, start_batch=5)
    rest = list(resumed)
    assert len(rest) == len(reference) - 5
    for got, want in zip(rest, reference[5:], strict=True):
        for key in ("images", "labels", "index", "factors"):
            assert torch.equal(got[key], want[key])


def test_state_dict_roundtrip_mid_epoch() -> None:
    store = _store(64)
    loader = InMemoryBatchLoader(store, batch_size=4, seed=2)
    loader.set_position(1)
    it = iter(loader)
    seen = [next(it)["index"].tolist() for _ in range(3)]
    state = loader.state_dict()
    assert state["epoch"] == 1 and state["batch"] == 3
    remaining = [b["index"].tolist() for b in it]
    other = InMemoryBatchLoader(store, batch_size=4, seed=2)
    other.load_state_dict(state)
    assert _indices(other) == remaining
    loader.set_position(1)
    assert _indices(loader) == seen + remaining
    # A finished epoch is reported as the start of the next one.
    assert loader.state_dict()["epoch"] == 2 and loader.state_dict()["batch"] == 0


def test_too_small_for_one_global_batch_is_user_error() -> None:
    with pytest.raises(UserError, match="--batch-size"):
        InMemoryBatchLoader(_store(10), batch_size=8, seed=0, world_size=2)
    with pytest.raises(UserError):
        InMemoryBatchLoader(_store(10), batch_size=0, seed=0)
    assert len(InMemoryBatchLoader(_store(10), batch_size=8, seed=0, world_size=2, drop_last=False)) == 1
