"""LARS against updates computed by hand (You et al. 2017, arXiv:1708.03888; SimCLR's variant)."""

from __future__ import annotations

import io

import pytest
import torch

from simclr.errors import UserError
from simclr.optim.lars import LARS


def set_grad(param: torch.nn.Parameter, values: list[float]) -> None:
    param.grad = torch.tensor(values)


def assert_values(param: torch.Tensor, expected: list[float]) -> None:
    torch.testing.assert_close(param.detach(), torch.tensor(expected), rtol=0, atol=1e-6)


def test_two_steps_by_hand_with_excluded_group() -> None:
    weight = torch.nn.Parameter(torch.tensor([3.0, 4.0]))
    bias = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    optimizer = LARS(
        [
            {"params": [weight]},
            # weight decay set on purpose: an excluded group must ignore it
            {"params": [bias], "lars_exclude": True, "weight_decay": 0.1},
        ],
        lr=0.5,
        momentum=0.9,
        weight_decay=0.1,
        trust_coefficient=0.02,
        eps=0.0,
    )

    # Step 1. weight: g = [0.3, 0.4] + 0.1 * [3, 4] = [0.6, 0.8], ||g|| = 1, ||p|| = 5
    #   ratio = 0.02 * 5 / 1 = 0.1, a = [0.06, 0.08], v = a
    #   p = [3, 4] - 0.5 * [0.06, 0.08] = [2.97, 3.96]
    # bias (excluded): a = g = [0.5, 0.5], v = a, p = [1, -2] - 0.5 * 0.5 = [0.75, -2.25]
    set_grad(weight, [0.3, 0.4])
    set_grad(bias, [0.5, 0.5])
    optimizer.step()
    assert_values(weight, [2.97, 3.96])
    assert_values(bias, [0.75, -2.25])

    # Step 2. weight: p = 0.99 * [3, 4], ||p|| = 4.95
    #   g = [0.3, 0.4] + 0.1 * [2.97, 3.96] = [0.597, 0.796] = 0.995 * [0.6, 0.8], ||g|| = 0.995
    #   ratio = 0.02 * 4.95 / 0.995 = 0.099 / 0.995, a = 0.099 * [0.6, 0.8] = [0.0594, 0.0792]
    #   v = 0.9 * [0.06, 0.08] + [0.0594, 0.0792] = [0.1134, 0.1512]
    #   p = [2.97, 3.96] - 0.5 * [0.1134, 0.1512] = [2.9133, 3.8844]
    # bias: v = 0.9 * 0.5 + 0.5 = 0.95, p = [0.75, -2.25] - 0.5 * 0.95 = [0.275, -2.725]
    set_grad(weight, [0.3, 0.4])
    set_grad(bias, [0.5, 0.5])
    optimizer.step()
    assert_values(weight, [2.9133, 3.8844])
    assert_values(bias, [0.275, -2.725])
    torch.testing.assert_close(
        optimizer.state[weight]["momentum_buffer"],
        torch.tensor([0.1134, 0.1512]),
        rtol=0,
        atol=1e-7,
    )


def test_nesterov_step_by_hand() -> None:
    weight = torch.nn.Parameter(torch.tensor([3.0, 4.0]))
    optimizer = LARS(
        [weight],
        lr=0.5,
        momentum=0.9,
        weight_decay=0.1,
        trust_coefficient=0.02,
        eps=0.0,
        nesterov=True,
    )
    # a = [0.06, 0.08] as above, v = a, update = a + 0.9 * v = 1.9 * a = [0.114, 0.152]
    # p = [3, 4] - 0.5 * [0.114, 0.152] = [2.943, 3.924]
    set_grad(weight, [0.3, 0.4])
    optimizer.step()
    assert_values(weight, [2.943, 3.924])


def test_zero_parameter_norm_uses_ratio_one() -> None:
    weight = torch.nn.Parameter(torch.zeros(2))
    optimizer = LARS([weight], lr=0.5, momentum=0.9, weight_decay=0.1, trust_coefficient=0.02)
    # ||p|| = 0: g = [0.2, -0.1] + 0.1 * 0 = g, ratio = 1, p = 0 - 0.5 * [0.2, -0.1] = [-0.1, 0.05]
    set_grad(weight, [0.2, -0.1])
    optimizer.step()
    assert_values(weight, [-0.1, 0.05])


def test_zero_gradient_norm_leaves_parameter_unchanged() -> None:
    weight = torch.nn.Parameter(torch.tensor([3.0, 4.0]))
    optimizer = LARS([weight], lr=0.5, momentum=0.9, weight_decay=0.0)
    # ||g|| = 0: ratio = 1 (no division by zero), a = 0, p unchanged and finite
    set_grad(weight, [0.0, 0.0])
    optimizer.step()
    assert_values(weight, [3.0, 4.0])


def test_eps_enters_the_denominator() -> None:
    weight = torch.nn.Parameter(torch.tensor([3.0, 4.0]))
    optimizer = LARS([weight], lr=1.0, momentum=0.0, trust_coefficient=0.02, eps=1.0)
    # g = [0.6, 0.8], ||g|| = 1: ratio = 0.02 * 5 / (1 + 1) = 0.05, p = [3, 4] - [0.03, 0.04]
    set_grad(weight, [0.6, 0.8])
    optimizer.step()
    assert_values(weight, [2.97, 3.96])
    assert "momentum_buffer" not in optimizer.state[weight]


def test_parameters_without_gradient_are_skipped_and_closure_is_called() -> None:
    used = torch.nn.Parameter(torch.tensor([1.0]))
    unused = torch.nn.Parameter(torch.tensor([2.0]))
    optimizer = LARS([used, unused], lr=0.1)

    def closure() -> float:
        optimizer.zero_grad()
        loss = (used * 3).sum()
        loss.backward()
        return float(loss.detach())

    assert optimizer.step(closure) == pytest.approx(3.0)
    assert used.item() != 1.0
    assert unused.item() == 2.0


def test_state_dict_round_trip() -> None:
    weight = torch.nn.Parameter(torch.tensor([3.0, 4.0]))
    optimizer = LARS([{"params": [weight], "lars_exclude": False}], lr=0.5)
    set_grad(weight, [0.3, 0.4])
    optimizer.step()
    buffer = io.BytesIO()
    torch.save(optimizer.state_dict(), buffer)  # a saved copy: torch loads live buffers by reference
    buffer.seek(0)
    clone = torch.nn.Parameter(weight.detach().clone())
    restored = LARS([clone], lr=0.5)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert restored.param_groups[0]["lars_exclude"] is False
    set_grad(weight, [0.1, -0.2])
    set_grad(clone, [0.1, -0.2])
    optimizer.step()
    restored.step()
    torch.testing.assert_close(clone, weight)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lr": -1.0}, "learning rate"),
        ({"lr": 0.1, "momentum": -0.1}, "momentum"),
        ({"lr": 0.1, "weight_decay": -1e-6}, "weight decay"),
        ({"lr": 0.1, "trust_coefficient": 0.0}, "trust coefficient"),
        ({"lr": 0.1, "eps": -1.0}, "eps"),
        ({"lr": 0.1, "momentum": 0.0, "nesterov": True}, "nesterov"),
    ],
)
def test_invalid_arguments(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(UserError, match=match):
        LARS([torch.nn.Parameter(torch.zeros(1))], **kwargs)
