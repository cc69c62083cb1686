"""The online linear probe (--online-probe) learns from detached features and leaves the backbone's
gradients as they are."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from simclr.training.callbacks import MetricsCSV
from simclr.training.online_probe import OnlineLinearProbe


def test_probe_learns_a_separable_toy_set(tmp_path: Path) -> None:
    generator = torch.Generator().manual_seed(0)
    centres = 4 * torch.randn(4, 16, generator=generator)
    probe = OnlineLinearProbe(16, 4, MetricsCSV(tmp_path / "metrics.csv"))
    for step in range(60):
        labels = torch.randint(0, 4, (32,), generator=generator)
        labels[0] = -1  # an unlabelled image is left out
        views = [centres[labels.clamp(min=0)] + torch.randn(32, 16, generator=generator) for _ in range(2)]
        probe.update(torch.cat(views), labels)
        if step == 49:
            probe.epoch_top1()  # the last 10 steps are scored
    assert probe.epoch_top1() > 0.9  # chance is 0.25


def test_backbone_gradients_are_the_same_with_the_probe(tmp_path: Path) -> None:
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 6))
    images, labels = torch.randn(2 * 5, 3, 2, 2), torch.randint(0, 3, (5,))

    def backbone_grads() -> list[torch.Tensor]:
        backbone.zero_grad()
        backbone(images).pow(2).mean().backward()
        return [param.grad.clone() for param in backbone.parameters()]  # type: ignore[union-attr]

    without = backbone_grads()
    probe = OnlineLinearProbe(6, 3, MetricsCSV(tmp_path / "metrics.csv"))
    probe.attach(backbone)
    before = probe.head.weight.detach().clone()
    with_probe = backbone_grads()
    assert probe._features is not None and not probe._features.requires_grad
    probe.update(probe._features, labels)
    after_probe = [param.grad for param in backbone.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(without, with_probe, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(without, after_probe, strict=True))  # type: ignore[arg-type]
    assert not torch.equal(before, probe.head.weight)  # the head did learn
