"""Parameter groups and the optimiser factory (SimCLR's exclusion of BN and biases, arXiv:2002.05709)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from simclr.errors import UserError
from simclr.optim.build import OPTIMIZER_NAMES, build_optimizer, parameter_groups
from simclr.optim.lars import LARS


def small_model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),  # weight (decayed), bias (excluded)
        nn.BatchNorm2d(4),  # weight, bias (excluded)
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 5 * 5, 6),  # weight (decayed), bias (excluded)
        nn.BatchNorm1d(6),  # weight, bias (excluded)
        nn.Linear(6, 3, bias=False),  # weight (decayed)
    )


def test_parameter_groups_split() -> None:
    model = small_model()
    groups = parameter_groups(model, weight_decay=1e-4)
    assert len(groups) == 2
    decayed, excluded = groups
    assert (decayed["weight_decay"], decayed["lars_exclude"]) == (1e-4, False)
    assert (excluded["weight_decay"], excluded["lars_exclude"]) == (0.0, True)
    assert len(decayed["params"]) == 3
    assert len(excluded["params"]) == 6
    assert all(p.ndim > 1 for p in decayed["params"])
    assert all(p.ndim <= 1 for p in excluded["params"])
    grouped = {id(p) for g in groups for p in g["params"]}
    assert grouped == {id(p) for p in model.parameters()}


def test_parameter_groups_omit_frozen_and_empty() -> None:
    model = small_model()
    model[0].weight.requires_grad_(False)
    model[1].requires_grad_(False)
    decayed, excluded = parameter_groups(model, weight_decay=1e-4)
    assert len(decayed["params"]) == 2
    assert len(excluded["params"]) == 4
    only_biases = parameter_groups(nn.BatchNorm1d(3), weight_decay=1e-4)
    assert len(only_biases) == 1 and only_biases[0]["lars_exclude"] is True
    assert parameter_groups(nn.ReLU(), weight_decay=1e-4) == []


def test_parameter_groups_shared_parameter_once() -> None:
    layer = nn.Linear(4, 4)
    model = nn.Sequential(layer, nn.ReLU(), layer)
    decayed, excluded = parameter_groups(model, weight_decay=0.1)
    assert len(decayed["params"]) == 1 and len(excluded["params"]) == 1


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_each_optimizer_builds_and_steps(name: str) -> None:
    model = small_model()
    optimizer = build_optimizer(model, name, lr=0.1, weight_decay=1e-4, nesterov=name in ("lars", "sgd"))
    assert [g["lars_exclude"] for g in optimizer.param_groups] == [False, True]
    assert [g["weight_decay"] for g in optimizer.param_groups] == [1e-4, 0.0]
    before = [p.detach().clone() for p in model.parameters()]
    x = torch.randn(8, 3, 5, 5, generator=torch.Generator().manual_seed(1))
    model(x).pow(2).mean().backward()
    optimizer.step()
    for old, new in zip(before, model.parameters(), strict=True):
        assert not torch.equal(old, new.detach())
    state = optimizer.state_dict()
    assert [g["lars_exclude"] for g in state["param_groups"]] == [False, True]
    rebuilt = build_optimizer(small_model(), name, lr=0.1, weight_decay=1e-4, nesterov=name in ("lars", "sgd"))
    rebuilt.load_state_dict(state)


def test_optimizer_types_and_hyperparameters() -> None:
    model = small_model()
    lars = build_optimizer(model, "lars", lr=4.8, weight_decay=1e-6, momentum=0.8)
    assert isinstance(lars, LARS) and lars.param_groups[0]["momentum"] == 0.8
    sgd = build_optimizer(model, "sgd", lr=0.1, weight_decay=5e-4, momentum=0.7, nesterov=True)
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.param_groups[0]["nesterov"] is True and sgd.param_groups[0]["momentum"] == 0.7
    adam = build_optimizer(model, "adam", lr=1e-3, weight_decay=1e-6, betas=(0.8, 0.99))
    assert type(adam) is torch.optim.Adam and adam.param_groups[0]["betas"] == (0.8, 0.99)
    adamw = build_optimizer(model, "adamw", lr=1e-3, weight_decay=1e-4)
    assert isinstance(adamw, torch.optim.AdamW)
    assert [g["weight_decay"] for g in adamw.param_groups] == [1e-4, 0.0]


def test_excluded_group_gets_no_weight_decay_in_torch_optimizers() -> None:
    bias_only = nn.BatchNorm1d(2)
    optimizer = build_optimizer(bias_only, "adamw", lr=0.1, weight_decay=0.5)
    before = [p.detach().clone() for p in bias_only.parameters()]
    for p in bias_only.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    for old, new in zip(before, bias_only.parameters(), strict=True):
        assert torch.equal(old, new.detach())


def test_unknown_optimizer_lists_valid_names() -> None:
    with pytest.raises(UserError, match="lars, sgd, adam, adamw"):
        build_optimizer(small_model(), "rmsprop", lr=0.1, weight_decay=0.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "sgd", "lr": -0.1, "weight_decay": 0.0}, "learning rate"),
        ({"name": "sgd", "lr": 0.1, "weight_decay": -1.0}, "weight decay"),
        ({"name": "lars", "lr": 0.1, "weight_decay": 0.0, "momentum": -0.5}, "momentum"),
        (
            {"name": "sgd", "lr": 0.1, "weight_decay": 0.0, "momentum": 0.0, "nesterov": True},
            "nesterov",
        ),
        ({"name": "adam", "lr": 0.1, "weight_decay": 0.0, "betas": (0.9, 1.0)}, "betas"),
    ],
)
def test_invalid_arguments(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(UserError, match=match):
        build_optimizer(small_model(), **kwargs)  # type: ignore[arg-type]


def test_model_without_trainable_parameters() -> None:
    model = small_model().requires_grad_(False)
    with pytest.raises(UserError, match="no trainable parameters"):
        build_optimizer(model, "lars", lr=0.1, weight_decay=0.0)
