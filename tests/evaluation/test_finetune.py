"""Fine-tuning, the shared training loop and the SGD linear probe: they train, select on validation only,
and never touch weights they must not touch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from torch import nn

from simclr.cli import main
from simclr.data.sampling import stratified_subset
from simclr.errors import UserError
from simclr.evaluation.classifiers import fitting
from simclr.evaluation.classifiers.classifier_heads import Classifier, build_classifier_head
from simclr.evaluation.classifiers.finetune import run_finetune
from simclr.evaluation.classifiers.fitting import fit_classifier
from simclr.evaluation.classifiers.inputs import InputPipeline, predict_logits
from simclr.evaluation.loading import resolve_run
from simclr.evaluation.options import ClassifierTrainingOptions, EvalSessionOptions, FinetuneOptions, LinearEvalOptions
from simclr.evaluation.protocols.linear_sgd import train_linear_sgd
from simclr.evaluation.session import EvalSession

CPU = torch.device("cpu")
FAST = [
    "--epochs",
    "1",
    "--train-batch-size",
    "64",
    "--batch-size",
    "128",
    "--limit-test-images",
    "40",
    "--accelerator",
    "cpu",
]


# -- helpers --------------------------------------------------------------------------------------
def dark_bright(n_per_class: int, size: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Class 0: dark noise images, class 1: bright noise images (trivially separable by brightness)."""
    gen = torch.Generator().manual_seed(seed)
    dark = torch.randint(0, 70, (n_per_class, 3, size, size), generator=gen, dtype=torch.uint8)
    bright = torch.randint(185, 256, (n_per_class, 3, size, size), generator=gen, dtype=torch.uint8)
    labels = torch.cat([torch.zeros(n_per_class), torch.ones(n_per_class)]).long()
    return torch.cat([dark, bright]), labels


@pytest.fixture
def dark_bright_folder(tmp_path: Path) -> Path:
    """An image folder with train/ and test/ splits of dark and bright 32px PNGs."""
    root = tmp_path / "dark-bright"
    for split, n, seed in (("train", 16, 1), ("test", 8, 2)):
        images, labels = dark_bright(n, size=32, seed=seed)
        for i, (image, label) in enumerate(zip(images, labels.tolist(), strict=True)):
            folder = root / split / ("dark", "bright")[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.ascontiguousarray(image.permute(1, 2, 0).numpy())).save(folder / f"{i:03d}.png")
    return root


