"""Learning-rate scaling, warmup length and the warmup + cosine schedule (SimCLR, arXiv:2002.05709)."""

from __future__ import annotations

import io
import math

import pytest
import torch

from simclr.errors import UserError
from simclr.optim.schedules import WarmupCosineLR, scaled_learning_rate, warmup_cosine, warmup_steps_for


def test_scaled_learning_rate() -> None:
    assert scaled_learning_rate(0.3, 4096, "linear") == pytest.approx(4.8)
    assert scaled_learning_rate(0.3, 256, "linear") == pytest.approx(0.3)
    assert scaled_learning_rate(0.075, 4096, "sqrt") == pytest.approx(4.8)
    assert scaled_learning_rate(0.075, 100, "sqrt") == pytest.approx(0.75)
    assert scaled_learning_rate(1e-3, 512, "none") == 1e-3


def test_scaled_learning_rate_errors() -> None:
    with pytest.raises(UserError, match="linear, sqrt, none"):
        scaled_learning_rate(0.3, 256, "square")
    with pytest.raises(UserError, match="batch size"):
        scaled_learning_rate(0.3, 0, "linear")


def test_warmup_cosine_values() -> None:
    total, warmup, peak, final = 110, 10, 2.0, 0.2  # 100 decay steps after the warmup
    assert warmup_cosine(0, total, warmup, peak, final) == pytest.approx(0.2)  # peak / warmup
    assert warmup_cosine(4, total, warmup, peak, final) == pytest.approx(1.0)  # peak * 5 / 10
    assert warmup_cosine(9, total, warmup, peak, final) == pytest.approx(peak)  # last warmup step
    # the decay starts at the peak
    assert warmup_cosine(10, total, warmup, peak, final) == pytest.approx(peak)
    assert warmup_cosine(60, total, warmup, peak, final) == pytest.approx((peak + final) / 2)
    # a quarter of the decay: final + (peak - final) * (1 + cos(pi / 4)) / 2
    quarter = final + (peak - final) * (1 + math.sqrt(0.5)) / 2
    assert warmup_cosine(35, total, warmup, peak, final) == pytest.approx(quarter)
    last = final + (peak - final) * (1 + math.cos(math.pi * 99 / 100)) / 2
    assert warmup_cosine(109, total, warmup, peak, final) == pytest.approx(last)  # last step still trains
    assert last > final
    assert warmup_cosine(110, total, warmup, peak, final) == pytest.approx(final)  # past the end
    assert warmup_cosine(10_000, total, warmup, peak, final) == pytest.approx(final)


def test_warmup_cosine_shape() -> None:
    values = [warmup_cosine(s, 50, 5, 1.0) for s in range(50)]
    assert values[:5] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert all(a >= b for a, b in zip(values[5:], values[6:], strict=False))
    assert 0.0 < values[-1] < 0.01
    assert warmup_cosine(50, 50, 5, 1.0) == 0.0


def test_warmup_cosine_edge_cases() -> None:
    assert warmup_cosine(0, 100, 0, 1.0) == 1.0  # no warmup: start at the peak
    assert warmup_cosine(0, 1, 0, 1.0) == 1.0  # a one-step run still trains
    assert [warmup_cosine(s, 2, 0, 1.0) for s in range(3)] == pytest.approx([1.0, 0.5, 0.0])
    assert [warmup_cosine(s, 3, 2, 1.0) for s in range(4)] == [0.5, 1.0, 1.0, 0.0]
    assert [warmup_cosine(s, 2, 2, 1.0) for s in range(3)] == [0.5, 1.0, 0.0]


def test_warmup_cosine_errors() -> None:
    with pytest.raises(UserError, match="total_steps"):
        warmup_cosine(0, 0, 0, 1.0)
    with pytest.raises(UserError, match="warmup"):
        warmup_cosine(0, 10, 11, 1.0)
    with pytest.raises(UserError, match="warmup"):
        warmup_cosine(0, 10, -1, 1.0)


