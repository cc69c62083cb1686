"""NTXentLoss on one process: reference values, a loop-based re-implementation, gradients, invariances."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from simclr.errors import UserError
from simclr.losses.ntxent import NTXentLoss


def anchor_inputs(
    dtype: torch.dtype = torch.float64,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The inputs of ANCHORS.md section 3: N=4, d=3."""
    i = torch.arange(4, dtype=torch.float64)[:, None]
    j = torch.arange(3, dtype=torch.float64)[None, :]
    a = torch.sin(1 + 3 * i + j)
    b = a + 0.3 * torch.cos(1 + 3 * i + j)
    c = a - 0.2 * torch.sin(2 + 5 * i + j)
    return a.to(dtype), b.to(dtype), c.to(dtype)


def reference_loss(views: list[torch.Tensor], temperature: float) -> torch.Tensor:
    """The definition written out anchor by anchor (SupCon L_out), in the inputs' dtype."""
    n_views, batch = len(views), views[0].shape[0]
    z = [v / v.norm(dim=1, keepdim=True) for v in views]
    entries = [(v, i) for v in range(n_views) for i in range(batch)]
    total = torch.zeros((), dtype=views[0].dtype)
    for v, i in entries:
        anchor = z[v][i]
        others = [(anchor * z[u][k]).sum() / temperature for u, k in entries if (u, k) != (v, i)]
        log_denominator = torch.log(torch.stack(others).exp().sum())
        positives = [(anchor * z[u][i]).sum() / temperature for u in range(n_views) if u != v]
        anchor_loss = sum(-(p - log_denominator) for p in positives) / len(positives)
        total = total + anchor_loss
    return total / len(entries)


@pytest.mark.parametrize(
    ("temperature", "two_views", "three_views"),
    [(0.5, 1.108850, 1.620149), (0.2, 1.061291, 1.582351), (0.1, 1.054544, 1.591491)],
)
def test_reference_values(temperature: float, two_views: float, three_views: float) -> None:
    a, b, c = anchor_inputs(torch.float32)
    loss = NTXentLoss(temperature)
    assert loss(a, b).item() == pytest.approx(two_views, abs=1e-5)
    assert loss(a, b, c).item() == pytest.approx(three_views, abs=1e-5)
    a, b, c = anchor_inputs(torch.float64)
    assert loss(a, b).item() == pytest.approx(two_views, abs=1e-6)
    assert loss(a, b, c).item() == pytest.approx(three_views, abs=1e-6)


def test_reference_implementation_matches_anchor_values() -> None:
    a, b, c = anchor_inputs()
    assert reference_loss([a, b], 0.5).item() == pytest.approx(1.108850, abs=1e-6)
    assert reference_loss([a, b, c], 0.1).item() == pytest.approx(1.591491, abs=1e-6)


@pytest.mark.parametrize("n_views", [2, 3, 4])
def test_identical_embeddings_give_log_of_candidates(n_views: int) -> None:
    z = torch.ones(4, 3)
    value = NTXentLoss(0.5)(*([z] * n_views)).item()
    assert value == pytest.approx(math.log(n_views * 4 - 1), abs=1e-6)
    if n_views == 2:
        assert value == pytest.approx(1.945910, abs=1e-6)


def test_single_image_two_views_is_zero() -> None:
    z = torch.randn(1, 5)
    assert NTXentLoss(0.1)(z, torch.randn(1, 5)).item() == pytest.approx(0.0, abs=1e-7)


@settings(max_examples=12, deadline=None)
@given(
    n_views=st.integers(2, 4),
    batch=st.integers(1, 5),
    dim=st.integers(1, 6),
    temperature=st.sampled_from([0.07, 0.2, 0.5, 1.0]),
    seed=st.integers(0, 2**31 - 1),
)
def test_matches_loop_reference_value_and_gradient(
    n_views: int, batch: int, dim: int, temperature: float, seed: int
) -> None:
    generator = torch.Generator().manual_seed(seed)
    views = [
        (torch.randn(batch, dim, generator=generator, dtype=torch.float64) * 3).requires_grad_(True)
        for _ in range(n_views)
    ]
    loss = NTXentLoss(temperature)(*views)
    expected = reference_loss(views, temperature)
    assert loss.dtype == torch.float64
    torch.testing.assert_close(loss, expected, rtol=1e-10, atol=1e-10)
    grads = torch.autograd.grad(loss, views)
    expected_grads = torch.autograd.grad(expected, views)
    for grad, expected_grad in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(grad, expected_grad, rtol=1e-9, atol=1e-10)
    # float32 inputs compute in float32 and agree with the float64 reference.
    loss32 = NTXentLoss(temperature)(*[v.detach().float() for v in views])
    assert loss32.dtype == torch.float32
    assert loss32.item() == pytest.approx(expected.item(), abs=1e-5)


def test_gradcheck_float64() -> None:
    generator = torch.Generator().manual_seed(0)
    views = tuple(torch.randn(3, 4, generator=generator, dtype=torch.float64, requires_grad=True) for _ in range(3))
    loss = NTXentLoss(0.3)
    assert torch.autograd.gradcheck(lambda *v: loss(*v), views)


