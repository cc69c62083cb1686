"""The supervised baseline: from scratch with the run's architecture, or from torchvision's ImageNet
weights read from the torch.hub cache (and a clear message naming that cache file when offline)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision

from simclr.cli import main
from simclr.evaluation.classifiers.inputs import InputPipeline
from simclr.models.backbones import imagenet_cache_file, imagenet_weights, load_imagenet_backbone

FAST = [
    "--epochs",
    "1",
    "--limit-train-images",
    "60",
    "--limit-test-images",
    "20",
    "--train-batch-size",
    "32",
    "--accelerator",
    "cpu",
    "--no-cache",
]


def read_result(run: Path, key: str) -> dict[str, Any]:
    doc = json.loads((run / "eval" / "metrics.json").read_text())
    result: dict[str, Any] = doc["results"][key]
    return result


def test_from_scratch_trains_the_runs_architecture(make_run: Any, cifar_small: Path) -> None:
    run = make_run("cifar10", cifar_small)
    assert main(["supervised", str(run), "--label-fraction", "0.5", *FAST]) == 0
    entry = read_result(run, "supervised")
    protocol = entry["protocol"]
    assert entry["method"] == "supervised"
    assert protocol["weights"] == "none" and protocol["architecture"] == "resnet18" and protocol["stem"] == "cifar"
    assert protocol["image_size"] == 32 and protocol["n_labelled"] == 30 and protocol["epochs_run"] == 1
    assert protocol["backbone_lr"] == protocol["lr"] == 1e-3  # from scratch: every layer at the full rate
    assert 0.0 <= entry["metrics"]["top1"] <= 1.0 and entry["metrics"]["n_test"] == 20


def test_offline_error_names_the_cache_file_and_the_url(
    offline_hub: Path, make_run: Any, cifar_small: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = imagenet_weights("resnet18")
    assert imagenet_cache_file(weights) == str(offline_hub)
    run = make_run("cifar10", cifar_small)
    assert main(["supervised", str(run), "--weights", "imagenet", *FAST]) == 2
    err = capsys.readouterr().err
    assert str(offline_hub) in err and weights.url in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not offline_hub.exists()


def test_cached_weights_load_without_network(offline_hub: Path, make_run: Any, cifar_small: Path) -> None:
    torch.manual_seed(3)
    reference = torchvision.models.resnet18().state_dict()
    torch.save(reference, offline_hub)  # not torchvision's file: torch.hub checks the hash only with check_hash=True
    module, feature_dim, weights = load_imagenet_backbone("resnet18")
    assert feature_dim == 512 and weights.url.endswith(offline_hub.name)
    state = module.state_dict()
    assert set(state) == {k for k in reference if not k.startswith("fc.")}
    assert all(torch.equal(state[k], reference[k]) for k in state)

    run = make_run("cifar10", cifar_small)
    assert (
        main(["supervised", str(run), "--weights", "imagenet", "--image-size", "32", "--freeze-backbone", *FAST]) == 0
    )
    protocol = read_result(run, "supervised_imagenet")["protocol"]
    assert protocol["weights"] == "imagenet" and protocol["stem"] == "imagenet" and protocol["image_size"] == 32
    assert "IMAGENET1K_V1" in protocol["initial_weights"] and "0.485" in protocol["normalization"]


class _Payload:
    """Unpickled in full, this writes ``marker``: what a crafted file in the torch hub cache would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return exec, (f"open({str(self.marker)!r}, 'w').write('ran')",)


def test_a_crafted_pickle_in_the_hub_cache_is_refused_without_running(
    offline_hub: Path, make_run: Any, cifar_small: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "marker"
    torch.save({**torchvision.models.resnet18().state_dict(), "conv1.weight": _Payload(marker)}, offline_hub)
    run = make_run("cifar10", cifar_small)
    assert main(["supervised", str(run), "--weights", "imagenet", *FAST]) == 2
    err = capsys.readouterr().err
    assert f"{offline_hub} holds pickled Python objects (exec), not just tensors" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not marker.exists()


def test_imagenet_inputs_are_upsampled_on_the_device() -> None:
    pipeline = InputPipeline(64, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    assert pipeline.plain(images).shape == (2, 3, 64, 64)
    assert pipeline.augmented(images, torch.Generator().manual_seed(0)).shape == (2, 3, 64, 64)
    same = InputPipeline(32, (0.5,) * 3, (0.5,) * 3).plain(images)  # type: ignore[arg-type]
    assert torch.allclose(same, images.float() / 127.5 - 1.0, atol=1e-6)  # identity at the stored size
