"""NT-Xent across 2 gloo processes on CPU equals the single-process loss on the concatenated batch.

Each rank holds half of a global batch, sends it through a shared linear layer (same initialisation
on both ranks) and computes ``NTXentLoss(gather_distributed=True)``. After ``backward()`` the worker
averages the layer's gradients over ranks, which is what DistributedDataParallel does; the result
must equal the single-process gradient on the whole batch (SimCLR, Chen et al. 2020,
arXiv:2002.05709: negatives from the global batch, and the step of one large-batch process).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from simclr.errors import UserError
from simclr.losses.distributed import gather_with_grad, rank, world_size
from simclr.losses.ntxent import NTXentLoss
from tests.losses.process_group import averaged_gradients, gloo_group

WORLD = 2
LOCAL_BATCH = 4
DIM_IN = 6
DIM = 8
TEMPERATURE = 0.2

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")


def make_problem(n_views: int) -> tuple[torch.Tensor, torch.nn.Linear]:
    """Global inputs (V, W*B, DIM_IN) and the shared layer, identical in every process."""
    generator = torch.Generator().manual_seed(100 + n_views)
    inputs = torch.randn(n_views, WORLD * LOCAL_BATCH, DIM_IN, generator=generator)
    torch.manual_seed(7)
    layer = torch.nn.Linear(DIM_IN, DIM)
    return inputs, layer


def run_loss(inputs: torch.Tensor, layer: torch.nn.Linear, gather: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss and input gradient of ``inputs`` (V, B, DIM_IN); leaves the layer's gradients in place."""
    inputs = inputs.clone().requires_grad_(True)
    loss = NTXentLoss(TEMPERATURE, gather_distributed=gather)(*[layer(view) for view in inputs])
    loss.backward()
    assert inputs.grad is not None
    return loss.detach(), inputs.grad


def worker(process_rank: int, init_file: str, out_dir: str) -> None:
    with gloo_group(process_rank, WORLD, init_file):
        results: dict[str, object] = {"world_size": world_size(), "rank": rank()}
        rows = slice(process_rank * LOCAL_BATCH, (process_rank + 1) * LOCAL_BATCH)
        for n_views in (2, 3):
            inputs, layer = make_problem(n_views)
            loss, input_grad = run_loss(inputs[:, rows], layer, gather=True)
            weight_grad, bias_grad = averaged_gradients((layer.weight, layer.bias))
            results[f"gathered{n_views}"] = {
                "loss": loss,
                "weight_grad": weight_grad,
                "bias_grad": bias_grad,
                "input_grad": input_grad,
            }
            inputs, layer = make_problem(n_views)
            local_loss, _ = run_loss(inputs[:, rows], layer, gather=False)
            results[f"local{n_views}"] = local_loss
        try:
            gather_with_grad(torch.zeros(LOCAL_BATCH - process_rank, 3))
        except UserError as error:
            results["unequal_error"] = str(error)
        torch.save(results, Path(out_dir) / f"rank{process_rank}.pt")


def test_two_processes_match_single_process(tmp_path: Path) -> None:
    start = time.perf_counter()
    mp.spawn(worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    elapsed = time.perf_counter() - start
    print(f"2-process gloo run took {elapsed:.1f} s")
    per_rank = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]

    for r, result in enumerate(per_rank):
        assert result["world_size"] == WORLD
        assert result["rank"] == r
        assert "same batch size" in result["unequal_error"]
        assert "drop_last" in result["unequal_error"]

    for n_views in (2, 3):
        inputs, layer = make_problem(n_views)
        global_loss, global_input_grad = run_loss(inputs, layer, gather=True)
        assert layer.weight.grad is not None and layer.bias.grad is not None
        gathered = [result[f"gathered{n_views}"] for result in per_rank]

        # (a) the mean of the per-rank losses is the loss of the whole batch
        mean_loss = sum(g["loss"] for g in gathered) / WORLD
        torch.testing.assert_close(mean_loss, global_loss, rtol=0, atol=1e-6)
        # (b) DDP-averaged parameter gradients equal the single-process gradient
        for g in gathered:
            torch.testing.assert_close(g["weight_grad"], layer.weight.grad, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(g["bias_grad"], layer.bias.grad, rtol=1e-5, atol=1e-6)
        # ... and each rank's input gradient is W times its slice of the global-mean gradient
        rank_input_grads = torch.cat([g["input_grad"] / WORLD for g in gathered], dim=1)
        torch.testing.assert_close(rank_input_grads, global_input_grad, rtol=1e-5, atol=1e-6)

        # (c) without gathering, each rank computes the loss of its own half only
        for r, result in enumerate(per_rank):
            rows = slice(r * LOCAL_BATCH, (r + 1) * LOCAL_BATCH)
            inputs, layer = make_problem(n_views)
            local_loss, _ = run_loss(inputs[:, rows], layer, gather=False)
            torch.testing.assert_close(result[f"local{n_views}"], local_loss, rtol=0, atol=1e-6)
            assert abs(result[f"local{n_views}"].item() - gathered[r]["loss"].item()) > 1e-3
        local_mean = sum(result[f"local{n_views}"] for result in per_rank) / WORLD
        assert abs(local_mean.item() - global_loss.item()) > 1e-3
