"""``--micro-batch`` (gradient caching, Gao et al. 2021): the loss and the parameter gradients of a batch
embedded M images at a time equal those of the batch in one pass, on one process and across two DDP
processes with gathered negatives; BatchNorm in training mode differs only through its per-micro-batch
statistics; a run trains and resumes exactly.

The one-pass reference and the micro-batched step see the same views (drawn once per step from the step's
generator), so the equality is float32 rounding alone: the convolutions' weight gradients are summed over
micro-batches instead of over the batch at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from simclr.cli import main
from simclr.config import build_config
from simclr.errors import UserError
from simclr.losses.ntxent import NTXentLoss
from simclr.training.grad_cache import embed_in_micro_batches, micro_batch_inputs
from simclr.training.module import SimCLRModule

BATCH = 8
RTOL, ATOL = 1e-5, 1e-7  # float32: relative to each gradient tensor's largest entry (see _assert_grads_equal)


def small_backbone() -> nn.Module:
    """A ResNet-like block with BatchNorm, small enough for a 2-core test: the module's real view, head and loss
    path around it (the property checked does not depend on the backbone's size)."""
    torch.manual_seed(4)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )


def _module(micro_batch: int | None, precision: str = "32") -> SimCLRModule:
    """The module ``simclr pretrain`` trains (16 px CIFAR-10 views, the mlp head with BatchNorm, NT-Xent), with a
    small backbone; the same weights each time."""
    values = dict(dataset="cifar10", image_size=16, batch_size=BATCH, micro_batch=micro_batch, seed=4)
    config = build_config({}, {**values, "precision": precision})
    return SimCLRModule.from_config(
        config, image_size=16, steps_per_epoch=10, backbone=small_backbone(), channels_last=False
    )


def _images() -> Tensor:
    return torch.randint(0, 256, (BATCH, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))


def _step(module: SimCLRModule, training: bool) -> tuple[Tensor, dict[str, Tensor], dict[str, Tensor]]:
    """One training step's loss, the parameter gradients and the buffers after it."""
    module.train(training)
    module.zero_grad(set_to_none=True)
    loss = module.training_step(_images(), 0)
    loss.backward()
    grads = {name: p.grad.clone() for name, p in module.model.named_parameters() if p.grad is not None}
    return loss.detach(), grads, {name: b.clone() for name, b in module.model.named_buffers()}


def _assert_grads_equal(got: dict[str, Tensor], expected: dict[str, Tensor]) -> None:
    assert got.keys() == expected.keys() and expected
    for name, grad in expected.items():
        scale = float(grad.abs().max()) or 1.0
        torch.testing.assert_close(got[name] / scale, grad / scale, rtol=RTOL, atol=RTOL, msg=name)


def _largest_relative_difference(got: dict[str, Tensor], expected: dict[str, Tensor]) -> float:
    return max(float((got[n] - g).abs().max() / g.abs().max().clamp_min(1e-12)) for n, g in expected.items())


@pytest.mark.parametrize("micro_batch", [1, 2, 4])
def test_micro_batches_give_the_loss_and_gradients_of_one_pass(micro_batch: int) -> None:
    """BatchNorm in eval mode: every row's embedding is independent of the others, so nothing may differ."""
    loss, grads, buffers = _step(_module(None), training=False)
    got_loss, got_grads, got_buffers = _step(_module(micro_batch), training=False)
    torch.testing.assert_close(got_loss, loss, rtol=RTOL, atol=ATOL)
    _assert_grads_equal(got_grads, grads)
    for name, buffer in buffers.items():
        assert torch.equal(got_buffers[name], buffer), name


