"""Weighted k-nearest-neighbour classification on L2-normalised features.

The protocol of Wu et al. 2018 (arXiv:1805.01978), used by lightly and solo-learn as an online monitor:
cosine similarity to every bank feature, the k most similar neighbours vote for their class with weight
exp(similarity / T). It needs no training, so it measures the representation alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


@torch.no_grad()
def knn_class_scores(
    bank: Tensor,
    bank_labels: Tensor,
    queries: Tensor,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.1,
    chunk_size: int = 1024,
) -> Tensor:
    """Per-class vote totals ``(Q, num_classes)`` of the weighted kNN classifier."""
    bank = F.normalize(bank.float(), dim=1)
    queries = F.normalize(queries.float(), dim=1)
    k = min(k, bank.shape[0])
    scores = []
    for start in range(0, queries.shape[0], chunk_size):
        sim = queries[start : start + chunk_size] @ bank.T
        top_sim, top_idx = sim.topk(k, dim=1)
        weights = (top_sim / temperature).exp()
        votes = torch.zeros(sim.shape[0], num_classes, dtype=weights.dtype, device=weights.device)
        votes.scatter_add_(1, bank_labels[top_idx], weights)
        scores.append(votes)
    return torch.cat(scores)


def knn_accuracy(
    bank: Tensor,
    bank_labels: Tensor,
    queries: Tensor,
    query_labels: Tensor,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.1,
) -> float:
    """Top-1 accuracy (fraction in [0, 1]) of the weighted kNN classifier."""
    scores = knn_class_scores(bank, bank_labels, queries, num_classes, k, temperature)
    return float((scores.argmax(1) == query_labels).float().mean())
