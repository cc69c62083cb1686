"""Learning rates that make the loss non-finite: the message says what is true of the run (issue 26)."""

from __future__ import annotations

from pathlib import Path

import pytest

from simclr.cli import main

pytestmark = pytest.mark.slow

TINY = [
    "--dataset", "spirograph", "--train-size", "32", "--test-size", "16", "--batch-size", "16", "--epochs", "2",
    "--image-size", "8", "--precision", "32", "--knn-every-epochs", "0", "--workers", "1", "--quiet",
]  # fmt: skip


def one_line_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    capsys.readouterr()
    assert main(list(args)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("simclr: error: "), err
    return err


def test_a_finite_but_huge_lr_before_the_first_checkpoint_says_none_was_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    err = one_line_error(capsys, "pretrain", *TINY, "--lr", "1e30", "--out", str(run))
    assert "the loss became" in err and "last good state" not in err
    assert f"no checkpoint was written, so {run} was removed" in err and "lower --lr" in err
    assert not run.exists()
    # the fix it names works with the same command line
    assert main(["pretrain", *TINY, "--lr", "0.1", "--out", str(run)]) == 0


def test_a_huge_lr_after_a_checkpoint_names_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert main(["pretrain", *TINY, "--lr", "0.1", "--max-steps", "2", "--out", str(run)]) == 0
    args = ["--resume", str(run), "--resume-with-changes", "--lr", "1e30", "--max-steps", "4", "--quiet"]
    err = one_line_error(capsys, "pretrain", *args)
    assert f"{run / 'checkpoints' / 'last.ckpt'} still holds the last good state" in err
    assert f"--resume {run} --resume-with-changes" in err
    assert (run / "checkpoints" / "last.ckpt").is_file()


def test_an_infinite_lr_is_refused_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    err = one_line_error(capsys, "pretrain", *TINY, "--lr", "inf", "--out", str(run))
    assert "--lr" in err
    assert not run.exists()