def test_batchnorm_in_training_mode_differs_only_through_its_micro_batch_statistics() -> None:
    """One micro-batch of the whole batch is the one pass, BatchNorm in training mode included; micro-batches
    of 2 differ from it, and equal a reference that embeds each micro-batch with a graph (its own BatchNorm
    statistics) and back-propagates the loss of the joined embeddings: their statistics are the only change."""
    loss, grads, buffers = _step(_module(None), training=True)
    whole = _step(_module(BATCH), training=True)
    torch.testing.assert_close(whole[0], loss, rtol=RTOL, atol=ATOL)
    _assert_grads_equal(whole[1], grads)
    for name, buffer in buffers.items():  # the running statistics are updated once, not again by the re-forward
        torch.testing.assert_close(whole[2][name], buffer, rtol=RTOL, atol=ATOL, msg=name)

    got_loss, got_grads, got_buffers = _step(_module(2), training=True)
    assert abs(float(got_loss - loss)) > 1e-4 and _largest_relative_difference(got_grads, grads) > 1e-2

    reference = _module(None)
    reference.model.forward = _per_micro_batch_forward(reference.model, micro_batch=2)  # type: ignore[method-assign]
    ref_loss, ref_grads, ref_buffers = _step(reference, training=True)
    torch.testing.assert_close(got_loss, ref_loss, rtol=RTOL, atol=ATOL)
    _assert_grads_equal(got_grads, ref_grads)
    for name, buffer in ref_buffers.items():
        torch.testing.assert_close(got_buffers[name], buffer, rtol=RTOL, atol=ATOL, msg=name)


def _per_micro_batch_forward(model: nn.Module, micro_batch: int) -> Callable[[Tensor], tuple[Tensor, Tensor]]:
    """``model``'s forward on each micro-batch in turn, with a graph, joined view-major."""
    forward = model.forward

    def joined(inputs: Tensor) -> tuple[Tensor, Tensor]:
        pieces = [forward(part) for part in micro_batch_inputs(inputs, 2, micro_batch)]
        return tuple(  # type: ignore[return-value]
            torch.cat([p.unflatten(0, (2, -1)) for p in parts], dim=1).flatten(0, 1)
            for parts in zip(*pieces, strict=True)
        )

    return joined


