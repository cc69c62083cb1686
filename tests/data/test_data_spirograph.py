"""Spirograph, the dataset: stores of renders from seeded factors."""

from __future__ import annotations

import torch

from simclr.data.spirograph import make_spirograph_store
from simclr.views.spirograph import render_spirograph, sample_generative, sample_nuisance


def test_store_determinism_and_content() -> None:
    a = make_spirograph_store(64, seed=3, size=16)
    b = make_spirograph_store(64, seed=3, size=16)
    c = make_spirograph_store(64, seed=4, size=16)
    assert a.images.shape == (64, 3, 16, 16) and a.images.dtype == torch.uint8
    assert a.labels.tolist() == [-1] * 64 and a.class_names == [] and not a.has_labels
    assert a.factors is not None and a.factors.shape == (64, 4) and a.factors.dtype == torch.float32
    assert torch.equal(a.images, b.images) and torch.equal(a.factors, b.factors)
    assert not torch.equal(a.factors, c.factors)
    # Factors are the seed's first draw; the stored pictures use them.
    gen = torch.Generator().manual_seed(3)
    torch.testing.assert_close(a.factors, sample_generative(64, gen))
    nuisance = sample_nuisance(64, gen)
    ref = (render_spirograph(a.factors, nuisance, 16) * 255).round().to(torch.uint8)
    assert torch.equal(ref, a.images)


def test_store_limit_is_subset_of_full_set() -> None:
    full = make_spirograph_store(200, seed=3, size=8)
    part = make_spirograph_store(200, seed=3, size=8, limit=30, limit_seed=1)
    assert len(part) == 30
    rows = {tuple(r) for r in full.factors.tolist()}
    assert all(tuple(r) in rows for r in part.factors.tolist())
