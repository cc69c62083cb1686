"""Weighted k-nearest-neighbour classification on L2-normalised features.

The protocol of Wu et al. 2018 (arXiv:1805.01978), used by lightly and solo-learn as an online monitor:
cosine similarity to every bank feature, the k most similar neighbours vote for their class with weight
exp(similarity / T). It needs no training, so it measures the representation alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from simclr.evaluation.metrics import classification_metrics
from simclr.evaluation.recording import base_protocol
from simclr.evaluation.results import make_entry
from simclr.evaluation.session import EvalSession

log = logging.getLogger("simclr")


BANK_CHUNK = 65_536  # bank rows compared at once: a streamed split's bank need not fit in memory twice


@torch.no_grad()
def knn_class_scores(
    bank: Tensor,
    bank_labels: Tensor,
    queries: Tensor,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.1,
    chunk_size: int = 1024,
    bank_chunk: int = BANK_CHUNK,
) -> Tensor:
    """Per-class vote totals ``(Q, num_classes)`` of the weighted kNN classifier.

    The bank is read ``bank_chunk`` rows at a time (each normalised once) and every query keeps its ``k``
    most similar neighbours so far, so a bank bigger than memory (memory-mapped features) is never copied
    whole; with one chunk this is a plain top-k over all similarities.
    """
    queries = F.normalize(queries.float(), dim=1)
    if bank.shape[0] == 0:
        return torch.zeros(queries.shape[0], num_classes)
    k = min(k, bank.shape[0])
    starts = range(0, queries.shape[0], chunk_size)
    best_sim: list[Tensor | None] = [None] * len(starts)
    best_idx: list[Tensor | None] = [None] * len(starts)
    for offset in range(0, bank.shape[0], bank_chunk):
        part = F.normalize(bank[offset : offset + bank_chunk].float(), dim=1)
        for n, start in enumerate(starts):
            sim = queries[start : start + chunk_size] @ part.T
            top_sim, top_idx = sim.topk(min(k, sim.shape[1]), dim=1)
            top_idx += offset
            previous_sim, previous_idx = best_sim[n], best_idx[n]
            if previous_sim is not None and previous_idx is not None:
                joined = torch.cat([previous_sim, top_sim], dim=1)
                top_sim, order = joined.topk(min(k, joined.shape[1]), dim=1)
                top_idx = torch.cat([previous_idx, top_idx], dim=1).gather(1, order)
            best_sim[n], best_idx[n] = top_sim, top_idx
    scores = []
    for kept_sim, kept_idx in zip(best_sim, best_idx, strict=True):
        assert kept_sim is not None and kept_idx is not None
        weights = (kept_sim / temperature).exp()
        votes = torch.zeros(kept_sim.shape[0], num_classes, dtype=weights.dtype, device=weights.device)
        votes.scatter_add_(1, bank_labels[kept_idx], weights)
        scores.append(votes)
    return torch.cat(scores) if scores else torch.zeros(0, num_classes)


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


def capped_ks(ks: Sequence[int], bank_size: int) -> tuple[list[int], list[str]]:
    """The k values that can run on a bank of ``bank_size`` images (each capped there, repeats dropped, order
    kept) and a note per capped k. A k above the bank size votes with the whole bank, so it is the bank size
    that ran, and that is what the results must say.

    >>> capped_ks([100000, 20, 77], 77)
    ([77, 20], ['capped from 100000 to 77 (bank size)'])
    """
    ran = list(dict.fromkeys(min(k, bank_size) for k in ks))
    notes = [f"capped from {k} to {bank_size} (bank size)" for k in ks if k > bank_size]
    return ran, notes


def run_knn(session: EvalSession, *, ks: Sequence[int] = (200, 20), temperature: float = 0.1) -> dict[str, Any]:
    """Weighted kNN of a run: the training split is the bank, the test split the queries. Returns its entry
    of the results, with one block of classification metrics per k that ran (``k200``, ``k20``).

    A k larger than the bank runs as the bank size: the block is keyed by that k (``--k 100000`` on 77
    images gives ``k77``), the protocol's ``k`` lists the k values that ran, ``k_requested`` those asked
    for, and ``k_capped`` says which were capped (also logged)."""
    session.splits.require_classes("kNN classification")
    start = time.perf_counter()
    train = session.features("train")
    test = session.features("test")
    store = session.splits["train"]
    ran, capped = capped_ks(ks, train.features.shape[0])
    for note in capped:
        log.warning("knn: k %s", note)
    metrics: dict[str, Any] = {}
    for k in ran:
        scores = knn_class_scores(train.features, train.labels, test.features, store.num_classes, k, temperature)
        # the votes of a test image, normalised, are its class probabilities (for AUROC)
        votes = scores / scores.sum(1, keepdim=True).clamp_min(1e-12)
        metrics[f"k{k}"] = classification_metrics(scores, test.labels, store.class_names, probabilities=votes)
    protocol = {
        **base_protocol(session),
        "k": ran,
        "k_requested": list(ks),
        **({"k_capped": "; ".join(capped)} if capped else {}),
        "temperature": temperature,
        "similarity": "cosine on L2-normalised backbone features (eval mode, no augmentation)",
        "vote": "sum of exp(similarity / T) over the k nearest training images (Wu et al. 2018)",
        "bank": "the whole training split",
    }
    return make_entry("knn", protocol, metrics, time.perf_counter() - start)
