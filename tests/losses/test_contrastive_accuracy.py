"""Contrastive top-k accuracy against a hand computation, from the loss's own logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from simclr.losses.ntxent import contrastive_accuracy, ntxent_logits


def test_contrastive_accuracy_matches_a_hand_count() -> None:
    inf = float("-inf")
    logits = torch.tensor(
        [
            [inf, 0.9, 0.1, 0.5],  # positive 1 is the highest: rank 0
            [0.2, inf, 0.8, 0.1],  # positive 0 has one negative above it: rank 1
            [0.3, 0.7, inf, 0.6],  # positive 3 has one negative above it (0.7): rank 1
            [0.9, 0.8, 0.1, inf],  # positive 2 has two negatives above it: rank 2
        ]
    )
    positives = torch.tensor([1, 0, 3, 2])
    accuracy = contrastive_accuracy(logits, positives, ks=(1, 2, 3))
    assert [float(accuracy[k]) for k in (1, 2, 3)] == [0.25, 0.75, 1.0]


def test_other_positives_are_no_rivals_with_more_views() -> None:
    # three identical views of each of two images: each positive ties its sibling and beats the negatives
    z = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), dim=1).repeat(3, 1)
    logits, positives = ntxent_logits(z, z, 0, 3, 0.5)
    assert positives.shape == (6, 2)
    assert float(contrastive_accuracy(logits, positives, ks=(1,))[1]) == 1.0


def test_rows_of_the_loss_layout_find_their_positive() -> None:
    torch.manual_seed(0)
    z = F.normalize(torch.randn(8, 4), dim=1)
    logits, positives = ntxent_logits(z, z, 0, 2, 0.1)
    assert positives.flatten().tolist() == [4, 5, 6, 7, 0, 1, 2, 3]
    assert torch.isinf(logits.diagonal()).all()
    by_hand = (logits.gather(1, positives) >= logits.max(dim=1, keepdim=True).values).float().mean()
    assert float(contrastive_accuracy(logits, positives, ks=(1,))[1]) == float(by_hand)
