"""The training settings the source projects had and a SimCLR user reaches for: the hold-then-cosine schedule,
Adam's betas and eps, deterministic mode, and the parameter counts a run records."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from safetensors.torch import load_file

from simclr.errors import UserError
from simclr.optim.schedules import warmup_cosine
from simclr.training.checkpoint_io import load_checkpoint_safely
from simclr.training.plan import plan_optimisation
from simclr.training.pretrain import run_pretraining

from .test_pretrain_run import read_metrics, small_config

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def restore_determinism() -> Iterator[None]:
    before = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(before)  # a deterministic run sets it for the whole process


class DeterministicMode(L.Callback):
    def __init__(self) -> None:
        self.seen: list[bool] = []

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.seen.append(torch.are_deterministic_algorithms_enabled())


def tiny(data: Path, out: Path, **overrides: object):
    values: dict[str, object] = dict(
        limit_train_images=64, image_size=16, batch_size=16, epochs=1, knn_every_epochs=0, workers=0
    )
    return small_config(data, out, **{**values, **overrides})


def test_hold_cosine_holds_the_peak_then_decays_and_says_so(cifar_small: Path, tmp_path: Path) -> None:
    config = tiny(
        cifar_small,
        tmp_path / "run",
        limit_train_images=32,
        epochs=4,
        optimizer="sgd",
        lr=0.1,
        lr_scaling="none",
        schedule="hold-cosine",
        hold_epochs=1.0,
    )
    optim = plan_optimisation(config, 32, 1)
    assert (optim.warmup_steps, optim.total_steps, optim.decay) == (2, 8, "hold-cosine")
    run_pretraining(config, quiet=True)
    lrs = [float(row["lr"]) for row in read_metrics(tmp_path / "run" / "metrics.csv") if row["lr"]]
    expected = [warmup_cosine(step, 8, 2, 0.1, decay="hold-cosine") for step in range(8)]
    assert lrs == pytest.approx(expected, rel=1e-5)  # metrics.csv keeps float32's shortest decimals
    assert lrs[:3] == pytest.approx([0.1] * 3)  # no ramp: the first step already trains at the peak
    assert lrs[3] < 0.1 and lrs[-1] < 0.01
    log = (tmp_path / "run" / "train.log").read_text()
    assert "held at the peak for 2 of 8 steps, then cosine to 0 x the peak" in log


def test_adam_betas_and_eps_reach_the_optimiser_and_the_run_record(cifar_small: Path, tmp_path: Path) -> None:
    config = tiny(cifar_small, tmp_path / "run", optimizer="adam", adam_betas=(0.5, 0.99), adam_eps=1e-6, max_steps=2)
    run_pretraining(config, quiet=True)
    checkpoint = load_checkpoint_safely(tmp_path / "run" / "checkpoints" / "last.ckpt")
    groups = checkpoint["optimizer_states"][0]["param_groups"]
    assert {(tuple(group["betas"]), group["eps"]) for group in groups} == {((0.5, 0.99), 1e-6)}
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["adam_betas"] == [0.5, 0.99] and saved["adam_eps"] == 1e-6


def test_adam_betas_must_be_two_numbers_below_one(cifar_small: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--adam-betas takes two numbers"):
        tiny(cifar_small, tmp_path / "run", adam_betas=(0.9, 0.99, 0.5))
    with pytest.raises(UserError, match="adam_betas"):
        tiny(cifar_small, tmp_path / "run", adam_betas=(0.9, 1.0))


def test_deterministic_runs_twice_give_bit_identical_weights_and_record_their_parameter_counts(
    cifar_small: Path, tmp_path: Path
) -> None:
    weights, modes = [], DeterministicMode()
    for name in ("first", "second"):
        run = tmp_path / name
        run_pretraining(tiny(cifar_small, run, max_steps=3, deterministic=True), quiet=True, extra_callbacks=[modes])
        weights.append(load_file(run / "backbone.safetensors"))
    assert modes.seen == [True, True]  # torch.use_deterministic_algorithms was on while they trained
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])

    resolved = yaml.safe_load((tmp_path / "first" / "environment.yaml").read_text())["resolved"]
    backbone = sum(
        tensor.numel() for key, tensor in weights[0].items() if "running" not in key and "num_batches" not in key
    )
    assert resolved["backbone_parameters"] == resolved["backbone_trainable_parameters"] == backbone
    assert resolved["head_parameters"] == resolved["head_trainable_parameters"] > 0
    log = (tmp_path / "first" / "train.log").read_text()
    assert f"parameters: backbone {backbone:,} ({backbone:,} trainable), head " in log


def test_patience_stops_pretraining_on_the_validation_loss_and_says_why(cifar_small: Path, tmp_path: Path) -> None:
    # a fall of more than 100 never happens, so the second epoch already runs out of patience 1
    config = tiny(cifar_small, tmp_path / "run", limit_train_images=48, epochs=5, val_fraction=0.34)
    config = replace(config, patience=1, min_delta=100.0)
    result = run_pretraining(config, quiet=True)
    assert result.global_step == 4  # 2 of the 5 epochs of 2 steps (32 training images, batch 16)
    log = (tmp_path / "run" / "train.log").read_text()
    assert "stopping early after epoch 1: val_loss has not fallen by more than 100 for 1 epoch(s) (best " in log
    assert (tmp_path / "run" / "backbone.safetensors").is_file()
    checkpoint = load_checkpoint_safely(tmp_path / "run" / "checkpoints" / "last.ckpt")
    state = next(value for key, value in checkpoint["callbacks"].items() if "EarlyStopOnValidation" in key)
    assert (state["best_epoch"], state["waited"], state["stopped"]) == (0, 1, 1)
    resumed = run_pretraining(replace(config, resume=str(tmp_path / "run")), quiet=True)  # trains no further
    assert resumed.global_step == 4
    assert (
        "this run stopped early after epoch 1 (--patience): nothing left to train"
        in (tmp_path / "run" / "train.log").read_text()
    )


def test_patience_without_validation_is_one_line(cifar_small: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--patience stops on the validation loss; add --val-fraction"):
        tiny(cifar_small, tmp_path / "run", patience=3)


class GradientNorms(L.Callback):
    """The gradients' global L2 norm before clipping (Lightning clips after on_before_optimizer_step) and after
    the step (the gradients stay until the next step's backward)."""

    def __init__(self) -> None:
        self.before: list[float] = []
        self.after: list[float] = []

    @staticmethod
    def norm(module: L.LightningModule) -> float:
        grads = [p.grad.detach().flatten() for p in module.parameters() if p.grad is not None]
        return float(torch.cat(grads).norm())

    def on_before_optimizer_step(self, trainer: L.Trainer, module: L.LightningModule, optimizer: object) -> None:
        self.before.append(self.norm(module))

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args: object) -> None:
        self.after.append(self.norm(module))


def test_clip_grad_norm_scales_the_gradients_down_to_the_norm(cifar_small: Path, tmp_path: Path) -> None:
    norms = GradientNorms()
    run_pretraining(
        tiny(cifar_small, tmp_path / "run", max_steps=2, clip_grad_norm=0.01), quiet=True, extra_callbacks=[norms]
    )
    assert len(norms.before) == len(norms.after) == 2
    assert all(before > 0.01 for before in norms.before)
    assert all(0.0099 < after <= 0.01 for after in norms.after)


def test_clip_grad_norm_and_a_clipping_trainer_option_are_one_line(cifar_small: Path, tmp_path: Path) -> None:
    config = tiny(cifar_small, tmp_path / "run", clip_grad_norm=1.0)
    with pytest.raises(UserError, match=r"trainer_kwargs\['gradient_clip_val'\] and config.clip_grad_norm both clip"):
        run_pretraining(config, quiet=True, trainer_kwargs={"gradient_clip_val": 1.0})
    assert not (tmp_path / "run").exists()
