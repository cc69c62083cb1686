"""``simclr export``: every format computes what the loaded backbone computes, at any batch size (and, with
--dynamic-size, at other image sizes); errors are one line, exit 2."""

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


def reference_module(run: Path) -> torch.nn.Module:
    return load_backbone(run).module.eval()


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
def assert_run_metadata(extra_files: dict[str, str]) -> None:
    """The backbone file's metadata, as an exported archive carries it, is the test run's."""
    meta = json.loads(extra_files[METADATA_FILE])
    described = (meta["backbone"], meta["stem"], meta["image_size"], meta["feature_dim"])
    assert described == ("resnet18", "cifar", "32", "512")


def test_torchscript_matches_the_backbone_and_carries_metadata(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "backbone.ts"
    assert main(["export", str(run / "backbone.safetensors"), "--format", "torchscript", "--out", str(out)]) == 0
    extra = {METADATA_FILE: ""}
    scripted = torch.jit.load(str(out), _extra_files=extra)
    assert_run_metadata(extra)
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


def test_onnx_with_dynamic_size_takes_other_sizes_and_batches(run: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    out = tmp_path / "backbone.onnx"
    assert main(["export", str(run), "--format", "onnx", "--dynamic-size", "--out", str(out)]) == 0
    session = onnxruntime.InferenceSession(str(out))
    reference = reference_module(run)
    for size, batch in ((32, 2), (64, 3), (64, 1), (48, 2)):
        images = torch.randn(batch, 3, size, size)
        (features,) = session.run(None, {"images": images.numpy()})
        with torch.no_grad():
            torch.testing.assert_close(torch.from_numpy(features), reference(images), rtol=1e-3, atol=1e-4)


def test_onnx_without_dynamic_size_keeps_the_run_s_size(run: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    out = tmp_path / "backbone.onnx"
    assert main(["export", str(run), "--format", "onnx", "--out", str(out)]) == 0
    (shape,) = [tuple(d.dim_value or d.dim_param for d in i.type.tensor_type.shape.dim) for i in _onnx_inputs(out)]
    assert shape == ("batch", 3, 32, 32)
    with pytest.raises(onnxruntime.capi.onnxruntime_pybind11_state.InvalidArgument):
        onnxruntime.InferenceSession(str(out)).run(None, {"images": torch.randn(1, 3, 64, 64).numpy()})


def _onnx_inputs(path: Path) -> list:
    import onnx

    return list(onnx.load(str(path)).graph.input)


@pytest.mark.parametrize("dynamic_size", [False, True])
def test_pt2_matches_the_backbone_and_carries_metadata(run: Path, tmp_path: Path, dynamic_size: bool) -> None:
    out = tmp_path / "backbone.pt2"
    flags = ["--dynamic-size"] if dynamic_size else []
    assert main(["export", str(run), "--format", "pt2", *flags, "--out", str(out)]) == 0
    extra = {METADATA_FILE: ""}
    program = torch.export.load(out, extra_files=extra)
    assert_run_metadata(extra)
    module, reference = program.module(), reference_module(run)
    # the example traced had a batch of 2
    cases = ((32, 1), (64, 3), (40, 2)) if dynamic_size else ((32, 1), (32, 3))
    for size, batch in cases:
        images = torch.randn(batch, 3, size, size)
        with torch.no_grad():
            torch.testing.assert_close(module(images), reference(images), rtol=1e-4, atol=1e-5)
    if not dynamic_size:
        with pytest.raises(Exception, match="32"):  # the exported guard: the run's size only
            module(torch.randn(1, 3, 64, 64))


def test_pt2_needs_a_pt2_name_and_dynamic_size_a_format_that_fixes_sizes(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", str(run), "--format", "pt2", "--out", str(tmp_path / "backbone.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("torch.export.load reads only files named *.pt2; name --out accordingly")
    assert "\n" not in err
    out = tmp_path / "backbone.pt"
    assert main(["export", str(run), "--format", "torchscript", "--dynamic-size", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "simclr: error: --dynamic-size applies to --format pt2 and onnx; a torchscript file takes any size the "
        "backbone does, so leave --dynamic-size out"
    )
    assert list(tmp_path.iterdir()) == [run]


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")  # timm's ViT, traced by ONNX's exporter
@pytest.mark.parametrize("fmt", ["pt2", "onnx"])
def test_a_backbone_of_one_size_refuses_dynamic_size(
    make_run: MakeRun, tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    pytest.importorskip("timm")
    pytest.importorskip("onnx")
    # this ViT's position embedding fits one grid of patches: it takes only the size it was built for
    vit = make_run("spirograph", name="vit", backbone="timm:test_vit3", image_size=160)
    out = tmp_path / f"backbone.{fmt}"
    assert main(["export", str(vit), "--format", fmt, "--dynamic-size", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("simclr: error: timm:test_vit3 takes only 160 px inputs (")
    assert err.endswith("); export without --dynamic-size") and "\n" not in err
    assert list(tmp_path.iterdir()) == [vit]  # no file, no temporary
    assert main(["export", str(vit), "--format", fmt, "--out", str(out)]) == 0  # its own size still exports


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")  # what the test is about: the size baked in
def test_an_onnx_graph_that_keeps_the_traced_size_is_refused(
    make_run: MakeRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("timm")
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    # this ViT interpolates its position embedding in Python: any size in torch, the traced one in ONNX
    vit = make_run("spirograph", name="vit", backbone="timm:test_vit", image_size=160)
    out = tmp_path / "backbone.onnx"
    assert main(["export", str(vit), "--format", "onnx", "--dynamic-size", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("simclr: error: the ONNX graph of timm:test_vit keeps the traced 160 px size (320 px: ")
    assert err.endswith("export without --dynamic-size, or use --format pt2") and "\n" not in err
    assert list(tmp_path.iterdir()) == [vit]  # the graph written to the temporary is gone with it


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
        == "simclr: error: --format onnx needs the onnx package; pip install 'simclr-kit[onnx]' (or use --format pt2)"
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
