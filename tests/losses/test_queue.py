"""The negative queue (``--queue-size``): first in first out, its negatives in NT-Xent's denominator written out
anchor by anchor, one traced graph under --compile, and a run stopped by --max-steps that resumes with the
queue (and the weights) of the run never stopped. Two processes: test_supcon_and_queue_distributed.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from simclr.cli import main
from simclr.config import build_config
from simclr.losses.ntxent import NTXentLoss
from simclr.losses.queue import NegativeQueue
from simclr.training.checkpoint_io import load_checkpoint_safely
from simclr.training.model_and_loss import build_loss
from simclr.training.module import QUEUE_KEY


def rows(start: int, count: int) -> torch.Tensor:
    """``count`` rows that say which they are: row j is (start + j, -(start + j))."""
    values = torch.arange(start, start + count, dtype=torch.float32)
    return torch.stack([values, -values], dim=1)


def test_the_queue_keeps_the_last_rows_in_order() -> None:
    queue = NegativeQueue(5)
    assert queue.contents().numel() == 0
    queue.push(rows(0, 2))
    assert queue.contents().tolist() == rows(0, 2).tolist() and queue.filled == 2
    queue.push(rows(2, 2))
    queue.push(rows(4, 2))  # one more than fits: row 0 leaves
    assert queue.contents().tolist() == rows(1, 5).tolist() and queue.filled == 5
    queue.push(rows(6, 3))
    assert queue.contents().tolist() == rows(4, 5).tolist()
    queue.push(rows(9, 7))  # more than the queue holds at once: its last 5
    assert queue.contents().tolist() == rows(11, 5).tolist()


def test_state_round_trip_and_a_resize_keep_the_newest_rows() -> None:
    queue = NegativeQueue(4)
    for start in range(0, 9, 3):
        queue.push(rows(start, 3))
    same = NegativeQueue(4)
    same.load_state_dict(queue.state_dict())
    assert (same.pointer, same.filled) == (queue.pointer, queue.filled)
    assert same.contents().tolist() == queue.contents().tolist() == rows(5, 4).tolist()
    smaller, larger = NegativeQueue(2), NegativeQueue(10)
    smaller.load_state_dict(queue.state_dict())
    larger.load_state_dict(queue.state_dict())
    assert smaller.contents().tolist() == rows(7, 2).tolist()
    assert larger.contents().tolist() == rows(5, 4).tolist() and larger.filled == 4


def reference_with_queue(views: list[torch.Tensor], queued: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent (SupCon L_out) anchor by anchor, with the queued rows as more candidates in every denominator."""
    z = [v / v.norm(dim=1, keepdim=True) for v in views]
    entries = [(v, i) for v in range(len(views)) for i in range(views[0].shape[0])]
    total = torch.zeros((), dtype=torch.float64)
    for v, i in entries:
        anchor = z[v][i]
        batch = [anchor @ z[u][k] / temperature for u, k in entries if (u, k) != (v, i)]
        remembered = [anchor @ row / temperature for row in queued]
        log_denominator = torch.logsumexp(torch.stack(batch + remembered), 0)
        positives = [anchor @ z[u][i] / temperature for u in range(len(views)) if u != v]
        total = total + sum(log_denominator - p for p in positives) / len(positives)
    return total / len(entries)


