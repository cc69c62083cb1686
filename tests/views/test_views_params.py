"""sample_view_params: distribution of the SimCLR parameters and reproducibility."""

import math
from dataclasses import fields

import pytest
import torch

from simclr.views.config import ViewConfig
from simclr.views.params import ViewParams, sample_view_params

N = 20_000


def _draw(config: ViewConfig, n: int = N, hw: tuple[int, int] = (32, 32), seed: int = 0) -> ViewParams:
    return sample_view_params(n, hw, config, torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def default_params() -> ViewParams:
    return _draw(ViewConfig(size=32, blur_p=0.5))


def _expected_area_square(scale: tuple[float, float], ratio_max: float) -> float:
    """E[area fraction] of accepted crops of a square image with a symmetric log-ratio range.

    With s ~ U(a, b) and |log r| ~ U(0, L), a crop fits iff s <= c = exp(-|log r|), so
    E[s | fit] = E[(c^2 - a^2) / 2] / E[c - a] (rejections are retried; the fallback has
    probability ~1e-8 and is ignored).
    """
    a, _ = scale
    big_l = math.log(ratio_max)
    mean_c = (1 - math.exp(-big_l)) / big_l
    mean_c2 = (1 - math.exp(-2 * big_l)) / (2 * big_l)
    return (mean_c2 - a * a) / (2 * (mean_c - a))


def test_shapes_dtypes(default_params: ViewParams) -> None:
    p = default_params
    assert p.batch_size == N
    assert p.crop_boxes.shape == (N, 4) and p.crop_boxes.dtype == torch.float32
    assert p.jitter.shape == (N, 4) and p.jitter.dtype == torch.float32
    assert p.blur_sigma.shape == (N,)
    for name in ("flip", "jitter_on", "grayscale", "blur_on"):
        t = getattr(p, name)
        assert t.shape == (N,) and t.dtype == torch.bool


def test_crop_boxes_statistics(default_params: ViewParams) -> None:
    top, left, h, w = default_params.crop_boxes.double().unbind(1)
    eps = 1e-6
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + h <= 1 + eps).all() and (left + w <= 1 + eps).all()
    area = h * w
    assert area.min() >= 0.08 - eps and area.max() <= 1 + eps
    ratio = w / h  # square source: fractions and pixels have the same ratio
    assert ratio.min() >= 3 / 4 - eps and ratio.max() <= 4 / 3 + eps
    assert area.mean().item() == pytest.approx(_expected_area_square((0.08, 1.0), 4 / 3), abs=0.01)
    # Log ratio is symmetric around 0, position uniform over the free range.
    assert abs(ratio.log().mean().item()) < 0.01
    free = (1 - h) > 0.05
    assert (top[free] / (1 - h[free])).mean().item() == pytest.approx(0.5, abs=0.02)
    assert (left[free] / (1 - w[free])).mean().item() == pytest.approx(0.5, abs=0.02)
    # Small crops really occur (the scale range is used, not just large crops).
    assert (area < 0.1).float().mean() > 0.005


def test_non_square_source_ratio_in_pixels() -> None:
    p = _draw(ViewConfig(size=32), n=4000, hw=(24, 48))
    top, left, h, w = p.crop_boxes.double().unbind(1)
    ratio_px = (w * 48) / (h * 24)
    assert ratio_px.min() >= 3 / 4 - 1e-5 and ratio_px.max() <= 4 / 3 + 1e-5
    assert (top + h <= 1 + 1e-6).all() and (left + w <= 1 + 1e-6).all()


def test_crop_fallback_is_central_and_clipped_to_ratio() -> None:
    # No attempt can fit (area ~ whole image with ratio >= 2), so every box is the fallback:
    # full width, height = width / 2, centred vertically.
    cfg = ViewConfig(size=32, crop_scale=(0.99, 1.0), crop_ratio=(2.0, 3.0))
    p = _draw(cfg, n=64)
    expected = torch.tensor([0.25, 0.0, 0.5, 1.0]).expand(64, 4)
    torch.testing.assert_close(p.crop_boxes, expected)