class DropoutNet(nn.Module):
    """A small embedding network with dropout (random masks the re-forward must replay) and GroupNorm."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.GroupNorm(2, 8), nn.ReLU(), nn.Dropout(0.3), nn.AdaptiveAvgPool2d(1)
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(8, 16), nn.Dropout(0.2), nn.ReLU(), nn.Linear(16, 8))

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        features = self.backbone(images).flatten(1)
        return features, self.head(features)


def _dropout_step(net: nn.Module, inputs: Tensor, micro_batch: int | None) -> tuple[Tensor, dict[str, Tensor], Tensor]:
    """Loss, gradients and the next random number drawn after the step (where the generator was left)."""
    net.zero_grad(set_to_none=True)
    torch.manual_seed(11)
    if micro_batch is None:
        _, projections = net(inputs)
    else:
        _, projections = embed_in_micro_batches(net, inputs, 2, micro_batch)
    loss = NTXentLoss(0.5)(*projections.chunk(2))
    loss.backward()
    grads = {name: p.grad.clone() for name, p in net.named_parameters() if p.grad is not None}
    return loss.detach(), grads, torch.rand(1)


def test_dropout_masks_are_replayed_in_the_re_forward() -> None:
    """With dropout, one micro-batch of the whole batch equals the one pass only if the re-forward draws phase
    1's masks again; smaller micro-batches equal their own with-graph micro-batch reference drawn in the same
    order. The generator ends where the forward pass left it."""
    torch.manual_seed(0)
    net = DropoutNet()
    inputs = torch.randn(2 * BATCH, 3, 8, 8)
    loss, grads, after = _dropout_step(net, inputs, None)
    got_loss, got_grads, got_after = _dropout_step(net, inputs, BATCH)
    torch.testing.assert_close(got_loss, loss, rtol=RTOL, atol=ATOL)
    _assert_grads_equal(got_grads, grads)
    assert torch.equal(got_after, after)

    net.forward = _per_micro_batch_forward(net, micro_batch=2)  # type: ignore[method-assign]
    ref_loss, ref_grads, ref_after = _dropout_step(net, inputs, None)
    del net.forward  # back to the class's forward
    got_loss, got_grads, got_after = _dropout_step(net, inputs, 2)
    torch.testing.assert_close(got_loss, ref_loss, rtol=RTOL, atol=ATOL)
    _assert_grads_equal(got_grads, ref_grads)
    assert torch.equal(got_after, ref_after)


def test_micro_batches_train_in_bf16_with_the_loss_of_one_pass(tmp_path: Path) -> None:
    """``--precision bf16-mixed`` on the CPU: the first step's loss under autocast is close to the one pass's
    (both in bf16: compared loosely, the exact equality is float32's above), and Lightning's bf16 precision
    plugin trains two steps with finite losses that move the weights."""
    losses = []
    for micro_batch in (None, 2):
        module = _module(micro_batch, precision="bf16-mixed").eval()  # eval: BatchNorm the same either way
        with torch.autocast("cpu", dtype=torch.bfloat16):
            losses.append(float(module.training_step(_images(), 0).detach()))
    assert losses[1] == pytest.approx(losses[0], rel=2e-2)

    module = _module(2, precision="bf16-mixed")
    before = [p.detach().clone() for p in module.model.parameters()]
    images = torch.cat([_images(), _images().flip(0)])
    trainer = L.Trainer(
        accelerator="cpu", precision="bf16-mixed", max_steps=2, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(module, DataLoader(images, batch_size=BATCH))  # type: ignore[arg-type]
    trained = [row.values["train_loss"] for row in module.drain_step_metrics()]
    assert len(trained) == 2 and all(math.isfinite(loss) and loss > 0 for loss in trained)
    assert any(not torch.equal(p.detach(), old) for p, old in zip(module.model.parameters(), before, strict=True))


def test_a_micro_batch_that_does_not_divide_the_batch_is_a_one_line_error() -> None:
    with pytest.raises(UserError, match="--micro-batch 3 does not divide --batch-size 8"):
        build_config({}, {"batch_size": 8, "micro_batch": 3})
    for flag, value in (("lambda_gp", 0.1), ("compile", True), ("online_probe", True)):
        with pytest.raises(UserError, match=f"--micro-batch does not work with --{flag.replace('_', '-')}"):
            build_config({}, {"batch_size": 8, "micro_batch": 2, flag: value})
    with pytest.raises(UserError, match="does not divide the batch of 8 images"):
        embed_in_micro_batches(DropoutNet(), torch.zeros(16, 3, 8, 8), 2, 3)


# ----------------------------------------------------------------------------------------------------------
# two DDP processes (gloo), negatives gathered from both
# ----------------------------------------------------------------------------------------------------------

WORLD = 2


class ContrastiveStep(nn.Module):
    """What Lightning's DDP wraps: a module whose forward is the step (embeddings, then NT-Xent with the
    negatives gathered from every process), its network called inside it."""

    def __init__(self, micro_batch: int | None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = DropoutNet().eval()  # dropout off: the one-pass reference draws no masks per process
        self.loss = NTXentLoss(0.5, gather_distributed=True)
        self.micro_batch = micro_batch

    def forward(self, inputs: Tensor) -> Tensor:
        if self.micro_batch is None:
            _, projections = self.net(inputs)
        else:
            _, projections = embed_in_micro_batches(self.net, inputs, 2, self.micro_batch)
        loss: Tensor = self.loss(*projections.chunk(2))
        return loss


def _global_inputs() -> Tensor:
    """Two views of WORLD x BATCH images, view-major: (2, WORLD*BATCH, 3, 8, 8)."""
    return torch.randn(2, WORLD * BATCH, 3, 8, 8, generator=torch.Generator().manual_seed(3))


def _ddp_worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD, timeout=timedelta(seconds=60)
    )
    try:
        step = DistributedDataParallel(ContrastiveStep(micro_batch=2))
        local = _global_inputs()[:, rank * BATCH : (rank + 1) * BATCH].flatten(0, 1)
        reduced: list[int] = []
        step.register_comm_hook(reduced, _counting_allreduce)
        loss = step(local)
        loss.backward()  # DDP averages the gradients over the processes, one bucketed all-reduce per step
        grads = {name: p.grad.clone() for name, p in step.module.net.named_parameters() if p.grad is not None}
        torch.save({"loss": loss.detach(), "grads": grads, "buckets": len(reduced)}, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _counting_allreduce(state, bucket):  # type: ignore[no-untyped-def]
    """DDP's default all-reduce (the mean over processes), counting the buckets it reduces. Unannotated: DDP
    refuses a hook whose annotations are not the classes themselves (here they would be strings)."""
    state.append(bucket.index())
    tensor = bucket.buffer().div_(WORLD)
    return dist.all_reduce(tensor, async_op=True).get_future().then(lambda fut: fut.value()[0])


@pytest.mark.slow  # two spawned processes import torch: ~15 s on 2 cores, most of it imports
@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
def test_two_ddp_processes_with_micro_batches_take_the_step_of_one_process_on_the_whole_batch(tmp_path: Path) -> None:
    mp.spawn(_ddp_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    per_rank = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]

    reference = ContrastiveStep(micro_batch=None)
    loss = reference(_global_inputs().flatten(0, 1))
    loss.backward()
    grads = {name: p.grad for name, p in reference.net.named_parameters() if p.grad is not None}

    mean_loss = sum(result["loss"] for result in per_rank) / WORLD
    torch.testing.assert_close(mean_loss, loss.detach(), rtol=RTOL, atol=ATOL)
    for result in per_rank:
        _assert_grads_equal(result["grads"], grads)
        assert result["buckets"] == 1  # one all-reduce for all parameters: each was ready once per step


# ----------------------------------------------------------------------------------------------------------
# end to end: a run with --micro-batch trains and resumes exactly
# ----------------------------------------------------------------------------------------------------------

MICRO_BATCH_RUN = [
    "--dataset", "spirograph", "--train-size", "32", "--test-size", "16", "--batch-size", "16", "--micro-batch", "4",
    "--epochs", "2", "--precision", "32", "--knn-every-epochs", "0", "--workers", "1", "--image-size", "8", "--quiet",
]  # fmt: skip


@pytest.mark.slow
def test_a_micro_batched_run_stopped_and_resumed_ends_with_the_weights_of_the_run_never_stopped(
    tmp_path: Path,
) -> None:
    """4 steps of 16 images in micro-batches of 4; stopped after step 1, then resumed to the end: bitwise the
    weights of the uninterrupted run (the views of a step are drawn once, from the step's generator). The runs
    are in this process: what is checked is the resumed state (tests/training/test_hardening.py kills and
    resumes processes)."""
    uninterrupted, stopped = tmp_path / "uninterrupted", tmp_path / "stopped"
    assert main(["pretrain", *MICRO_BATCH_RUN, "--out", str(uninterrupted)]) == 0
    assert main(["pretrain", *MICRO_BATCH_RUN, "--max-steps", "1", "--out", str(stopped)]) == 0
    assert main(["pretrain", "--resume", str(stopped), "--max-steps", "4", "--quiet"]) == 0
    expected = load_file(str(uninterrupted / "backbone.safetensors"))
    got = load_file(str(stopped / "backbone.safetensors"))
    assert expected.keys() == got.keys()
    for name, tensor in expected.items():
        torch.testing.assert_close(got[name], tensor, rtol=0, atol=0, msg=name)
    assert "micro_batch: 4" in (uninterrupted / "config.yaml").read_text()