@pytest.mark.parametrize("n_views", [2, 3])
def test_the_loss_with_a_queue_counts_the_queued_negatives(n_views: int) -> None:
    generator = torch.Generator().manual_seed(n_views)
    steps = [[torch.randn(4, 6, dtype=torch.float64, generator=generator) for _ in range(n_views)] for _ in range(4)]
    loss_fn = NTXentLoss(temperature=0.4, queue_size=6)
    pushed: list[torch.Tensor] = []
    for views in steps:
        queued = torch.cat(pushed)[-6:] if pushed else torch.zeros(0, 6, dtype=torch.float64)
        leaves = [view.clone().requires_grad_(True) for view in views]
        loss = loss_fn(*leaves)
        loss.backward()  # after the push: the queue's update leaves what the backward pass needs
        torch.testing.assert_close(loss, reference_with_queue(views, queued, 0.4), rtol=1e-10, atol=1e-12)
        pushed.append(views[0] / views[0].norm(dim=1, keepdim=True))  # after the loss: first views, normalised
        torch.testing.assert_close(loss_fn.queue.contents(), torch.cat(pushed)[-6:])
    # the first step, with an empty queue, is plain NT-Xent
    torch.testing.assert_close(NTXentLoss(0.4, queue_size=6)(*steps[0]), NTXentLoss(0.4)(*steps[0]))


@pytest.mark.slow
def test_compiled_scoring_traces_once_while_the_queue_fills() -> None:
    """--compile: the queue's empty slots are masked, not left out, so the loss keeps one shape while the
    queue fills and wraps (one graph, no recompilation), and the compiled loss is the eager one."""
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    config = build_config({}, {"dataset": "cifar10", "queue_size": 20, "compile": True, "compile_backend": "aot_eager"})
    compiled, eager = build_loss(config), NTXentLoss(config.temperature, queue_size=20)
    generator = torch.Generator().manual_seed(0)
    for _ in range(4):  # 8 rows a step into 20 slots: empty, partly filled, full and wrapped
        views = [torch.randn(8, 16, generator=generator) for _ in range(2)]
        got, want = compiled.loss_and_accuracy(*views), eager.loss_and_accuracy(*views)
        torch.testing.assert_close(got, want)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1


# 48 images / 16 a step: 3 steps an epoch, 6 in all; a queue of 40 wraps mid-batch and is full after 3 steps
QUEUE_RUN = [
    "--dataset", "spirograph", "--train-size", "48", "--test-size", "16", "--batch-size", "16", "--epochs", "2",
    "--image-size", "8", "--precision", "32", "--knn-every-epochs", "0", "--workers", "0", "--queue-size", "40",
    "--optimizer", "sgd", "--lr", "0.05", "--quiet",
]  # fmt: skip


@pytest.mark.slow
def test_a_run_stopped_and_resumed_continues_with_the_same_queue(tmp_path: Path) -> None:
    """Stopped at step 4 (mid-epoch, the queue full and wrapped), resumed to step 6: the queue and the weights
    are bitwise those of the run never stopped. The runs are in this process: what is checked is the resumed
    state (tests/training/test_hardening.py kills and resumes processes)."""
    uninterrupted, stopped = tmp_path / "uninterrupted", tmp_path / "stopped"
    assert main(["pretrain", *QUEUE_RUN, "--out", str(uninterrupted)]) == 0
    assert main(["pretrain", *QUEUE_RUN, "--max-steps", "4", "--out", str(stopped)]) == 0
    at_stop = load_checkpoint_safely(stopped / "checkpoints" / "last.ckpt")[QUEUE_KEY]
    assert int(at_stop["filled"]) == 40 and int(at_stop["pointer"]) == 4 * 16 % 40
    assert main(["pretrain", "--resume", str(stopped), "--max-steps", "6", "--quiet"]) == 0
    expected = load_checkpoint_safely(uninterrupted / "checkpoints" / "last.ckpt")[QUEUE_KEY]
    got = load_checkpoint_safely(stopped / "checkpoints" / "last.ckpt")[QUEUE_KEY]
    assert int(got["pointer"]) == int(expected["pointer"]) == 6 * 16 % 40
    torch.testing.assert_close(got["embeddings"], expected["embeddings"], rtol=0, atol=0)
    expected_weights = load_file(str(uninterrupted / "backbone.safetensors"))
    got_weights = load_file(str(stopped / "backbone.safetensors"))
    for name, tensor in expected_weights.items():
        torch.testing.assert_close(got_weights[name], tensor, rtol=0, atol=0, msg=name)
