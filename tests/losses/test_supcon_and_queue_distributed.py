"""SupCon and the negative queue across 2 gloo processes on CPU, against one process holding their whole batch.

Each rank holds half of a global batch. SupCon: the labels are gathered with the embeddings, so the mean of the
ranks' losses is the whole batch's loss and the DDP-averaged gradients are its gradients. The queue: every rank
pushes the first views of the global batch, so each holds the queue of the single process, and its losses
(with the queued negatives) average to the single process's. The two processes are started once for both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from simclr.losses.ntxent import NTXentLoss
from simclr.losses.supcon import SupConLoss
from tests.losses.process_group import averaged_gradients, gloo_group

WORLD = 2
LOCAL_BATCH = 4

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")


def supcon_problem() -> tuple[list[torch.Tensor], torch.Tensor, torch.nn.Linear]:
    """Two views of the global batch (W*B images), its labels (classes spanning both processes, an unlabelled
    image, a class of one) and a shared linear layer, identical in every process."""
    generator = torch.Generator().manual_seed(5)
    views = [torch.randn(WORLD * LOCAL_BATCH, 6, generator=generator) for _ in range(2)]
    labels = torch.tensor([0, 1, 2, -1, 1, 0, 3, 0])
    torch.manual_seed(11)
    return views, labels, torch.nn.Linear(6, 8)


def queue_steps() -> list[list[torch.Tensor]]:
    """Three steps of two views of the global batch: 8 rows a step into a queue of 10, which wraps."""
    generator = torch.Generator().manual_seed(3)
    return [[torch.randn(WORLD * LOCAL_BATCH, 4, generator=generator) for _ in range(2)] for _ in range(3)]


def worker(process_rank: int, init_file: str, out_dir: str) -> None:
    with gloo_group(process_rank, WORLD, init_file):
        rows = slice(process_rank * LOCAL_BATCH, (process_rank + 1) * LOCAL_BATCH)
        views, labels, layer = supcon_problem()
        loss = SupConLoss(0.2)(*[layer(view[rows]) for view in views], labels=labels[rows])
        loss.backward()
        queued = NTXentLoss(0.3, queue_size=10)
        queue_losses = torch.stack([queued(*[view[rows] for view in step]) for step in queue_steps()])
        assert queued.queue is not None
        result = {
            "supcon_loss": loss.detach(),
            "supcon_grads": averaged_gradients((layer.weight, layer.bias)),
            "queue_losses": queue_losses,
            "queue": queued.queue.contents(),
        }
        torch.save(result, Path(out_dir) / f"rank{process_rank}.pt")


@pytest.fixture(scope="module")
def per_rank(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """What each of the two processes computed."""
    out = tmp_path_factory.mktemp("two-processes")
    mp.spawn(worker, args=(str(out / "init"), str(out)), nprocs=WORLD, join=True)
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]


def test_supcon_over_two_processes_is_the_loss_of_their_whole_batch(per_rank: list[dict[str, Any]]) -> None:
    views, labels, layer = supcon_problem()
    whole = SupConLoss(0.2)(*[layer(view) for view in views], labels=labels)
    whole.backward()
    mean = sum(result["supcon_loss"] for result in per_rank) / WORLD
    torch.testing.assert_close(mean, whole.detach(), rtol=0, atol=1e-6)
    for result in per_rank:
        torch.testing.assert_close(result["supcon_grads"][0], layer.weight.grad, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(result["supcon_grads"][1], layer.bias.grad, rtol=1e-5, atol=1e-6)


def test_two_processes_keep_the_queue_of_their_whole_batch(per_rank: list[dict[str, Any]]) -> None:
    loss_fn = NTXentLoss(0.3, queue_size=10)
    whole = torch.stack([loss_fn(*views) for views in queue_steps()])
    assert loss_fn.queue is not None
    for result in per_rank:  # every process holds the queue one process with the whole batch holds
        torch.testing.assert_close(result["queue"], loss_fn.queue.contents())
    mean = sum(result["queue_losses"] for result in per_rank) / WORLD
    torch.testing.assert_close(mean, whole, rtol=0, atol=1e-6)
