"""The classifiers' loss: cross-entropy, or the sthalles/SimCLR fork's focal loss, against hand computations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from simclr.evaluation.protocols.linear import linear_probe
from simclr.losses.classification import classification_loss


def test_focal_loss_is_its_definition_and_gamma_0_is_cross_entropy() -> None:
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
    targets = torch.tensor([0, 1])
    expected = 0.0
    for row, target in zip(logits.tolist(), targets.tolist(), strict=True):
        p = math.exp(row[target]) / sum(math.exp(v) for v in row)
        expected += -((1 - p) ** 2) * math.log(p)
    assert float(classification_loss(logits, targets, 2.0)) == pytest.approx(expected / 2, rel=1e-6)
    assert torch.equal(classification_loss(logits, targets), F.cross_entropy(logits, targets))


def test_a_focal_probe_fits_separable_features() -> None:
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(3).repeat_interleave(40)
    features = torch.randn(120, 8, generator=generator) + 4 * F.one_hot(labels, 8).float()
    result = linear_probe(features[::2], labels[::2], features[1::2], labels[1::2], num_classes=3, focal_gamma=2.0)
    assert result.metrics["top1"] == 1.0
