"""SupConLoss (``--loss supcon``): the paper's L_out written out anchor by anchor (Khosla et al. 2020,
arXiv:2004.11362, Eq. 2), the batch's labels reaching it in the training step, and a tiny ``simclr pretrain
--loss supcon`` run. Two processes: test_supcon_and_queue_distributed.py."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from simclr.config import build_config
from simclr.errors import UserError
from simclr.losses.ntxent import NTXentLoss
from simclr.losses.supcon import SupConLoss
from simclr.training.module import SimCLRModule

from ..conftest import noise_pngs


def reference_supcon(views: list[torch.Tensor], labels: list[int], temperature: float) -> torch.Tensor:
    """L_out by its definition, a double loop over anchors and their positives: candidate k is a positive of
    anchor a when it is another view of a's image, or a view of an image with a's label (labels >= 0)."""
    z = [v / v.norm(dim=1, keepdim=True) for v in views]
    entries = [(v, i) for v in range(len(views)) for i in range(views[0].shape[0])]
    total = torch.zeros((), dtype=views[0].dtype)
    for v, i in entries:
        anchor = z[v][i]
        others = [(u, k) for u, k in entries if (u, k) != (v, i)]
        log_denominator = torch.logsumexp(torch.stack([anchor @ z[u][k] / temperature for u, k in others]), 0)
        positives = [(u, k) for u, k in others if k == i or (labels[i] >= 0 and labels[k] == labels[i])]
        anchor_loss = torch.zeros((), dtype=views[0].dtype)
        for u, k in positives:
            anchor_loss = anchor_loss - (anchor @ z[u][k] / temperature - log_denominator)
        total = total + anchor_loss / len(positives)
    return total / len(entries)


LABEL_PATTERNS = {
    "all unlabelled": [-1, -1, -1, -1, -1, -1],
    "one class": [3, 3, 3, 3, 3, 3],
    "mixed, a class of one image, unlabelled": [0, 1, 0, 2, -1, 1],
    "every image its own class": [0, 1, 2, 3, 4, 5],
}


@pytest.mark.parametrize("n_views", [2, 3])
@pytest.mark.parametrize("pattern", list(LABEL_PATTERNS))
def test_loss_and_gradient_match_the_definition(pattern: str, n_views: int) -> None:
    generator = torch.Generator().manual_seed(n_views)
    leaves = [torch.randn(6, 5, dtype=torch.float64, generator=generator, requires_grad=True) for _ in range(n_views)]
    labels = LABEL_PATTERNS[pattern]
    loss = SupConLoss(temperature=0.3)(*leaves, labels=torch.tensor(labels))
    got_grads = torch.autograd.grad(loss, leaves)
    expected = reference_supcon(leaves, labels, 0.3)
    expected_grads = torch.autograd.grad(expected, leaves)
    torch.testing.assert_close(loss, expected, rtol=1e-10, atol=1e-12)
    for got, want in zip(got_grads, expected_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


def test_without_shared_classes_supcon_is_nt_xent() -> None:
    views = [torch.randn(6, 5, dtype=torch.float64) for _ in range(2)]
    ntxent = NTXentLoss(0.5)(*views)
    for labels in (LABEL_PATTERNS["all unlabelled"], LABEL_PATTERNS["every image its own class"]):
        torch.testing.assert_close(SupConLoss(0.5)(*views, labels=torch.tensor(labels)), ntxent)


def test_accuracy_does_not_count_same_class_images_as_rivals() -> None:
    # images 0 and 1 share a class and lie nearer each other than their own second views; image 2 is far away:
    # with the classes known, each view's other view outranks every image of another class (top-1 = 1); without,
    # the other image of the class is a rival that wins
    first = torch.tensor([[1.0, 0.0], [1.0, 0.01], [-1.0, 0.0]])
    second = torch.tensor([[1.0, 0.2], [1.0, -0.2], [-1.0, 0.1]])
    _, labelled = SupConLoss(0.5).loss_and_accuracy(first, second, labels=torch.tensor([0, 0, 1]), ks=(1,))
    _, unlabelled = SupConLoss(0.5).loss_and_accuracy(first, second, labels=torch.tensor([-1, -1, -1]), ks=(1,))
    assert labelled.tolist() == [1.0]
    assert unlabelled.item() < 1.0


def test_missing_labels_and_a_queue_are_refused_in_one_line() -> None:
    with pytest.raises(UserError, match="labels"):
        SupConLoss(0.5)(torch.randn(4, 3), torch.randn(4, 3))
    with pytest.raises(UserError, match="--queue-size"):
        build_config({}, {"loss": "supcon", "queue_size": 64, "dataset": "cifar10"})


def _pretrain(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-m", "simclr", "pretrain", *args], env=env, text=True, capture_output=True, timeout=300
    )


TINY_RUN = ["--image-size", "8", "--batch-size", "8", "--max-steps", "3", "--epochs", "1", "--precision", "32"]
TINY_RUN += ["--workers", "0", "--knn-every-epochs", "0", "--backbone", "resnet18", "--quiet"]


@pytest.mark.slow
def test_pretrain_with_supcon_on_a_labelled_folder(tmp_path: Path) -> None:
    folder = noise_pngs(tmp_path / "data", 24, classes=("c0", "c1", "c2"), size=16)
    run = tmp_path / "run"
    done = _pretrain(
        "--dataset", "imagefolder", "--data-dir", str(folder), "--loss", "supcon", *TINY_RUN, "--out", str(run)
    )
    assert done.returncode == 0, done.stderr
    with open(run / "metrics.csv", newline="") as handle:
        losses = [float(row["train_loss"]) for row in csv.DictReader(handle) if row["train_loss"]]
    assert len(losses) == 3 and all(math.isfinite(loss) for loss in losses)
    module = SimCLRModule.load_from_checkpoint(run / "checkpoints" / "last.ckpt")
    assert type(module.criterion) is SupConLoss


def test_the_training_step_hands_the_batch_labels_to_supcon() -> None:
    """The same step (same weights, same views) with the labels of the batch changed: the loss changes, so the
    labels reach the loss; a batch without them is refused in one line. (BatchNorm normalises a training batch
    with its own statistics: the running ones the steps update do not change the next step's output.)"""
    config = build_config({}, {"dataset": "cifar10", "loss": "supcon", "batch_size": 8, "precision": "32"})
    module = SimCLRModule.from_config(config, image_size=16, steps_per_epoch=1, channels_last=False)
    images = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    step_losses = [
        float(module.training_step({"images": images, "labels": labels}, 0).detach())
        for labels in (torch.full((8,), -1), torch.tensor([0, 0, 0, 0, 1, 1, 1, 1]), torch.full((8,), -1))
    ]
    unlabelled, two_classes, unlabelled_again = step_losses
    assert unlabelled == unlabelled_again  # the step's views are drawn from (seed, step): the same step twice
    assert abs(two_classes - unlabelled) > 1e-3
    with pytest.raises(UserError, match="labels"):
        module.training_step({"images": images}, 0)


@pytest.mark.slow
def test_pretrain_refuses_supcon_without_labels(tmp_path: Path) -> None:
    folder = tmp_path / "flat"
    noise_pngs(tmp_path / "nested", 24, classes=("only",), size=16)
    (tmp_path / "nested" / "only").rename(folder)  # images straight in the folder: no classes
    done = _pretrain("--dataset", "imagefolder", "--data-dir", str(folder), "--loss", "supcon", *TINY_RUN)
    assert done.returncode == 2
    assert "--loss supcon" in done.stderr and "--loss ntxent" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
