"""``simclr export``: every format computes what the loaded backbone computes; errors are one line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from simclr.cli import main
from simclr.evaluation.loading import load_backbone
from simclr.evaluation.weights.export import METADATA_FILE

from .conftest import MakeRun


@pytest.fixture
def run(make_run: MakeRun) -> Path:
    return make_run("spirograph", image_size=32)


def reference_features(run: Path, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return load_backbone(run).module(images)


def test_state_dict_loads_into_the_architecture(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "weights.pt"
    assert main(["export", str(run), "--format", "state_dict", "--out", str(out)]) == 0
    assert "resnet18 (cifar stem) as state_dict" in capsys.readouterr().out
    fresh = load_backbone(run, random_weights=True).module
    fresh.load_state_dict(torch.load(out, weights_only=True))
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(fresh(images), reference_features(run, images))


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_torchscript_matches_the_backbone_and_carries_metadata(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "backbone.ts"
    assert main(["export", str(run / "backbone.safetensors"), "--format", "torchscript", "--out", str(out)]) == 0
    extra = {METADATA_FILE: ""}
    scripted = torch.jit.load(str(out), _extra_files=extra)
    meta = json.loads(extra[METADATA_FILE])
    assert (meta["backbone"], meta["stem"], meta["image_size"], meta["feature_dim"]) == (
        "resnet18",
        "cifar",
        "32",
        "512",
    )
    images = torch.randn(3, 3, 32, 32)  # another batch size than any example input
    with torch.no_grad():
        torch.testing.assert_close(scripted(images), reference_features(run, images), rtol=1e-4, atol=1e-5)


def test_onnx_matches_the_backbone(run: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    out = tmp_path / "backbone.onnx"
    assert main(["export", str(run), "--format", "onnx", "--out", str(out)]) == 0
    images = torch.randn(2, 3, 32, 32)
    session = onnxruntime.InferenceSession(str(out))
    (features,) = session.run(None, {"images": images.numpy()})
    torch.testing.assert_close(torch.from_numpy(features), reference_features(run, images), rtol=1e-3, atol=1e-4)


def test_onnx_without_the_package_is_one_line(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real(name, *a))
    assert main(["export", str(run), "--format", "onnx", "--out", str(tmp_path / "b.onnx")]) == 2
    err = capsys.readouterr().err
    assert (
        err.strip()
        == "simclr: error: --format onnx needs the onnx package; pip install onnx (or use --format torchscript)"
    )
    assert not (tmp_path / "b.onnx").exists()


def test_existing_output_and_missing_folder_are_refused(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "taken.pt"
    out.write_text("mine")
    assert main(["export", str(run), "--format", "state_dict", "--out", str(out)]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err and out.read_text() == "mine"
    assert main(["export", str(run), "--format", "state_dict", "--out", str(tmp_path / "no" / "b.pt")]) == 2
    assert "does not exist; create it first" in capsys.readouterr().err
    assert main(["export", str(run), "--format", "state_dict", "--out", str(out), "--overwrite"]) == 0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left
