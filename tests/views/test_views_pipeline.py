"""SimCLRViews: n views of a batch, reproducibility, normalisation and input handling."""

import pytest
import torch

from simclr.errors import UserError
from simclr.views.config import ViewConfig
from simclr.views.params import ViewParams, sample_view_params
from simclr.views.pipeline import SimCLRViews, _as_unit_float


def _images(b: int = 8, hw: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, 3, hw, hw), generator=g, dtype=torch.uint8)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _identity_params(b: int) -> ViewParams:
    return ViewParams(
        crop_boxes=torch.tensor([[0.0, 0.0, 1.0, 1.0]]).repeat(b, 1),
        flip=torch.zeros(b, dtype=torch.bool),
        jitter=torch.tensor([[1.0, 1.0, 1.0, 0.0]]).repeat(b, 1),
        jitter_on=torch.ones(b, dtype=torch.bool),
        grayscale=torch.zeros(b, dtype=torch.bool),
        blur_on=torch.zeros(b, dtype=torch.bool),
        blur_sigma=torch.ones(b),
        vflip=torch.zeros(b, dtype=torch.bool),
        rotation=torch.zeros(b),
    )


@pytest.mark.parametrize("n_views", [2, 3])
def test_uint8_input_gives_n_normalised_channels_last_views(n_views: int) -> None:
    views = SimCLRViews(ViewConfig(size=24), n_views=n_views)(_images(), _gen(0))
    assert len(views) == n_views
    for v in views:
        assert v.shape == (8, 3, 24, 24)
        assert v.dtype == torch.float32
        assert v.is_contiguous(memory_format=torch.channels_last)
        unnormalised = v * 0.5 + 0.5
        assert unnormalised.min() >= -1e-6 and unnormalised.max() <= 1 + 1e-6


def test_float_input_equals_uint8_input() -> None:
    x = _images()
    module = SimCLRViews(ViewConfig(size=32, blur_p=0.5))
    a = module(x, _gen(3))
    b = module(x.float() / 255, _gen(3))
    for va, vb in zip(a, b, strict=True):
        torch.testing.assert_close(va, vb, atol=1e-6, rtol=0)


def test_fixed_seed_is_bit_identical_and_seeds_differ() -> None:
    x = _images()
    module = SimCLRViews(ViewConfig(size=32, blur_p=0.5))
    a, b, c = module(x, _gen(11)), module(x, _gen(11)), module(x, _gen(12))
    assert all(torch.equal(va, vb) for va, vb in zip(a, b, strict=True))
    assert not any(torch.equal(va, vc) for va, vc in zip(a, c, strict=True))


def test_identical_images_get_different_views() -> None:
    x = _images(b=1).repeat(16, 1, 1, 1)
    views = torch.cat(SimCLRViews(ViewConfig(size=32))(x, _gen(0)))  # (32, 3, 32, 32)
    flat = views.flatten(1)
    distances = torch.cdist(flat, flat)
    off_diagonal = distances[~torch.eye(32, dtype=torch.bool)]
    assert off_diagonal.min() > 1e-3


def test_forward_equals_apply_with_the_same_draw() -> None:
    x = _images(b=5)
    cfg = ViewConfig(size=20, blur_p=0.5, grayscale_p=0.5)
    module = SimCLRViews(cfg, n_views=3)
    views = module(x, _gen(5))
    params = sample_view_params(15, (32, 32), cfg, _gen(5))
    for v in range(3):
        expected = module.apply(x.float() / 255, params.narrow(5 * v, 5))
        torch.testing.assert_close(views[v], expected, atol=1e-6, rtol=0)


def test_normalisation_is_x_minus_mean_over_std() -> None:
    x = _images(b=4).float() / 255
    params = sample_view_params(4, (32, 32), ViewConfig(size=32), _gen(1))
    raw = SimCLRViews(ViewConfig(size=32, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)))
    mean, std = (0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261)
    norm = SimCLRViews(ViewConfig(size=32, mean=mean, std=std))
    unnormalised = raw.apply(x, params)
    assert unnormalised.min() >= 0 and unnormalised.max() <= 1
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    torch.testing.assert_close(norm.apply(x, params), (unnormalised - m) / s, atol=1e-6, rtol=0)


def test_identity_params_give_normalised_input() -> None:
    x = _images(b=3).float() / 255
    out = SimCLRViews(ViewConfig(size=32)).apply(x, _identity_params(3))
    assert torch.equal(out, (x - 0.5) / 0.5)
    assert out.is_contiguous(memory_format=torch.channels_last)


def test_pipeline_order_flip_gray_blur() -> None:
    x = _images(b=2).float() / 255
    p = _identity_params(2)
    p.flip[:] = True
    p.grayscale[0] = True
    p.blur_on[1] = True
    out = SimCLRViews(ViewConfig(size=32, std=(1.0, 1.0, 1.0), mean=(0.0, 0.0, 0.0))).apply(x, p)
    gray = 0.299 * x[0, 0] + 0.587 * x[0, 1] + 0.114 * x[0, 2]
    torch.testing.assert_close(out[0], gray.flip(-1).expand(3, 32, 32), atol=1e-6, rtol=0)
    assert not torch.allclose(out[1], x[1].flip(-1), atol=1e-3)  # blurred
    torch.testing.assert_close(out[1].mean(), x[1].mean(), atol=5e-3, rtol=0)


def test_apply_is_differentiable_in_jitter() -> None:
    x = (_images(b=2).double() / 255) * 0.5 + 0.25
    p = _identity_params(2)
    p.jitter = torch.tensor([[1.1, 0.9, 1.2, 0.05], [0.9, 1.1, 0.8, -0.05]], dtype=torch.float64)
    p.jitter.requires_grad_(True)
    p.jitter_on = torch.tensor([True, False])
    out = SimCLRViews(ViewConfig(size=32)).apply(x, p)
    assert out.dtype == torch.float64
    out.square().sum().backward()
    assert p.jitter.grad is not None
    assert (p.jitter.grad[0] != 0).all() and (p.jitter.grad[1] == 0).all()


def test_n_views_below_two_is_user_error() -> None:
    with pytest.raises(UserError, match="n_views"):
        SimCLRViews(ViewConfig(size=32), n_views=1)


def test_invalid_config_is_user_error_at_construction() -> None:
    with pytest.raises(UserError, match="flip_p"):
        SimCLRViews(ViewConfig(size=32, flip_p=2.0))


@pytest.mark.parametrize(
    "images",
    [
        torch.zeros(2, 1, 32, 32, dtype=torch.uint8),
        torch.zeros(3, 32, 32),
        torch.zeros(2, 3, 8, 8, dtype=torch.int32),
    ],
)
def test_bad_input_is_user_error(images: torch.Tensor) -> None:
    with pytest.raises(UserError):
        _as_unit_float(images)


def test_module_apply_recursion_still_works_for_parents() -> None:
    # SimCLRViews.apply shadows nn.Module.apply; a parent's model.apply(fn) must still work.
    parent = torch.nn.Sequential(torch.nn.Linear(2, 2), SimCLRViews(ViewConfig(size=32)))
    seen: list[str] = []
    assert parent.apply(lambda m: seen.append(type(m).__name__)) is parent
    assert seen == ["Linear", "SimCLRViews", "Sequential"]
    with pytest.raises(TypeError):
        parent[1].apply(torch.zeros(1, 3, 32, 32))