def test_warmup_steps_for() -> None:
    assert warmup_steps_for(10, 390, 100 * 390) == 3900  # SimCLR: 10 of 100 epochs
    assert warmup_steps_for(10, 390, 20 * 390) == 3900  # a run that holds its warmup keeps all of it
    assert warmup_steps_for(10, 200, 50 * 200) == 2000  # the 50-epoch Spirograph recipe keeps its 10 epochs
    assert warmup_steps_for(10, 390, 10 * 390) == 390  # as long as the run: 10% of the steps
    assert warmup_steps_for(10, 100, 50) == 5
    assert warmup_steps_for(10, 100, 9) == 0  # fewer than 10 steps: no warmup
    assert warmup_steps_for(0, 100, 1000) == 0
    assert warmup_steps_for(0.5, 10, 1000) == 5  # fractional epochs
    with pytest.raises(UserError, match="warmup epochs"):
        warmup_steps_for(-1, 100, 1000)


def test_scheduler_follows_warmup_cosine_per_group() -> None:
    params = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
    optimizer = torch.optim.SGD([{"params": [params[0]], "lr": 1.0}, {"params": [params[1]], "lr": 0.1}])
    scheduler = WarmupCosineLR(optimizer, total_steps=20, warmup_steps=4, final_ratio=0.1)
    for step in range(25):
        for group, peak in zip(optimizer.param_groups, (1.0, 0.1), strict=True):
            assert group["lr"] == pytest.approx(warmup_cosine(step, 20, 4, peak, 0.1 * peak))
        optimizer.step()
        scheduler.step()


def test_scheduler_state_dict_round_trip() -> None:
    def make(total: int, warmup: int) -> tuple[torch.optim.Optimizer, WarmupCosineLR]:
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.5)
        return optimizer, WarmupCosineLR(optimizer, total_steps=total, warmup_steps=warmup)

    optimizer, scheduler = make(30, 3)
    for _ in range(7):
        optimizer.step()
        scheduler.step()
    buffer = io.BytesIO()
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)

    # Restored into a scheduler built with other settings: the saved schedule wins.
    restored_optimizer, restored = make(1000, 100)
    restored_optimizer.load_state_dict(saved["optimizer"])
    restored.load_state_dict(saved["scheduler"])
    assert restored.last_epoch == scheduler.last_epoch == 7
    for _ in range(30):
        assert restored_optimizer.param_groups[0]["lr"] == pytest.approx(optimizer.param_groups[0]["lr"])
        for opt, sched in ((optimizer, scheduler), (restored_optimizer, restored)):
            opt.step()
            sched.step()
    assert optimizer.param_groups[0]["lr"] == 0.0


def test_scheduler_validates_arguments() -> None:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.5)
    with pytest.raises(UserError, match="warmup"):
        WarmupCosineLR(optimizer, total_steps=10, warmup_steps=20)


def test_constant_schedule_keeps_the_peak_after_warmup_and_final_ratio_ends_the_cosine() -> None:
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([weight], lr=0.5)
    constant = WarmupCosineLR(optimizer, total_steps=10, warmup_steps=4, decay="constant")
    seen = []
    for _ in range(12):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        constant.step()
    assert seen[:4] == pytest.approx([0.125, 0.25, 0.375, 0.5]) and seen[4:] == pytest.approx([0.5] * 8)
    # the cosine of 1,000 steps ends at final_ratio x the peak, not 0
    assert warmup_cosine(999, 1000, 0, 2.0, 0.2) == pytest.approx(0.2, rel=1e-4)
    with pytest.raises(UserError, match="cosine, constant"):
        warmup_cosine(0, 10, 0, 1.0, decay="step")


def test_schedule_flags_reach_the_optimiser_plan() -> None:
    from simclr.config import build_config
    from simclr.training.plan import plan_optimisation

    config = build_config({}, {"dataset": "cifar10", "schedule": "constant", "final_lr_ratio": 0.1, "epochs": 2})
    plan = plan_optimisation(config, train_images=1024, processes=1)
    assert (plan.decay, plan.final_ratio) == ("constant", 0.1)
    with pytest.raises(UserError, match="final-lr-ratio"):
        build_config({}, {"dataset": "cifar10", "final_lr_ratio": 1.5})
