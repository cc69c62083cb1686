"""Multi-crop in the training step: with 2 global and 2 local views every view of an image is a positive of
every other (the loss is NT-Xent over the 4 views, SupCon's L_out), the global and local crops go through the
network as two batches, a tiny ``simclr pretrain --local-crops`` run trains, and what does not fit is refused.
With the settings it combines with: ``--queue-size`` keeps one global view per image, ``--loss supcon`` makes
every view of a same-class image a positive, and ``--compile`` (inductor) takes the eager run's step."""

from __future__ import annotations

import csv
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from simclr.config import build_config
from simclr.errors import UserError
from simclr.losses.ntxent import NTXentLoss
from simclr.losses.supcon import SupConLoss
from simclr.training.module import SimCLRModule, view_generator

BATCH = 8
TEMPERATURE = 0.5


def _module(**settings: object) -> SimCLRModule:
    """16 px global views, two 8 px local views, a small backbone (pooled, so it takes either size)."""
    values = dict(dataset="cifar10", image_size=16, batch_size=BATCH, local_crops=2, local_crop_size=8, seed=2)
    config = build_config({}, {**values, **settings})
    torch.manual_seed(2)
    backbone = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return SimCLRModule.from_config(config, image_size=16, steps_per_epoch=10, backbone=backbone, channels_last=False)


