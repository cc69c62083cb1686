"""Weighted kNN against a brute-force loop written from the definition (Wu et al. 2018)."""

from __future__ import annotations

import math

import torch

from simclr.evaluation.protocols.knn import knn_class_scores


def brute_force_votes(
    bank: torch.Tensor, bank_labels: torch.Tensor, queries: torch.Tensor, classes: int, k: int, t: float
) -> list[list[float]]:
    result = []
    for q in queries.tolist():
        sims = []
        qn = math.sqrt(sum(v * v for v in q))
        for row, label in zip(bank.tolist(), bank_labels.tolist(), strict=True):
            rn = math.sqrt(sum(v * v for v in row))
            sims.append((sum(a * b for a, b in zip(q, row, strict=True)) / (qn * rn), label))
        sims.sort(key=lambda item: -item[0])
        votes = [0.0] * classes
        for sim, label in sims[:k]:
            votes[label] += math.exp(sim / t)
        result.append(votes)
    return result


def test_scores_match_brute_force() -> None:
    gen = torch.Generator().manual_seed(0)
    bank = torch.randn(60, 7, generator=gen)
    labels = torch.randint(0, 4, (60,), generator=gen)
    queries = torch.randn(9, 7, generator=gen)
    for k, t in ((5, 0.1), (20, 0.5), (200, 0.07)):
        reference = torch.tensor(brute_force_votes(bank, labels, queries, 4, min(k, 60), t))
        # the bank in one piece, and in chunks smaller than k (a bank read piece by piece, as a streamed
        # split's memory-mapped features are): the neighbours kept across chunks are the true k nearest
        for bank_chunk in (65_536, 7, 1):
            ours = knn_class_scores(bank, labels, queries, 4, k=k, temperature=t, chunk_size=4, bank_chunk=bank_chunk)
            assert torch.allclose(ours, reference.to(ours.dtype), rtol=1e-4, atol=1e-4), (k, bank_chunk)


def test_scale_invariance_and_exact_neighbour() -> None:
    """Cosine similarity: rescaling features changes nothing; a query equal to a bank item votes for its class."""
    gen = torch.Generator().manual_seed(1)
    bank = torch.randn(30, 5, generator=gen)
    labels = torch.arange(30) % 3
    queries = bank[[4, 11]] * 7.0
    scores = knn_class_scores(bank * 0.01, labels, queries, 3, k=1)
    assert scores.argmax(1).tolist() == [labels[4].item(), labels[11].item()]
