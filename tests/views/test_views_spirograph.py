"""Spirograph's renderer, its parameter sampling and its views (re-renders)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from simclr.data.spirograph import make_spirograph_store
from simclr.views.spirograph import (
    GENERATIVE_NAMES,
    GENERATIVE_RANGES,
    NUISANCE_RANGES,
    SpirographViews,
    render_spirograph,
    sample_generative,
    sample_nuisance,
)


def _reference(factors: np.ndarray, nuisance: np.ndarray, size: int) -> np.ndarray:
    """Direct per-pixel, per-point evaluation of the documented formula (no separability)."""
    m, b, sigma, rfore = factors
    h, rback, gfore, gback, bfore, bback = nuisance
    a = m + b - h
    t = np.linspace(0, 2 * math.pi, 40)
    x = (a - b) * np.cos(t) + h * np.cos((a - b) * t / b)
    y = (a - b) * np.sin(t) - h * np.sin((a - b) * t / b)
    grid = np.linspace(-6, 6, size)
    v = np.zeros((size, size))
    for r in range(size):
        gy = grid[size - 1 - r]  # row 0 is the top, y = +6
        for c in range(size):
            gx = grid[c]
            v[r, c] = np.mean(np.exp(-((gx - x) ** 2 + (gy - y) ** 2) / sigma))
    v /= v.max()
    fg = np.array([rfore, gfore, bfore])
    bg = np.array([rback, gback, bback])
    return v[None] * fg[:, None, None] + (1 - v[None]) * bg[:, None, None]


def test_matches_reference_formula() -> None:
    gen = torch.Generator().manual_seed(0)
    f = sample_generative(3, gen, dtype=torch.float64)
    n = sample_nuisance(3, gen, dtype=torch.float64)
    out = render_spirograph(f, n, size=12)
    assert out.dtype == torch.float64
    for i in range(3):
        ref = _reference(f[i].numpy(), n[i].numpy(), 12)
        np.testing.assert_allclose(out[i].numpy(), ref, rtol=1e-10, atol=1e-12)


def test_shapes_ranges_and_sampling() -> None:
    gen = torch.Generator().manual_seed(1)
    f = sample_generative(500, gen)
    n = sample_nuisance(500, gen)
    assert f.shape == (500, 4) and n.shape == (500, 6) and f.dtype == torch.float32
    for col, (lo, hi) in enumerate(GENERATIVE_RANGES):
        assert lo <= f[:, col].min() and f[:, col].max() <= hi
        assert f[:, col].max() - f[:, col].min() > 0.8 * (hi - lo)  # spans its range
    for col, (lo, hi) in enumerate(NUISANCE_RANGES):
        assert lo <= n[:, col].min() and n[:, col].max() <= hi
    img = render_spirograph(f[:64], n[:64], size=32)
    assert img.shape == (64, 3, 32, 32)
    assert img.min() >= 0.0 and img.max() <= 1.0
    assert GENERATIVE_NAMES == ("m", "b", "sigma", "rfore")


def test_known_case_foreground_at_peak_background_far_away() -> None:
    # m=4, b=1, sigma=0.25, rfore=0.9; h=1 and distinct colours.
    f = torch.tensor([[4.0, 1.0, 0.25, 0.9]], dtype=torch.float64)
    n = torch.tensor([[1.0, 0.1, 0.8, 0.2, 0.7, 0.3]], dtype=torch.float64)
    img = render_spirograph(f, n, size=32)[0]
    fg = torch.tensor([0.9, 0.8, 0.7], dtype=torch.float64)
    bg = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)
    # The brightest pixel (v = 1) is exactly the foreground colour.
    dist_to_bg = (img - bg[:, None, None]).abs().sum(0)
    r, c = divmod(int(dist_to_bg.argmax()), 32)
    torch.testing.assert_close(img[:, r, c], fg)
    # The curve has radius <= |m - h| + h = 4: the corners are background.
    torch.testing.assert_close(img[:, 0, 0], bg, atol=1e-6, rtol=0)
    torch.testing.assert_close(img[:, 31, 31], bg, atol=1e-6, rtol=0)
    # Here x = 3 cos t + cos 3t, y = 3 sin t - sin 3t. t = 0 lies at (x, y) = (4, 0), so the
    # nearest pixel (row 15 is y = +0.19, column 26 is x = 4.06) is bright; the curve stays at
    # least 2 away from the origin, so the centre is dark.
    v = (img[0] - 0.1) / (0.9 - 0.1)
    assert v[15, 26] > 0.5
    assert v[15, 15] < 1e-3 and v[16, 16] < 1e-3


def test_gradcheck_wrt_nuisance_and_factors() -> None:
    gen = torch.Generator().manual_seed(2)
    f = sample_generative(2, gen, dtype=torch.float64).requires_grad_(True)
    n = sample_nuisance(2, gen, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda nn_: render_spirograph(f.detach(), nn_, 6), (n,))
    assert torch.autograd.gradcheck(lambda ff: render_spirograph(ff, n.detach(), 6), (f,))


def test_gradient_of_h_is_nonzero() -> None:
    f = torch.tensor([[3.0, 0.5, 0.5, 0.9]])
    n = torch.tensor([[1.5, 0.1, 0.8, 0.2, 0.7, 0.3]], requires_grad=True)
    render_spirograph(f, n, 16).square().sum().backward()
    assert n.grad is not None and torch.isfinite(n.grad).all()
    assert n.grad[0].abs().min() > 0


def test_changing_nuisance_changes_image_not_factors() -> None:
    f = torch.tensor([[3.0, 0.5, 0.5, 0.9]])
    f_before = f.clone()
    n = torch.tensor([[1.5, 0.1, 0.8, 0.2, 0.7, 0.3]])
    base = render_spirograph(f, n, 16)
    for k in range(6):
        changed = n.clone()
        changed[0, k] += 0.1
        assert not torch.allclose(render_spirograph(f, changed, 16), base), k
    assert torch.equal(f, f_before)


def test_views_module() -> None:
    views = SpirographViews(n_views=3, size=16)
    store = make_spirograph_store(8, seed=0, size=16)
    factors_before = store.factors.clone()
    out = views(store.factors, torch.Generator().manual_seed(0))
    assert len(out) == 3
    for v in out:
        assert v.shape == (8, 3, 16, 16) and v.dtype == torch.float32
        assert v.is_contiguous(memory_format=torch.channels_last)
        assert v.min() >= -1.0 and v.max() <= 1.0
    assert not torch.allclose(out[0], out[1])  # fresh nuisance per view
    assert torch.equal(store.factors, factors_before)
    again = views(store.factors, torch.Generator().manual_seed(0))
    assert all(torch.equal(x, y) for x, y in zip(out, again, strict=True))
    n = sample_nuisance(8, torch.Generator().manual_seed(9))
    explicit = views.render_with(store.factors, n)
    torch.testing.assert_close(explicit, render_spirograph(store.factors, n, 16) * 2 - 1)


def test_bad_shapes_rejected() -> None:
    with pytest.raises(ValueError):
        render_spirograph(torch.zeros(2, 3), torch.zeros(2, 6))
    with pytest.raises(ValueError):
        render_spirograph(torch.zeros(2, 4), torch.zeros(3, 6))