class Spy:
    """Wraps :func:`fit_classifier` to keep the model it trained and its state just before training."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(
        self,
        model: Classifier,
        pipeline: InputPipeline,
        train: Any,
        val: Any,
        config: ClassifierTrainingOptions,
        **kwargs: Any,
    ) -> Any:
        before = {k: v.detach().clone() for k, v in model.state_dict().items()}
        result = fit_classifier(model, pipeline, train, val, config, **kwargs)
        self.calls.append({"model": model, "before": before, "train": train, "val": val, "result": result})
        return result


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Spy:
    recorder = Spy()
    monkeypatch.setattr(fitting, "fit_classifier", recorder)
    return recorder


def same_as_file(module: nn.Module, path: Path) -> bool:
    stored = load_file(str(path))
    state = module.state_dict()
    return set(stored) == set(state) and all(torch.equal(state[k].cpu(), v) for k, v in stored.items())


def session_for(run: Path, **options: Any) -> EvalSession:
    return EvalSession(resolve_run(run), EvalSessionOptions(accelerator="cpu", use_cache=False, **options))


# -- the loop itself -------------------------------------------------------------------------------
def test_loop_learns_a_separable_toy_problem() -> None:
    images, labels = dark_bright(40)
    test_images, test_labels = dark_bright(20, seed=5)
    backbone = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())  # mean colour: separable features
    torch.manual_seed(0)
    model = Classifier(backbone, build_classifier_head("linear", 3, 2), freeze_backbone=False)
    pipeline = InputPipeline(8, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    config = ClassifierTrainingOptions(epochs=8, batch_size=16, lr=0.05, patience=0)
    result = fit_classifier(model, pipeline, (images, labels), (test_images[:10], test_labels[:10]), config, device=CPU)
    assert result.epochs_run == 8 and not result.stopped_early
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.history[-1]["train_top1"] > 0.9  # counted on the device as the loop trains
    scores = predict_logits(model, pipeline, test_images, device=CPU)
    assert (scores.argmax(1) == test_labels).float().mean() > 0.9


def test_early_stopping_keeps_the_best_validation_epoch() -> None:
    images, labels = dark_bright(16)
    val = dark_bright(8, seed=3)
    torch.manual_seed(0)
    model = Classifier(
        nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()),
        build_classifier_head("linear", 3, 2),
        freeze_backbone=False,
    )
    pipeline = InputPipeline(8, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    # min_delta so large that only the first epoch counts as an improvement: stop after epoch 2
    config = ClassifierTrainingOptions(epochs=5, batch_size=8, lr=0.05, patience=1, min_delta=100.0)
    result = fit_classifier(model, pipeline, (images, labels), val, config, device=CPU)
    assert (result.epochs_run, result.best_epoch, result.stopped_early) == (2, 1, True)
    val_loss = float(nn.functional.cross_entropy(predict_logits(model, pipeline, val[0], device=CPU), val[1]))
    first, second = result.history[0]["val_loss"], result.history[1]["val_loss"]
    assert first != second
    assert val_loss == pytest.approx(first, abs=1e-6)  # the epoch-1 weights were restored


def test_frozen_classifier_keeps_backbone_in_eval_mode() -> None:
    norm = nn.BatchNorm2d(4)
    backbone = nn.Sequential(nn.Conv2d(3, 4, 3), norm, nn.AdaptiveAvgPool2d(1), nn.Flatten())
    model = Classifier(backbone, build_classifier_head("mlp", 4, 3, hidden_dim=8), freeze_backbone=True).train()
    assert not backbone.training and model.head.training
    head, body = model.trainable_groups()
    assert body == [] and all(not p.requires_grad for p in backbone.parameters())
    assert norm.running_mean is not None
    stats = norm.running_mean.clone()
    model(torch.randn(4, 3, 8, 8)).sum().backward()
    assert torch.equal(norm.running_mean, stats)
    assert all(p.grad is None for p in backbone.parameters()) and all(p.grad is not None for p in head)


class _Poison(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * float("nan")


def test_a_non_finite_loss_is_a_user_error() -> None:
    images, labels = dark_bright(4)
    backbone = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), _Poison())
    model = Classifier(backbone, build_classifier_head("linear", 3, 2), freeze_backbone=False)
    pipeline = InputPipeline(8, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    with pytest.raises(UserError, match="lower --lr"):
        fit_classifier(
            model, pipeline, (images, labels), None, ClassifierTrainingOptions(epochs=1, batch_size=4), device=CPU
        )


# -- fine-tuning a run ------------------------------------------------------------------------------
def test_finetune_trains_a_copy_and_leaves_the_session_backbone_alone(
    make_run: Any, cifar_small: Path, spy: Spy
) -> None:
    run = make_run("cifar10", cifar_small)
    session = session_for(run, limit_train_images=100, limit_test_images=40)
    entry = run_finetune(session, FinetuneOptions(epochs=1, batch_size=32, label_fraction=0.5, head="linear"))
    (call,) = spy.calls
    trained = call["model"]
    assert not same_as_file(trained.backbone, run / "backbone.safetensors")  # fine-tuned: the backbone moved
    assert same_as_file(session.backbone.module, run / "backbone.safetensors")  # ... but only the copy
    assert all(not p.requires_grad for p in session.backbone.module.parameters())
    train_labels = session.splits["train"].labels
    expected = stratified_subset(train_labels, round(0.5 * train_labels.numel()), 0).numel()
    protocol = entry["protocol"]
    assert protocol["n_labelled"] == expected == 50 and protocol["n_train_split"] == 100
    assert protocol["n_train"] + protocol["n_val"] == expected and protocol["n_val"] == 5
    # fit and validation are disjoint, and no validation image is a test image (test is its own split)
    fit_images, val_images = call["train"][0], call["val"][0]
    test_images = session.splits["test"].images
    flat = lambda x: x.reshape(x.shape[0], -1)  # noqa: E731
    assert not (flat(val_images)[:, None] == flat(fit_images)[None]).all(-1).any()
    assert not (flat(val_images)[:, None] == flat(test_images)[None]).all(-1).any()
    assert entry["metrics"]["n_test"] == 40 and len(entry["metrics"]["history"]) == 1


def test_finetune_cli_with_frozen_backbone(
    make_run: Any, cifar_small: Path, spy: Spy, capsys: pytest.CaptureFixture[str]
) -> None:
    run = make_run("cifar10", cifar_small)
    code = main(["finetune", str(run), "--label-fraction", "0.5", "--freeze-backbone", *FAST])
    assert code == 0
    (call,) = spy.calls
    model, before = call["model"], call["before"]
    assert same_as_file(model.backbone, run / "backbone.safetensors")  # bit-identical, BN statistics included
    head_state = model.head.state_dict()
    assert any(not torch.equal(head_state[k], before[f"head.{k}"]) for k in head_state)  # the head trained
    doc = json.loads((run / "eval" / "metrics.json").read_text())
    entry = doc["results"]["finetune"]
    protocol = entry["protocol"]
    for key in (
        "label_fraction",
        "labels_per_class",
        "n_labelled",
        "n_train",
        "n_val",
        "head",
        "freeze_backbone",
        "optimizer",
        "lr",
        "weight_decay",
        "batch_size",
        "epochs_max",
        "epochs_run",
        "best_epoch",
        "stopped_early",
        "patience",
        "augmentation",
        "backbone_sha256",
        "seed",
        "n_test",
    ):
        assert key in protocol, key
    assert protocol["label_fraction"] == 0.5 and protocol["n_labelled"] == 150 and protocol["freeze_backbone"] is True
    assert protocol["head"] == "mlp" and protocol["backbone_lr"] is None and protocol["epochs_run"] == 1
    assert protocol["best_epoch"] == 1 and protocol["selection"].startswith("weights of the epoch")
    metrics = entry["metrics"]
    assert {"top1", "top5", "macro_f1", "weighted_f1", "confusion_matrix", "history"} <= set(metrics)
    assert set(metrics["history"][0]) == {"epoch", "train_loss", "train_top1", "val_loss", "val_top1"}
    assert 0.0 <= metrics["history"][0]["train_top1"] <= 1.0
    assert (run / "eval" / "plots" / "finetune_curves.png").stat().st_size > 1000  # loss and top-1 per epoch
    assert (run / "eval" / "plots" / "confusion_matrix_finetune.png").stat().st_size > 1000
    out = capsys.readouterr().out
    assert "finetune top-1" in out and "macro-F1" in out and str(run / "eval" / "metrics.json") in out


def test_finetune_refuses_an_unlabelled_dataset(make_run: Any, capsys: pytest.CaptureFixture[str]) -> None:
    run = make_run("spirograph", train_size=40, test_size=10)
    assert main(["finetune", str(run), "--epochs", "1", "--accelerator", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "fine-tuning needs class labels" in err and "spirograph" in err and "Traceback" not in err


def test_bad_training_flags_are_user_errors(
    make_run: Any, cifar_small: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = make_run("cifar10", cifar_small)
    assert main(["finetune", str(run), "--label-fraction", "0.5", "--labels-per-class", "3"]) == 2
    assert "not allowed with" in capsys.readouterr().err
    assert main(["finetune", str(run), "--label-fraction", "1.5"]) == 2
    assert "(0, 1]" in capsys.readouterr().err
    assert main(["finetune", str(run), "--lr", "-1"]) == 2
    assert "lr must be > 0, got -1.0; fix --lr" in capsys.readouterr().err


# -- the SGD linear probe ---------------------------------------------------------------------------
def test_linear_sgd_learns_with_a_frozen_backbone(make_run: Any, dark_bright_folder: Path, spy: Spy) -> None:
    run = make_run("imagefolder", dark_bright_folder)
    session = session_for(run)
    entry = train_linear_sgd(session, LinearEvalOptions(method="sgd", epochs=3, val_fraction=0.25), batch_size=8)
    (call,) = spy.calls
    assert same_as_file(call["model"].backbone, run / "backbone.safetensors")
    assert same_as_file(session.backbone.module, run / "backbone.safetensors")
    assert entry["method"] == "linear_sgd"
    protocol, metrics = entry["protocol"], entry["metrics"]
    assert protocol["selection"] == "last epoch" and protocol["best_epoch"] is None
    assert protocol["optimizer"] == "sgd" and protocol["momentum"] == 0.9 and protocol["weight_decay"] == 1e-6
    assert protocol["n_train"] == 24 and protocol["n_val"] == 8 and protocol["epochs_run"] == 3
    assert [row["epoch"] for row in metrics["history"]] == [1, 2, 3]
    assert metrics["n_test"] == 16 and metrics["top1"] > 0.9


def test_finetune_on_the_labelled_part_of_a_subset_file(make_run: Any, cifar_small: Path, tmp_path: Path) -> None:
    run = make_run("cifar10", cifar_small)
    split = tmp_path / "split.json"
    argv = ["data", "split", "cifar10", str(split), "--data-dir", str(cifar_small), "--labelled-per-class", "5"]
    assert main(argv) == 0
    assert main(["finetune", str(run), "--subset", str(split), "--freeze-backbone", *FAST]) == 0
    protocol = json.loads((run / "eval" / "metrics.json").read_text())["results"]["finetune"]["protocol"]
    assert protocol["n_labelled"] == 50 and protocol["n_train"] + protocol["n_val"] == 50
    assert protocol["subset_file"] == str(split) and len(protocol["subset_sha256"]) == 64


def test_layer_decay_gives_each_block_below_the_top_a_smaller_rate() -> None:
    from simclr.models.backbones import build_backbone

    backbone, dim = build_backbone("resnet18", "cifar")
    model = Classifier(backbone, nn.Linear(dim, 3), freeze_backbone=False)
    config = ClassifierTrainingOptions(optimizer="sgd", lr=0.1, backbone_lr_scale=0.5, layer_decay=0.5)
    groups = fitting._build_optimizer(model, config).param_groups
    assert [group["lr"] for group in groups] == pytest.approx([0.1] + [0.05 * 0.5**depth for depth in range(9)])
    top, stem = groups[1]["params"], groups[-1]["params"]
    assert top[0] is backbone.layer4[1].conv1.weight and stem[0] is backbone.conv1.weight  # the top block, the stem
    trained = {id(p) for group in groups for p in group["params"]}
    assert trained == {id(p) for p in model.parameters()}  # every parameter once
    plain = fitting._build_optimizer(model, ClassifierTrainingOptions(optimizer="sgd", lr=0.1, backbone_lr_scale=0.5))
    assert [group["lr"] for group in plain.param_groups] == pytest.approx([0.1, 0.05])