def test_invariant_to_view_order() -> None:
    generator = torch.Generator().manual_seed(1)
    views = [torch.randn(6, 8, generator=generator) for _ in range(3)]
    loss = NTXentLoss(0.2)
    value = loss(*views)
    for order in itertools.permutations(range(3)):
        torch.testing.assert_close(loss(*[views[k] for k in order]), value, rtol=1e-6, atol=1e-6)
    a, b, _ = anchor_inputs(torch.float32)
    torch.testing.assert_close(loss(a, b), loss(b, a), rtol=1e-6, atol=1e-6)


def test_invariant_to_positive_scaling() -> None:
    generator = torch.Generator().manual_seed(2)
    views = [torch.randn(5, 7, generator=generator, dtype=torch.float64) for _ in range(2)]
    loss = NTXentLoss(0.5)
    value = loss(*views)
    torch.testing.assert_close(loss(views[0] * 3.7, views[1] * 3.7), value)
    # Normalisation is per row, so even a different positive factor per row leaves the loss unchanged.
    scales = torch.rand(5, 1, generator=generator, dtype=torch.float64) * 100 + 0.01
    torch.testing.assert_close(loss(views[0] * scales, views[1] / scales), value)


def test_no_overflow_at_small_temperature() -> None:
    generator = torch.Generator().manual_seed(3)
    views = [(torch.randn(16, 32, generator=generator) * 1e4).requires_grad_(True) for _ in range(3)]
    loss = NTXentLoss(0.01)(*views)
    assert torch.isfinite(loss)
    grads = torch.autograd.grad(loss, views)
    assert all(torch.isfinite(g).all() for g in grads)
    expected = reference_loss([v.detach().double() for v in views], 0.01)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5, abs=1e-4)
    # Nearly identical views: logits of 100 everywhere would overflow a naive exp in float32.
    base = torch.randn(8, 4, generator=generator)
    almost = NTXentLoss(0.01)(base, base + 1e-3)
    assert torch.isfinite(almost)


def test_bfloat16_under_autocast_computes_in_float32() -> None:
    a, b, c = anchor_inputs(torch.float32)
    loss = NTXentLoss(0.1)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        bf16_value = loss(a.bfloat16(), b.bfloat16(), c.bfloat16())
        fp32_value = loss(a, b, c)
    assert bf16_value.dtype == torch.float32
    assert fp32_value.dtype == torch.float32
    # The float32 computation on the (rounded) bf16 values, outside autocast.
    expected = loss(a.bfloat16().float(), b.bfloat16().float(), c.bfloat16().float())
    torch.testing.assert_close(bf16_value, expected, rtol=0, atol=1e-6)
    # fp32 inputs are not downcast by autocast: same value as without autocast.
    assert fp32_value.item() == pytest.approx(1.591491, abs=1e-5)


def test_bfloat16_projection_gradients_flow() -> None:
    layer = torch.nn.Linear(6, 4)
    x = torch.randn(2, 5, 6)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        projections = [layer(x[v]) for v in range(2)]
        assert projections[0].dtype == torch.bfloat16
        loss = NTXentLoss(0.5)(*projections)
    loss.backward()
    assert loss.dtype == torch.float32
    assert layer.weight.grad is not None and torch.isfinite(layer.weight.grad).all()


def test_no_process_group_ignores_gather_flag() -> None:
    a, b, _ = anchor_inputs(torch.float32)
    gathered = NTXentLoss(0.5, gather_distributed=True)(a, b)
    local = NTXentLoss(0.5, gather_distributed=False)(a, b)
    torch.testing.assert_close(gathered, local)


@pytest.mark.parametrize("temperature", [0.0, -0.5])
def test_rejects_non_positive_temperature(temperature: float) -> None:
    with pytest.raises(UserError, match="temperature"):
        NTXentLoss(temperature)


def test_rejects_fewer_than_two_views() -> None:
    loss = NTXentLoss()
    with pytest.raises(UserError, match="at least 2 views"):
        loss(torch.randn(4, 3))
    with pytest.raises(UserError, match="at least 2 views"):
        loss()


def test_rejects_mismatched_or_malformed_shapes() -> None:
    loss = NTXentLoss()
    with pytest.raises(ValueError, match="same shape"):
        loss(torch.randn(4, 3), torch.randn(5, 3))
    with pytest.raises(ValueError, match="same shape"):
        loss(torch.randn(4, 3), torch.randn(4, 3), torch.randn(4, 2))
    with pytest.raises(ValueError, match="batch, dim"):
        loss(torch.randn(4), torch.randn(4))
    with pytest.raises(ValueError, match="batch, dim"):
        loss(torch.randn(0, 3), torch.randn(0, 3))


def test_loss_and_accuracy_returns_forwards_loss() -> None:
    torch.manual_seed(0)
    views = [torch.randn(8, 5), torch.randn(8, 5)]
    loss_fn = NTXentLoss(0.5)
    loss, accuracy = loss_fn.loss_and_accuracy(*views)
    assert loss.item() == loss_fn(*views).item()
    assert accuracy.shape == (2,) and not accuracy.requires_grad
    assert 0.0 <= accuracy[0].item() <= accuracy[1].item() <= 1.0
