"""A change a resume records is the change it applies: after ``--resume-with-changes --lr`` (or ``--epochs``,
``--weight-decay``, ``--momentum``) the run trains with the new values from the resumed step on, and a setting no
resume can apply is refused in one line (issue 26)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

from simclr.cli import main
from simclr.optim.schedules import scaled_learning_rate, warmup_cosine
from simclr.training.checkpoint_io import load_checkpoint_safely

pytestmark = pytest.mark.slow

# 64 images of 8 px / 16 per step = 4 steps an epoch, warmup of one epoch; sgd scales its lr linearly by the batch
TINY = [
    "--dataset", "spirograph", "--train-size", "64", "--test-size", "16", "--batch-size", "16",
    "--precision", "32", "--knn-every-epochs", "0", "--workers", "1", "--optimizer", "sgd", "--lr", "0.1",
    "--warmup-epochs", "1", "--log-every-steps", "1", "--image-size", "8", "--quiet",
]  # fmt: skip
STEPS_PER_EPOCH, WARMUP_STEPS, BATCH = 4, 4, 16


def learning_rates(run: Path) -> dict[int, float]:
    """``{step: lr}`` of a run's metrics.csv."""
    with open(run / "metrics.csv", newline="") as handle:
        return {int(row["step"]): float(row["lr"]) for row in csv.DictReader(handle) if row["lr"]}


def schedule(base_lr: float, epochs: int) -> list[float]:
    """The learning rate of every step of a run of TINY's shape, from the schedule functions themselves."""
    total = STEPS_PER_EPOCH * epochs
    peak = scaled_learning_rate(base_lr, BATCH, "linear")
    return [warmup_cosine(step, total, WARMUP_STEPS, peak) for step in range(total)]


def test_a_changed_lr_weight_decay_and_momentum_are_the_ones_trained_with(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(["pretrain", *TINY, "--epochs", "2", "--max-steps", "4", "--out", str(run)]) == 0
    changes = ["--lr", "0.5", "--weight-decay", "0.001", "--momentum", "0.5"]
    assert main(["pretrain", "--resume", str(run), "--resume-with-changes", *changes, "--max-steps", "8"]) == 0

    got = learning_rates(run)
    expected = schedule(0.1, 2)[:4] + schedule(0.5, 2)[4:]
    assert sorted(got) == list(range(8))
    assert [got[step] for step in range(8)] == pytest.approx(expected, rel=1e-5)  # metrics.csv keeps 6 digits
    groups = load_checkpoint_safely(run / "checkpoints" / "last.ckpt")["optimizer_states"][0]["param_groups"]
    assert [(group["weight_decay"], group["momentum"]) for group in groups] == [(0.001, 0.5), (0.0, 0.5)]
    assert {group["initial_lr"] for group in groups} == {scaled_learning_rate(0.5, BATCH, "linear")}
    history = yaml.safe_load((run / "config-history.yaml").read_text())
    assert history[0]["step"] == 4 and set(history[0]["changes"]) == {"lr", "weight_decay", "momentum"}


@pytest.mark.parametrize(("started", "resumed"), [(2, 4), (4, 2)])
def test_a_changed_epochs_moves_the_end_of_the_cosine_to_the_new_last_step(
    tmp_path: Path, started: int, resumed: int
) -> None:
    run = tmp_path / "run"
    assert main(["pretrain", *TINY, "--epochs", str(started), "--max-steps", "5", "--out", str(run)]) == 0
    last = STEPS_PER_EPOCH * resumed
    args = ["--resume", str(run), "--resume-with-changes", "--epochs", str(resumed), "--max-steps", str(last)]
    assert main(["pretrain", *args]) == 0

    got = learning_rates(run)
    expected = schedule(0.1, started)[:5] + schedule(0.1, resumed)[5:]
    assert sorted(got) == list(range(last))  # the run ends at the new last step
    assert [got[step] for step in range(last)] == pytest.approx(expected, rel=1e-5)  # metrics.csv keeps 6 digits


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--batch-size", "32"), ("--optimizer", "adam"), ("--backbone", "resnet34"), ("--image-size", "48")],
)
def test_a_setting_no_resume_can_apply_is_refused_in_one_line(
    tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str], flag: str, value: str
) -> None:
    run = started_run(tmp_path_factory)
    before = {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}
    capsys.readouterr()
    assert main(["pretrain", "--resume", str(run), "--resume-with-changes", flag, value, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"simclr: error: {flag} cannot change on resume ("), err
    assert "start a new run" in err
    assert {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()} == before


_STARTED: dict[str, Path] = {}


def started_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One short run, shared by the refusals (none of them may change it)."""
    if "run" not in _STARTED:
        run = tmp_path_factory.mktemp("started") / "run"
        assert main(["pretrain", *TINY, "--epochs", "1", "--max-steps", "2", "--out", str(run)]) == 0
        _STARTED["run"] = run
    return _STARTED["run"]
