"""Spirograph's renderer and its views (Foster et al. 2020, "Improving Transformation Invariance in
Contrastive Representation Learning", arXiv:2010.09515): a picture is a function of explicit parameters, so
a view of it is a re-render with new nuisance parameters (:class:`SpirographViews`); the dataset of stored
renders is :mod:`simclr.data.spirograph`.

Each image is a hypotrochoid drawn from 10 parameters. Four are *generative factors*, the
regression targets of the downstream task: ``(m, b, sigma, rfore)``. Six are *nuisance*
parameters, re-drawn independently for every view during contrastive training:
``(h, rback, gfore, gback, bfore, bback)``.

Rendering (batched, differentiable w.r.t. every parameter): with ``a = m + b - h`` and 40 values
of ``t`` evenly spaced over ``[0, 2 pi]``::

    x(t) = (a - b) cos t + h cos((a - b) t / b)
    y(t) = (a - b) sin t - h sin((a - b) t / b)

On a ``size x size`` grid spanning ``[-6, 6]^2`` (columns: x from -6 to 6; rows: y from +6 at the
top to -6 at the bottom, so the picture is the usual maths plot) each point adds
``exp(-d^2 / sigma)``; the sum is averaged over points and divided by its per-image maximum,
giving an intensity ``v`` in (0, 1]. The image is ``v * foreground + (1 - v) * background`` with
``foreground = (rfore, gfore, bfore)`` and ``background = (rback, gback, bback)``.

The Gaussian is separable, ``exp(-(dx^2 + dy^2)/sigma) = exp(-dx^2/sigma) exp(-dy^2/sigma)``, so
the sum over points is one batched matrix product ``(B, S, 40) @ (B, 40, S)``.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import nn

from simclr.errors import UserError

__all__ = [
    "GENERATIVE_NAMES",
    "GENERATIVE_RANGES",
    "NUISANCE_NAMES",
    "NUISANCE_RANGES",
    "N_POINTS",
    "SpirographViews",
    "render_spirograph",
    "sample_generative",
    "sample_nuisance",
]

GENERATIVE_NAMES: tuple[str, ...] = ("m", "b", "sigma", "rfore")
GENERATIVE_RANGES: tuple[tuple[float, float], ...] = (
    (2.0, 5.0),
    (0.1, 1.1),
    (0.25, 1.0),
    (0.4, 1.0),
)
NUISANCE_NAMES: tuple[str, ...] = ("h", "rback", "gfore", "gback", "bfore", "bback")
NUISANCE_RANGES: tuple[tuple[float, float], ...] = (
    (0.5, 2.5),
    (0.0, 0.6),
    (0.4, 1.0),
    (0.0, 0.6),
    (0.4, 1.0),
    (0.0, 0.6),
)
N_POINTS = 40
GRID_EXTENT = 6.0


def _uniform(
    n: int,
    ranges: tuple[tuple[float, float], ...],
    generator: torch.Generator | None,
    device: torch.device | str | None,
    dtype: torch.dtype,
) -> torch.Tensor:
    draw_device = generator.device if generator is not None else (device or "cpu")
    u = torch.rand((n, len(ranges)), generator=generator, device=draw_device, dtype=dtype)
    lo = torch.tensor([r[0] for r in ranges], device=draw_device, dtype=dtype)
    hi = torch.tensor([r[1] for r in ranges], device=draw_device, dtype=dtype)
    out = lo + u * (hi - lo)
    return out if device is None else out.to(device)


def sample_generative(
    n: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``(n, 4)`` generative factors ``(m, b, sigma, rfore)`` drawn uniformly from their ranges."""
    return _uniform(n, GENERATIVE_RANGES, generator, device, dtype)


