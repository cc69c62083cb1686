"""A non-finite loss stops the run with a clear message and leaves the last good checkpoint intact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from simclr.config import build_config
from simclr.losses.ntxent import NTXentLoss
from simclr.training.checkpoint_io import load_checkpoint_safely
from simclr.training.module import NonFiniteLossError
from simclr.training.pretrain import run_pretraining

pytestmark = pytest.mark.slow


def test_nan_loss_stops_before_the_update_and_keeps_last_ckpt(
    cifar_small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_forward = NTXentLoss.loss_and_accuracy
    calls = {"n": 0}

    def forward_that_diverges(
        self: NTXentLoss, *views: torch.Tensor, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        calls["n"] += 1
        loss, accuracy = real_forward(self, *views, **kwargs)
        return (loss * float("nan") if calls["n"] == 4 else loss), accuracy

    monkeypatch.setattr(NTXentLoss, "loss_and_accuracy", forward_that_diverges)
    run = tmp_path / "run"
    config = build_config(
        {},
        dict(
            dataset="cifar10",
            data_dir=str(cifar_small),
            limit_train_images=64,
            batch_size=16,
            epochs=1,
            out=str(run),
            workers=1,
            knn_every_epochs=0,
            checkpoint_every_steps=2,
            precision="32",
        ),
    )
    with pytest.raises(NonFiniteLossError, match=r"loss became nan at step 3.*last good state.*--resume"):
        run_pretraining(config, quiet=True)
    checkpoint = load_checkpoint_safely(run / "checkpoints" / "last.ckpt")
    assert checkpoint["global_step"] == 2
    assert all(torch.isfinite(t).all() for t in checkpoint["state_dict"].values() if t.is_floating_point())