def _images(seed: int = 1) -> Tensor:
    return torch.randint(0, 256, (BATCH, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def _projections(module: SimCLRModule, images: Tensor, step: int) -> list[Tensor]:
    """The projections of each of the step's views (global 16 px ones, then local 8 px ones), one view at a time."""
    views = module.views(images, view_generator(module.seed, step, 0))
    assert [v.shape[-1] for v in views] == [16, 16, 8, 8]
    with torch.no_grad():
        return [module.model(view)[1] for view in views]


def _every_view_a_positive(chunks: list[Tensor], labels: Tensor | None = None) -> Tensor:
    """The loss written out pair by pair: each anchor's positives are all other views of its image (global and
    local alike) and, with ``labels``, every view of an image of its class; its denominator every other view of
    the batch."""
    z = F.normalize(torch.cat(chunks), dim=1)
    n_views = len(chunks)
    logits = z @ z.T / TEMPERATURE
    image = torch.arange(BATCH).repeat(n_views)
    label = (labels if labels is not None else torch.full((BATCH,), -1)).repeat(n_views)
    total = torch.zeros(())
    for anchor in range(z.shape[0]):
        others = torch.arange(z.shape[0]) != anchor
        log_denominator = torch.logsumexp(logits[anchor][others], dim=0)
        same_class = (label == label[anchor]) & (label[anchor] >= 0)
        positives = others & ((image == image[anchor]) | same_class)
        total = total + (log_denominator - logits[anchor][positives]).mean()
    return total / z.shape[0]


def test_every_view_of_an_image_is_a_positive_of_every_other() -> None:
    module = _module().eval()  # eval: BatchNorm in the head does not depend on how the views are batched
    loss = module.training_step(_images(), 0)
    views = module.views(_images(), view_generator(module.seed, 0, 0))
    assert [v.shape[-1] for v in views] == [16, 16, 8, 8]
    with torch.no_grad():
        chunks = [module.model(view)[1] for view in views]
    direct = NTXentLoss(temperature=TEMPERATURE, gather_distributed=False)(*chunks)
    torch.testing.assert_close(loss.detach(), direct)
    torch.testing.assert_close(direct, _every_view_a_positive(chunks))


def test_global_and_local_crops_run_as_two_batches() -> None:
    module = _module()
    sizes: list[tuple[int, ...]] = []
    module.model.backbone.register_forward_hook(lambda _m, inputs, _o: sizes.append(tuple(inputs[0].shape)))
    module.training_step(_images(), 0).backward()
    # the local crops first, the global ones last (the online probe's hook keeps the last forward's features)
    assert sizes == [(2 * BATCH, 3, 8, 8), (2 * BATCH, 3, 16, 16)]
    assert all(p.grad is not None for p in module.model.backbone.parameters())


def test_a_queue_keeps_one_global_view_per_image_and_every_view_meets_it() -> None:
    """After a step the queue holds the first (global, 16 px) view of each image, not the local crops; the next
    step's 4 views are scored against the batch and those queued rows, as a queue fed the same views would."""
    module = _module(queue_size=3 * BATCH).eval()  # eval: the projections do not depend on the batching
    queue = module.criterion.queue
    assert queue is not None
    module.training_step(_images(1), 0)
    first = _projections(module, _images(1), 0)
    torch.testing.assert_close(queue.contents(), F.normalize(first[0], dim=1))
    reference = NTXentLoss(temperature=TEMPERATURE, gather_distributed=False, queue_size=3 * BATCH)
    reference(*first)
    second = _projections(module, _images(2), 0)
    torch.testing.assert_close(module.training_step(_images(2), 0).detach(), reference(*second))
    assert queue.filled == 2 * BATCH


def test_supcon_makes_every_view_of_a_same_class_image_a_positive() -> None:
    """SupCon over the 4 views: the step's loss is the one written out pair by pair, where images 0, 1 and 4
    share a class, so each of their views has the 11 other views of the three as positives (global and local
    alike); an unlabelled image (-1) has its own 3 other views only."""
    module = _module(loss="supcon").eval()
    labels = torch.tensor([0, 0, 1, 2, 0, -1, 3, 3])
    loss = module.training_step({"images": _images(), "labels": labels}, 0).detach()
    chunks = _projections(module, _images(), 0)
    torch.testing.assert_close(loss, _every_view_a_positive(chunks, labels))
    torch.testing.assert_close(loss, SupConLoss(TEMPERATURE, gather_distributed=False)(*chunks, labels=labels))


@pytest.mark.slow  # inductor generates and builds C++ for both view sizes: ~25 s on 2 cores with a cold cache
def test_compiled_multicrop_takes_the_eager_step() -> None:
    """``--compile`` with inductor (static shapes: the global and the local crops are two graphs): the float32
    loss and weight gradients equal the eager module's."""
    results = []
    for compile in (False, True):
        module = _module(compile=True, compile_backend="inductor") if compile else _module()
        loss = module.training_step(_images(), 0)
        loss.backward()
        grads = {name: p.grad.clone() for name, p in module.model.named_parameters() if p.grad is not None}
        results.append((loss.detach(), grads))
    (eager_loss, eager_grads), (loss, grads) = results
    torch.testing.assert_close(loss, eager_loss, rtol=1e-5, atol=1e-6)
    assert grads.keys() == eager_grads.keys() and grads
    for name, grad in eager_grads.items():
        torch.testing.assert_close(grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize(
    ("setting", "flag"),
    [
        ({"lambda_gp": 0.1}, "--lambda-gp"),
        ({"positives": "class"}, "--positives class"),
        ({"micro_batch": 4}, "--micro-batch"),
        ({"dataset": "spirograph"}, "spirograph"),
        ({"local_crop_scale": (0.3, 0.05)}, "A <= B"),
    ],
)
def test_what_does_not_fit_is_refused_in_one_line(setting: dict[str, object], flag: str) -> None:
    values: dict[str, object] = {"dataset": "cifar10", "local_crops": 2, **setting}
    with pytest.raises(UserError, match=flag) as error:
        build_config({}, values)
    assert "\n" not in str(error.value)


def test_a_tiny_multicrop_run_trains(
    cifar_small: Path, tmp_path: Path, pretrain_cli: Callable[..., subprocess.Popen[str]]
) -> None:
    run = tmp_path / "run"
    flags = ["--dataset", "cifar10", "--data-dir", str(cifar_small), "--image-size", "16", "--batch-size", "8"]
    flags += ["--limit-train-images", "16", "--epochs", "1", "--precision", "32", "--workers", "1"]
    flags += ["--knn-every-epochs", "0", "--log-every-steps", "1", "--backbone", "resnet18", "--quiet"]
    multicrop = ["--global-crops", "2", "--local-crops", "2", "--local-crop-size", "8"]
    proc = pretrain_cli(*flags, *multicrop, "--out", str(run))
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    with open(run / "metrics.csv", newline="") as handle:
        losses = [float(row["train_loss"]) for row in csv.DictReader(handle) if row["train_loss"]]
    assert len(losses) == 2 and all(loss == loss and loss > 0 for loss in losses)
    saved = (run / "config.yaml").read_text()
    assert "local_crops: 2" in saved and "local_crop_size: 8" in saved