def sample_nuisance(
    n: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``(n, 6)`` nuisance parameters ``(h, rback, gfore, gback, bfore, bback)`` drawn uniformly.

    Drawn on the generator's device, then moved to ``device`` when given.
    """
    return _uniform(n, NUISANCE_RANGES, generator, device, dtype)


def render_spirograph(factors: torch.Tensor, nuisance: torch.Tensor, size: int = 32) -> torch.Tensor:
    """Render ``(B, 3, size, size)`` images in [0, 1] from ``(B, 4)`` factors and ``(B, 6)``
    nuisance parameters; differentiable w.r.t. both. Computes in the inputs' (promoted floating)
    dtype on their device."""
    if factors.dim() != 2 or factors.shape[1] != 4:
        raise ValueError(f"factors must be (B, 4), got {tuple(factors.shape)}")
    if nuisance.dim() != 2 or nuisance.shape[1] != 6 or nuisance.shape[0] != factors.shape[0]:
        raise ValueError(f"nuisance must be ({factors.shape[0]}, 6), got {tuple(nuisance.shape)}")
    dtype = torch.promote_types(factors.dtype, nuisance.dtype)
    if not dtype.is_floating_point:
        dtype = torch.float32
    factors = factors.to(dtype)
    nuisance = nuisance.to(device=factors.device, dtype=dtype)
    device = factors.device

    m, b, sigma, rfore = factors.unbind(1)
    h, rback, gfore, gback, bfore, bback = nuisance.unbind(1)
    t = torch.linspace(0.0, 2.0 * math.pi, N_POINTS, device=device, dtype=dtype)
    a = m + b - h
    amb = (a - b)[:, None]  # (B, 1)
    ratio = amb / b[:, None]
    x = amb * torch.cos(t) + h[:, None] * torch.cos(ratio * t)  # (B, T)
    y = amb * torch.sin(t) - h[:, None] * torch.sin(ratio * t)

    cols = torch.linspace(-GRID_EXTENT, GRID_EXTENT, size, device=device, dtype=dtype)
    rows = torch.linspace(GRID_EXTENT, -GRID_EXTENT, size, device=device, dtype=dtype)
    inv_sigma = (1.0 / sigma)[:, None, None]
    ex = torch.exp(-((cols[None, None, :] - x[:, :, None]) ** 2) * inv_sigma)  # (B, T, S)
    ey = torch.exp(-((rows[None, None, :] - y[:, :, None]) ** 2) * inv_sigma)  # (B, T, S)
    intensity = torch.bmm(ey.transpose(1, 2), ex) / N_POINTS  # (B, S rows, S cols)
    peak = intensity.amax(dim=(1, 2), keepdim=True).clamp_min(torch.finfo(dtype).tiny)
    v = (intensity / peak).unsqueeze(1)  # (B, 1, S, S)

    fg = torch.stack((rfore, gfore, bfore), dim=1)[:, :, None, None]
    bg = torch.stack((rback, gback, bback), dim=1)[:, :, None, None]
    return v * fg + (1.0 - v) * bg


class SpirographViews(nn.Module):
    """Contrastive views of Spirograph images: every view re-renders the same generative factors
    with freshly drawn nuisance parameters. Output views are float32, normalised with mean/std 0.5
    (i.e. in [-1, 1]) and channels_last."""

    input_key: ClassVar[str] = "factors"
    """The batch entry the views are made from: the generative factors, rendered anew for every view."""
    invariance_parameter_names: ClassVar[tuple[str, ...]] = NUISANCE_NAMES
    """The columns of :meth:`redraw_invariance_params` and of the leaf of :meth:`views_with_grad`."""

    def __init__(self, n_views: int = 2, size: int = 32, mean: float = 0.5, std: float = 0.5) -> None:
        super().__init__()
        if n_views < 1:
            raise ValueError(f"n_views must be >= 1, got {n_views}")
        self.n_views = n_views
        self.size = size
        self.mean = mean
        self.std = std

    def render_with(self, factors: torch.Tensor, nuisance: torch.Tensor) -> torch.Tensor:
        """One normalised, channels_last float32 view for explicit nuisance parameters."""
        dtype = torch.float64 if nuisance.dtype == torch.float64 else torch.float32  # float64 for gradient checks
        img = render_spirograph(factors.to(dtype), nuisance.to(dtype), self.size)
        img = (img - self.mean) / self.std
        return img.contiguous(memory_format=torch.channels_last)

    def forward(
        self, factors: torch.Tensor, generator: torch.Generator | None = None, partners: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        if partners is not None:
            raise UserError("--positives class needs class labels; Spirograph has regression factors, not classes")
        b = factors.shape[0]
        return [
            self.render_with(factors, sample_nuisance(b, generator, device=factors.device)) for _ in range(self.n_views)
        ]

    def views_with_grad(
        self, factors: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The views of :meth:`forward` (same generator, same pixels) plus the first view's 6 nuisance
        parameters as a leaf with ``requires_grad`` (the gradient penalty of Foster et al. 2020)."""
        b = factors.shape[0]
        nuisances = [sample_nuisance(b, generator, device=factors.device) for _ in range(self.n_views)]
        leaf = nuisances[0].detach().clone().requires_grad_(True)
        nuisances[0] = leaf
        return [self.render_with(factors, nuisance) for nuisance in nuisances], leaf

    def redraw_invariance_params(
        self, batch: int, draws: int, generator: torch.Generator | None, device: torch.device
    ) -> torch.Tensor:
        """``(draws, batch, 6)`` fresh nuisance parameters."""
        return sample_nuisance(draws * batch, generator, device=device).reshape(draws, batch, -1)

    def extra_repr(self) -> str:
        return f"n_views={self.n_views}, size={self.size}"