def test_bernoulli_rates(default_params: ViewParams) -> None:
    p = default_params
    assert p.flip.float().mean().item() == pytest.approx(0.5, abs=0.02)
    assert p.jitter_on.float().mean().item() == pytest.approx(0.8, abs=0.015)
    assert p.grayscale.float().mean().item() == pytest.approx(0.2, abs=0.015)
    assert p.blur_on.float().mean().item() == pytest.approx(0.5, abs=0.02)
    # Independent draws: flips are not correlated with jitter.
    both = (p.flip & p.jitter_on).float().mean().item()
    assert both == pytest.approx(0.4, abs=0.02)


def test_blur_off_by_default() -> None:
    assert not _draw(ViewConfig(size=32), n=2000).blur_on.any()


def _check_uniform(x: torch.Tensor, low: float, high: float) -> None:
    x = x.double()
    width = high - low
    assert x.min() >= low - 1e-6 and x.max() <= high + 1e-6
    assert x.min() <= low + 0.01 * width and x.max() >= high - 0.01 * width
    assert x.mean().item() == pytest.approx((low + high) / 2, abs=0.02 * width)
    assert x.var().item() == pytest.approx(width**2 / 12, rel=0.05)


def test_jitter_and_sigma_ranges(default_params: ViewParams) -> None:
    b, c, s, h = default_params.jitter.unbind(1)
    _check_uniform(b, 0.6, 1.4)
    _check_uniform(c, 0.6, 1.4)
    _check_uniform(s, 0.6, 1.4)
    _check_uniform(h, -0.1, 0.1)
    _check_uniform(default_params.blur_sigma, 0.1, 2.0)


def test_custom_strength_respected() -> None:
    cfg = ViewConfig(size=32, jitter_strength=1.0, brightness=1.5, hue=0.05, blur_sigma=(0.5, 1.0))
    p = _draw(cfg, n=N)
    b, c, s, h = p.jitter.unbind(1)
    _check_uniform(b, 0.0, 2.5)
    _check_uniform(c, 0.2, 1.8)
    _check_uniform(s, 0.2, 1.8)
    _check_uniform(h, -0.05, 0.05)
    _check_uniform(p.blur_sigma, 0.5, 1.0)


def test_custom_probabilities_and_crop_range() -> None:
    cfg = ViewConfig(size=32, flip_p=0.0, jitter_p=1.0, grayscale_p=0.0, crop_scale=(0.5, 0.6))
    p = _draw(cfg, n=2000)
    assert not p.flip.any() and p.jitter_on.all() and not p.grayscale.any()
    area = p.crop_boxes[:, 2] * p.crop_boxes[:, 3]
    assert area.min() >= 0.5 - 1e-6 and area.max() <= 0.6 + 1e-6


def test_every_image_gets_its_own_parameters() -> None:
    p = _draw(ViewConfig(size=32), n=256)
    assert torch.unique(p.crop_boxes, dim=0).shape[0] == 256
    assert torch.unique(p.jitter, dim=0).shape[0] == 256
    assert 0 < p.flip.sum() < 256


def test_fixed_seed_reproduces_and_other_seed_differs() -> None:
    cfg = ViewConfig(size=32, blur_p=0.5)
    a, b, c = _draw(cfg, n=128, seed=7), _draw(cfg, n=128, seed=7), _draw(cfg, n=128, seed=8)
    for f in fields(ViewParams):
        assert torch.equal(getattr(a, f.name), getattr(b, f.name)), f.name
    assert not torch.equal(a.crop_boxes, c.crop_boxes)
    assert not torch.equal(a.jitter, c.jitter)


def test_generator_state_advances() -> None:
    g = torch.Generator().manual_seed(0)
    cfg = ViewConfig(size=32)
    first = sample_view_params(8, (32, 32), cfg, g)
    second = sample_view_params(8, (32, 32), cfg, g)
    assert not torch.equal(first.crop_boxes, second.crop_boxes)


def test_narrow_and_to() -> None:
    p = _draw(ViewConfig(size=32), n=10)
    q = p.narrow(4, 3).to("cpu")
    assert q.batch_size == 3
    assert torch.equal(q.jitter, p.jitter[4:7])
    assert torch.equal(q.grayscale, p.grayscale[4:7])
