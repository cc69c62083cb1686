"""linear-eval, knn and regress on run directories: results, protocol, cache, frozen weights, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from simclr.cli import main
from simclr.evaluation.loading import file_sha256, resolve_run
from simclr.evaluation.options import EvalSessionOptions, LinearEvalOptions
from simclr.evaluation.protocols.knn import run_knn
from simclr.evaluation.protocols.linear import run_linear_eval
from simclr.evaluation.results import validate_metrics
from simclr.evaluation.session import EvalSession

FAST = ["--max-iter", "60", "--l2-grid", "1e-5:1e-1:3"]


def _metrics(run: Path, eval_name: str = "eval") -> dict:
    doc = json.loads((run / eval_name / "metrics.json").read_text())
    validate_metrics(doc)
    return doc


def test_linear_eval_and_knn_record_protocol_and_cache_features(make_run, cifar_small: Path, capsys) -> None:
    run = make_run("cifar10", cifar_small)
    assert main(["linear-eval", str(run), *FAST]) == 0
    assert main(["knn", str(run), "--k", "50", "10"]) == 0
    out = capsys.readouterr().out
    assert "linear top-1" in out and "knn k50 top-1" in out
    doc = _metrics(run)
    sha = file_sha256(run / "backbone.safetensors")
    assert doc["backbone"]["sha256"] == sha and doc["backbone"]["name"] == "resnet18"
    assert doc["dataset"]["class_names"][0] == "airplane"
    linear = doc["results"]["linear"]
    protocol = linear["protocol"]
    assert protocol["backbone_sha256"] == sha
    assert protocol["backbone_epoch"] == 2 and protocol["backbone_step"] == 12
    assert protocol["n_train"] == 300 and protocol["n_test"] == 100
    assert protocol["n_fit"] + protocol["n_val"] == 300
    assert protocol["chosen_l2"] in protocol["l2_grid"]
    assert protocol["test_split"] == "official test split"
    assert 0.0 <= linear["metrics"]["top1"] <= 1.0
    assert len(linear["metrics"]["confusion_matrix"]) == 10
    assert sum(map(sum, linear["metrics"]["confusion_matrix"])) == 100
    knn = doc["results"]["knn"]
    assert knn["protocol"]["k"] == [50, 10] and knn["protocol"]["temperature"] == 0.1
    assert set(knn["metrics"]) == {"k50", "k10"}
    assert len(list((run / "eval" / "features").glob("*.pt"))) == 2  # train + test, shared by both methods


def test_linear_eval_with_the_focal_loss_records_it(make_run, cifar_small: Path) -> None:
    run = make_run("cifar10", cifar_small)
    assert main(["linear-eval", str(run), *FAST, "--loss", "focal", "--focal-gamma", "1.5"]) == 0
    linear = _metrics(run)["results"]["linear"]
    assert linear["protocol"]["objective"].startswith("mean focal loss (gamma 1.5)")
    assert 0.0 <= linear["metrics"]["top1"] <= 1.0
    assert main(["linear-eval", str(run), "--loss", "focal", "--focal-gamma", "-1"]) == 2


def test_cached_features_are_reused(make_run, cifar_small: Path, monkeypatch) -> None:
    run = make_run("cifar10", cifar_small)
    assert main(["knn", str(run)]) == 0

    def fail(*args, **kwargs):
        raise AssertionError("features were recomputed although cached")

    monkeypatch.setattr("simclr.evaluation.session.extract_features", fail)
    assert main(["knn", str(run)]) == 0
    with pytest.raises(AssertionError, match="recomputed"):
        main(["knn", str(run), "--no-cache"])


def test_backbone_is_bit_identical_after_linear_eval_and_knn(make_run, cifar_small: Path) -> None:
    run = make_run("cifar10", cifar_small)
    file_hash = file_sha256(run / "backbone.safetensors")
    session = EvalSession(
        resolve_run(run), EvalSessionOptions(limit_train_images=100, limit_test_images=50, use_cache=False)
    )
    module = session.backbone.module
    module.train()  # features must still be computed in eval mode: BN running statistics may not move
    before = {name: tensor.clone() for name, tensor in module.state_dict().items()}
    run_linear_eval(session, LinearEvalOptions(l2_grid=(1e-3,), max_iter=20))
    run_knn(session)
    run_linear_eval(session, LinearEvalOptions(tta=2, l2_grid=(1e-3,), max_iter=20))
    after = module.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert module.training, "the module's train/eval mode is restored"
    assert file_sha256(run / "backbone.safetensors") == file_hash


def test_test_split_is_held_out_when_missing_and_never_overlaps(make_run, cifar_small: Path, tmp_path: Path) -> None:
    folder = tmp_path / "flat"
    shutil.copytree(cifar_small / "train", folder)  # class folders, no train/test layout
    run = make_run("imagefolder", folder)
    session = EvalSession(resolve_run(run), EvalSessionOptions())
    train, test = session.splits["train"], session.splits["test"]
    assert session.splits.test_is_held_out
    assert len(train) + len(test) == 300
    assert not set(train.file_names) & set(test.file_names)
    assert torch.bincount(test.labels).tolist() == [6] * 10  # stratified 20%
    assert main(["linear-eval", str(run), *FAST]) == 0
    protocol = _metrics(run)["results"]["linear"]["protocol"]
    assert protocol["test_split"] == "held-out part of train"
    assert protocol["n_fit"] + protocol["n_val"] == protocol["n_train"] == 240


def test_random_weights_baseline_goes_to_its_own_directory(make_run, cifar_small: Path) -> None:
    run = make_run("cifar10", cifar_small)
    assert main(["knn", str(run), "--random-weights", "--limit-train-images", "100"]) == 0
    doc = _metrics(run, "eval-random-weights")
    assert doc["backbone"]["weights"] == "random"
    assert doc["results"]["knn"]["protocol"]["weights"] == "random"
    assert doc["results"]["knn"]["protocol"]["n_train"] == 100
    assert not (run / "eval").exists()


def test_regress_spirograph_factors(make_run) -> None:
    run = make_run("spirograph", train_size=240, test_size=80)
    assert main(["regress", str(run), *FAST]) == 0
    entry = _metrics(run)["results"]["regression"]
    assert set(entry["metrics"]["per_factor"]) == {"m", "b", "sigma", "rfore"}
    assert entry["metrics"]["n_test"] == 80
    assert "fresh nuisance" in entry["protocol"]["features"]
    assert entry["metrics"]["r2"] > 0.0, "even random conv features carry some factor information"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["knn", "{missing}"], "does not exist"),
        (["linear-eval", "{empty}"], "has no backbone.safetensors"),
        (["linear-eval", "{run}", "--tta", "1"], "--tta 1"),
        (["knn", "{run}", "--temperature", "0"], "temperature must be > 0, got 0.0; fix --temperature"),
        (["linear-eval", "{run}", "--l2-grid", "x"], "bad L2 grid"),
        (["regress", "{run}"], "has no generative factors"),
    ],
)
def test_bad_input_is_one_line_exit_2_nothing_written(
    make_run, cifar_small: Path, tmp_path: Path, capsys, argv, message
) -> None:
    run = make_run("cifar10", cifar_small)
    (tmp_path / "empty").mkdir()
    args = [a.format(run=run, missing=tmp_path / "missing", empty=tmp_path / "empty") for a in argv]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.startswith("simclr: error:") and "\n" not in err
    assert not (run / "eval").exists()


def test_knn_on_spirograph_says_to_regress(make_run, capsys) -> None:
    run = make_run("spirograph", train_size=50, test_size=20)
    assert main(["knn", str(run)]) == 2
    assert "use 'simclr regress'" in capsys.readouterr().err


def test_an_evaluation_folder_has_one_writer_and_is_released(make_run, cifar_small: Path, capsys) -> None:
    """Two evaluations writing one folder would interleave metrics.json: the second stops in one line while
    the first holds it, and once it is released (the lock gone) the next evaluation writes as usual."""
    from simclr.runs import claim, release

    run = make_run("cifar10", cifar_small)
    (run / "eval").mkdir()
    claim(run / "eval")  # this process stands for a live evaluation of the same run
    try:
        assert main(["knn", str(run), "--k", "10"]) == 2
        err = capsys.readouterr().err.strip()
        assert "is in use by process" in err and "--eval-dir" in err and "\n" not in err
        assert not (run / "eval" / "metrics.json").exists()
    finally:
        release(run / "eval")
    assert main(["knn", str(run), "--k", "10"]) == 0
    assert "knn" in _metrics(run)["results"]
    assert sorted(path.name for path in (run / "eval").iterdir() if path.name.startswith(".")) == []
