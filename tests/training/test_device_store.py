"""The training store moves to the GPU when it fits (issue 15): the decision, and batches gathered from a
moved store equal to the host path's (on the CPU, and on a GPU when there is one)."""

from __future__ import annotations

import pytest
import torch

from simclr.data.loader import InMemoryBatchLoader
from simclr.data.store import ImageStore
from simclr.hardware import DEVICE_STORE_FRACTION, store_fits_on_device
from simclr.training.datamodule import place_store


def _store(n: int = 40) -> ImageStore:
    images = torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8)
    return ImageStore(images, torch.arange(n) % 4, ["a", "b", "c", "d"], factors=torch.randn(n, 2))


def test_the_store_fits_within_its_share_of_the_free_memory() -> None:
    store = _store()
    assert store.nbytes == 40 * 3 * 8 * 8 + 40 * 8 + 40 * 2 * 4
    free = 1000 * store.nbytes
    assert store_fits_on_device(store.nbytes, free)
    assert store_fits_on_device(store.nbytes, int(store.nbytes / DEVICE_STORE_FRACTION))
    assert not store_fits_on_device(store.nbytes, int(store.nbytes / DEVICE_STORE_FRACTION) - 1)


def test_only_a_cuda_device_receives_the_store() -> None:
    store = _store()
    assert place_store(store, torch.device("cpu"), free_bytes=10**12) is store


@pytest.mark.parametrize("device", ["cpu", *(["cuda"] if torch.cuda.is_available() else [])])
def test_batches_gathered_on_the_device_equal_the_host_batches(device: str) -> None:
    store = _store()
    host = InMemoryBatchLoader(store, batch_size=8, seed=3, world_size=2, rank=1)
    moved = InMemoryBatchLoader(store.to(torch.device(device)), batch_size=8, seed=3, world_size=2, rank=1)
    for epoch in range(2):
        host.set_position(epoch)
        moved.set_position(epoch)
        pairs = list(zip(host, moved, strict=True))
        assert len(pairs) == len(host) == 2
        for expected, got in pairs:
            assert expected.keys() == got.keys()
            for name in expected:
                assert got[name].device.type == device
                assert torch.equal(expected[name], got[name].cpu()), name


@pytest.mark.skipif(not torch.cuda.is_available(), reason="pinning needs a CUDA build with a GPU")
def test_host_batches_are_pinned_for_an_asynchronous_copy() -> None:
    batch = next(iter(InMemoryBatchLoader(_store(), batch_size=8, seed=0, pin_memory=True)))
    assert all(tensor.is_pinned() for tensor in batch.values())
