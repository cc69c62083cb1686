"""A short real pretraining run on a CIFAR-10 subset writes every file of the run directory."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

from simclr.config import build_config
from simclr.errors import UserError
from simclr.models.backbones import build_backbone
from simclr.training.checkpoint_io import load_checkpoint_safely
from simclr.training.plan import plan_optimisation, resolve_hardware
from simclr.training.pretrain import run_pretraining

pytestmark = pytest.mark.slow


def small_config(data: Path, out: Path, **overrides: object):
    values: dict[str, object] = dict(
        dataset="cifar10",
        data_dir=str(data),
        batch_size=32,
        epochs=2,
        out=str(out),
        workers=1,
        knn_k=20,
        checkpoint_every_steps=3,
        precision="32",
    )
    values.update(overrides)
    return build_config({}, values)


def read_metrics(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_pretrain_writes_every_run_dir_file(cifar_small: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    # 64 images of 16 px in batches of 16: the same 8 steps as 128 of 32 px in 32s, an eighth of the compute
    config = small_config(cifar_small, run, limit_train_images=64, batch_size=16, image_size=16, precision="bf16-mixed")
    result = run_pretraining(config, quiet=True)
    assert result.run_dir == run
    for name in ("config.yaml", "metrics.csv", "checkpoints/last.ckpt", "backbone.safetensors", "train.log"):
        assert (run / name).is_file(), name

    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["dataset"] == "cifar10" and saved["limit_train_images"] == 64 and saved["resume"] is None

    rows = read_metrics(run / "metrics.csv")
    step_rows = [r for r in rows if r["train_loss"]]
    assert [int(r["step"]) for r in step_rows] == list(range(8))  # 64 / 16 = 4 steps x 2 epochs
    assert all(float(r["lr"]) > 0 for r in step_rows)
    knn_rows = [r for r in rows if r["knn_top1"]]
    assert [int(r["epoch"]) for r in knn_rows] == [0, 1]
    assert all(0.0 <= float(r["knn_top1"]) <= 1.0 for r in knn_rows)

    weights = load_file(str(run / "backbone.safetensors"))
    backbone, _ = build_backbone("resnet18", "cifar")
    backbone.load_state_dict(weights)  # strict: exactly the backbone, no head
    checkpoint = load_checkpoint_safely(run / "checkpoints" / "last.ckpt")
    assert checkpoint["global_step"] == 8
    assert "optimizer_states" in checkpoint and "lr_schedulers" in checkpoint
    assert "knn_top1" in (run / "train.log").read_text()


def test_lr_follows_warmup_then_cosine(cifar_small: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    config = small_config(
        cifar_small,
        run,
        limit_train_images=32,  # 2 steps of 16 an epoch: the schedule depends on the step count, not the batch
        batch_size=16,
        image_size=16,  # the schedule does not depend on the size; 16 px is a quarter of the compute
        epochs=5,
        optimizer="sgd",
        lr=0.1,
        lr_scaling="none",
        warmup_epochs=1,
        knn_every_epochs=0,
    )
    run_pretraining(config, quiet=True)
    lrs = [float(r["lr"]) for r in read_metrics(run / "metrics.csv") if r["lr"]]
    assert len(lrs) == 10
    assert lrs[0] < lrs[1] <= 0.1 + 1e-9  # warmup ramps up
    assert max(lrs) == pytest.approx(0.1, rel=1e-6)
    assert all(
        b <= a + 1e-12 for a, b in zip(lrs[lrs.index(max(lrs)) :], lrs[lrs.index(max(lrs)) + 1 :], strict=False)
    )  # then decays
    assert lrs[-1] < 0.01


@pytest.mark.parametrize(
    ("devices", "sync", "expected"), [("1", None, False), ("2", None, False), ("0,1", False, False)]
)
def test_batchnorm_statistics_on_cpus_stay_per_process(
    tmp_path: Path, devices: str, sync: bool | None, expected: bool
) -> None:
    """Synchronised BatchNorm is the default where it can run (several GPU processes); torch's SyncBatchNorm
    has no CPU kernels, so CPU processes keep their own statistics."""
    overrides: dict[str, object] = {"devices": devices, "accelerator": "cpu"}
    if sync is not None:
        overrides["sync_batchnorm"] = sync
    hardware = resolve_hardware(small_config(tmp_path, tmp_path / "run", **overrides))
    assert hardware.sync_batchnorm is expected
    assert hardware.processes == (1 if devices == "1" else 2)


def test_synchronised_batchnorm_asked_for_on_cpus_is_a_one_line_error(tmp_path: Path) -> None:
    config = small_config(tmp_path, tmp_path / "run", devices="2", accelerator="cpu", sync_batchnorm=True)
    with pytest.raises(UserError, match="--sync-batchnorm needs GPUs"):
        resolve_hardware(config)


def test_warmup_is_kept_when_it_fits_and_capped_with_a_log_line_when_not(cifar_small: Path, tmp_path: Path) -> None:
    fits = plan_optimisation(small_config(cifar_small, tmp_path, epochs=50, warmup_epochs=10), 1000, 1)
    assert (fits.steps_per_epoch, fits.warmup_steps, fits.total_steps) == (31, 310, 1550)
    run = tmp_path / "short"
    config = small_config(cifar_small, run, limit_train_images=64, image_size=16, knn_every_epochs=0)  # 16 px: cheaper
    run_pretraining(config, quiet=True)
    log = (run / "train.log").read_text()
    assert "warmup: 10 epochs (20 steps) do not fit in a run of 4 steps; warming up for 0 steps (10%) instead" in log
