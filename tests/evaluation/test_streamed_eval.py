"""Evaluation of data bigger than memory: a packed split over the memory budget is streamed (features equal
to the in-memory path's), kNN reads its bank in pieces, a linear probe whose features exceed the budget is
fitted by mini-batch SGD with a note, and methods that need the images many times say so in one line."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from simclr.cli import main
from simclr.data.pack_settings import PackConfig
from simclr.data.packed import pack_dataset
from simclr.data.store import ImageStore
from simclr.data.streaming import PackedImages
from simclr.evaluation.loading import resolve_run
from simclr.evaluation.options import EvalSessionOptions
from simclr.evaluation.protocols.knn import run_knn
from simclr.evaluation.protocols.linear import run_linear_eval
from simclr.evaluation.session import EvalSession

TINY_BUDGET = 1024  # bytes: nothing fits


@pytest.fixture(scope="module")
def packed_cifar(cifar_small: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("packed") / "cifar"
    pack_dataset(str(cifar_small), out, PackConfig(workers=1))
    return out


def _session(run: Path, budget: int | None, eval_dir: Path) -> EvalSession:
    options = EvalSessionOptions(memory_budget=budget, workers=0, use_cache=False, batch_size=64)
    return EvalSession(resolve_run(run, eval_dir=eval_dir), options)


@pytest.mark.slow
def test_a_packed_split_over_the_budget_streams_with_the_in_memory_features(
    make_run, packed_cifar: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run = make_run("packed", packed_cifar)
    held = _session(run, None, tmp_path / "held")
    with caplog.at_level(logging.INFO, logger="simclr"):
        streamed = _session(run, TINY_BUDGET, tmp_path / "streamed")
        assert isinstance(streamed.splits["train"], PackedImages)
    assert isinstance(held.splits["train"], ImageStore)
    assert "train split: 300 images at 32 px take 900.0 KB decoded; memory budget 1.0 KB: streamed" in caplog.text
    for split in ("train", "test"):
        a, b = held.features(split), streamed.features(split)
        assert a.features.shape == b.features.shape == (len(held.splits[split]), 512)
        assert torch.equal(a.labels, b.labels)
        # the same images through the same model in the same batches: equal up to float rounding
        assert torch.allclose(a.features, b.features, atol=1e-3, rtol=1e-3)
    held_knn, streamed_knn = run_knn(held), run_knn(streamed)
    assert held_knn["metrics"]["k20"]["top1"] == streamed_knn["metrics"]["k20"]["top1"]


def test_features_over_the_budget_are_fitted_by_minibatch_sgd_with_a_note(
    make_run, packed_cifar: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    session = _session(make_run("packed", packed_cifar), TINY_BUDGET, tmp_path / "eval")
    with caplog.at_level(logging.INFO, logger="simclr"):
        entry = run_linear_eval(session)
    assert "linear: a full-batch L-BFGS fit of 300 x 512 features needs" in caplog.text
    assert "fitting the same objective by mini-batch SGD" in caplog.text
    assert entry["protocol"]["optimizer"].startswith("mini-batch SGD")
    assert "max_iter" not in entry["protocol"]
    assert 0.0 <= entry["metrics"]["top1"] <= 1.0


def test_finetuning_more_images_than_the_budget_is_one_line_and_exit_2(
    make_run, packed_cifar: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = make_run("packed", packed_cifar)
    code = main(["finetune", str(run), "--memory-budget", "1KB", "--epochs", "1", "--workers", "0"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert "Traceback" not in err
    # the log says which splits stream; the error is one line
    assert err.splitlines()[-1].startswith("simclr: error: finetune needs its 270 train images at 32 px in memory")
    assert "over the memory budget of 1.0 KB" in err and "raise --memory-budget" in err
