"""Weights from elsewhere (issue 26): torch hub's cache, checkpoints of other implementations, backbone files
handed over. Every one is read weights-only (a pickle's payload never runs, whoever wrote the file), and
whatever is not the network's finite tensors is one line naming the file, exit code 2, no traceback."""

from __future__ import annotations

import builtins
import json
import struct
from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision
from safetensors.torch import save_file

from simclr.cli import main
from simclr.config import build_config
from simclr.errors import UserError
from simclr.model_from_config import build_model
from simclr.models.backbone_file import BackboneMetadata, read_backbone_metadata, write_backbone
from simclr.models.backbones import build_backbone, load_imagenet_backbone
from simclr.settings import config_to_yaml


class Payload:
    """Unpickled in full, this writes ``marker``: what a crafted file in a cache would do instead."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return builtins.exec, (f"open({str(self.marker)!r}, 'w').write('the payload ran')",)


def test_the_payload_of_a_crafted_pickle_in_the_hub_cache_never_runs(
    offline_hub: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "marker"
    state: dict[str, Any] = dict(torchvision.models.resnet18().state_dict())
    state["conv1.weight"] = Payload(marker)
    torch.save(state, offline_hub)
    with pytest.raises(
        UserError, match=f"{offline_hub} holds pickled Python objects \\(exec\\), not just tensors"
    ) as info:
        build_model(build_config({}, {"dataset": "cifar10", "weights": "imagenet"}), 32)
    assert "delete it so that it is downloaded again" in str(info.value)
    argv = ["pretrain", "--dataset", "spirograph", "--train-size", "16", "--test-size", "16", "--batch-size", "8"]
    argv += ["--weights", "imagenet", "--accelerator", "cpu", "--out", str(tmp_path / "run"), "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"simclr: error: {offline_hub} holds pickled") and "\n" not in err
    assert not marker.exists()
    assert offline_hub.exists()  # the file is the user's to delete: nothing reads it in full, nothing removes it


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (lambda state: torchvision.models.resnet18(), "holds pickled Python objects"),  # torch.save(model)
        (lambda state: {"state_dict": state}, "is not a state dict of tensors"),
        (
            lambda state: {f"module.{key}": value for key, value in state.items()},
            "122 unexpected, 0 misshapen tensors, e.g. module.bn1.bias",
        ),
        (lambda state: {**state, "layer5.weight": torch.zeros(1)}, "1 unexpected"),
        (lambda state: {**state, "conv1.weight": torch.zeros(64, 3, 3, 3)}, "1 misshapen tensors, e.g. conv1.weight"),
        (lambda state: {**state, "bn1.weight": torch.full((64,), float("nan"))}, "holds NaN or infinite weights"),
        (lambda state: [1, 2, 3], "is not a state dict of tensors"),
    ],
)
def test_a_foreign_file_in_the_hub_cache_is_one_line_naming_it(offline_hub: Path, content: Any, message: str) -> None:
    torch.save(content(torchvision.models.resnet18().state_dict()), offline_hub)
    with pytest.raises(UserError) as info:
        load_imagenet_backbone("resnet18")
    assert str(info.value).startswith(str(offline_hub)) and message in str(info.value)
    assert "\n" not in str(info.value)


def test_a_missing_file_is_downloaded_checked_against_the_hash_in_its_name(
    offline_hub: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = torchvision.models.resnet18().state_dict()
    asked: list[tuple[str, str, str | None]] = []

    def download(url: str, dst: str, hash_prefix: str | None = None, progress: bool = True) -> None:
        asked.append((url, dst, hash_prefix))
        torch.save(reference, dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    module, feature_dim, weights = load_imagenet_backbone("resnet18")
    assert asked == [(weights.url, str(offline_hub), "f37072fd")] and feature_dim == 512
    assert torch.equal(module.state_dict()["conv1.weight"], reference["conv1.weight"])


def test_import_weights_refuses_a_pickled_model_and_nan_weights_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "marker"
    cases = {
        "model.pt": (
            torchvision.models.resnet18(),
            "holds pickled Python objects (torchvision.models.resnet.ResNet), not just tensors",
        ),
        "payload.pt": ({"conv1.weight": Payload(marker)}, "holds pickled Python objects (exec)"),
        "nan.pt": (
            {**torchvision.models.resnet18().state_dict(), "fc.bias": torch.full((1000,), float("inf"))},
            "holds NaN or infinite weights (1 of 122 tensors, e.g. fc.bias)",
        ),
        "extra.pt": ({**torchvision.models.resnet18().state_dict(), "extra.w": torch.zeros(1)}, "1 unmatched: extra.w"),
    }
    for name, (content, message) in cases.items():
        torch.save(content, tmp_path / name)
        out = tmp_path / f"{name}.safetensors"
        assert main(["import-weights", str(tmp_path / name), str(out), "--backbone", "resnet18"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"simclr: error: {tmp_path / name}") and message in err and "\n" not in err, err
        assert not out.exists()
    assert not marker.exists()


def write_run(run: Path, tensors: dict[str, torch.Tensor]) -> Path:
    """A run directory of a CIFAR-10 ResNet-18 with the given backbone tensors (no data needed to refuse them)."""
    run.mkdir()
    config = build_config({"dataset": "cifar10", "data_dir": str(run / "no-data"), "out": str(run)}, {})
    (run / "config.yaml").write_text(config_to_yaml(config))
    meta = BackboneMetadata(backbone="resnet18", stem="cifar", feature_dim=512, dataset="cifar10", image_size=32)
    write_backbone(run / "backbone.safetensors", tensors, meta)
    return run


@pytest.mark.parametrize("command", ["evaluate", "knn", "linear-eval"])
def test_a_backbone_file_holding_nan_weights_is_refused_when_loaded(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module, _ = build_backbone("resnet18", "cifar")
    tensors = module.state_dict()
    tensors["layer2.0.conv1.weight"][0, 0, 0, 0] = float("nan")
    run = write_run(tmp_path / "run", tensors)
    assert main([command, str(run)]) == 2
    err = capsys.readouterr().err.strip()
    backbone = run / "backbone.safetensors"
    assert err == (
        f"simclr: error: {backbone} holds NaN or infinite weights (1 of {len(tensors)} tensors, e.g. "
        "layer2.0.conv1.weight): the training diverged or the file is damaged; use an earlier checkpoint or train "
        "again with a lower --lr"
    )
    assert sorted(path.name for path in run.iterdir()) == ["backbone.safetensors", "config.yaml"]


def test_a_safetensors_header_nested_200000_deep_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    header = b"[" * 200_000 + b"]" * 200_000
    path = tmp_path / "backbone.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    with pytest.raises(UserError, match="its header nests too deeply; the file is damaged"):
        read_backbone_metadata(path)
    run = write_run(tmp_path / "run", build_backbone("resnet18", "cifar")[0].state_dict())
    (run / "backbone.safetensors").write_bytes(path.read_bytes())
    assert main(["evaluate", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert "its header nests too deeply" in err and "\n" not in err


def test_a_header_naming_tensors_that_are_not_there_is_one_line(tmp_path: Path) -> None:
    from simclr.models.backbone_file import read_backbone_tensors

    header = json.dumps({"w": {"dtype": "F32", "shape": [1000, 1000], "data_offsets": [0, 4_000_000]}}).encode()
    path = tmp_path / "backbone.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 16)
    with pytest.raises(UserError, match="the file is damaged") as info:
        read_backbone_tensors(path)
    assert "\n" not in str(info.value)
    save_file({"w": torch.zeros(2)}, str(path))
    assert read_backbone_tensors(path)["w"].shape == (2,)
