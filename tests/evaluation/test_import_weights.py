"""simclr import-weights: every checkpoint style, built here from a random torchvision resnet18, imports to the
same weights, and evaluation loads the result; anything else is a one-line error."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from simclr.cli import main
from simclr.evaluation.loading import load_backbone, resolve_run
from simclr.models.backbone_file import read_backbone_metadata, read_backbone_tensors


class NotATensor:
    """Stands for code a checkpoint could smuggle in a pickle; weights_only refuses it."""


@pytest.fixture(scope="module")
def resnet() -> nn.Module:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None)
    for module in model.modules():  # BN statistics that differ from their defaults, so they are checked too
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
    return model.eval()


def _backbone_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if not k.startswith("fc.")}


def _styles(model: nn.Module) -> dict[str, object]:
    state = model.state_dict()
    backbone = _backbone_state(model)
    projection = {
        "fc.0.weight": torch.randn(512, 512),
        "fc.0.bias": torch.randn(512),
        "fc.2.weight": torch.randn(128, 512),
    }
    return {
        "sthalles.pth.tar": {
            "epoch": 100,
            "arch": "resnet18",
            "state_dict": OrderedDict({f"backbone.{k}": v for k, v in {**backbone, **projection}.items()}),
            "optimizer": {"state": {}, "param_groups": [{"lr": 0.0003}]},
        },
        "lightning.ckpt": {
            "epoch": 3,
            "global_step": 30,
            "pytorch-lightning_version": "2.2.0",
            "state_dict": {
                **{f"model.backbone.{k}": v for k, v in backbone.items()},
                "model.head.0.weight": torch.randn(128, 512),
            },
        },
        "encoder.ckpt": {
            "state_dict": {**{f"encoder.{k}": v for k, v in backbone.items()}, "projector.0.weight": torch.randn(4, 4)}
        },
        "dataparallel.pth": {f"module.{k}": v for k, v in state.items()},
        "torchvision.pth": dict(state),
    }


def test_every_checkpoint_style_imports_to_the_same_weights(resnet: nn.Module, tmp_path: Path, capsys) -> None:
    expected = _backbone_state(resnet)
    images = torch.randn(2, 3, 64, 64)
    resnet.fc = nn.Identity()
    with torch.no_grad():
        features = resnet(images)
    for name, checkpoint in _styles(resnet).items():
        source = tmp_path / name
        torch.save(checkpoint, source)
        out = tmp_path / f"run-{name}"
        args = ["import-weights", str(source), str(out), "--backbone", "resnet18", "--dataset", "cifar10"]
        assert main([*args, "--image-size", "64"]) == 0, capsys.readouterr().err
        tensors = read_backbone_tensors(out / "backbone.safetensors")
        assert tensors.keys() == expected.keys(), name
        assert all(torch.equal(tensors[k], expected[k]) for k in expected), name
        meta = read_backbone_metadata(out / "backbone.safetensors")
        assert (meta.backbone, meta.stem, meta.feature_dim, meta.image_size) == ("resnet18", "imagenet", 512, 64)
        loaded = load_backbone(resolve_run(out))  # what every evaluation command does with the run
        with torch.no_grad():
            assert torch.allclose(loaded.module(images), features, atol=1e-5), name
    printed = capsys.readouterr().out
    assert "left out 3 head tensor(s), e.g. backbone.fc.0.weight" in printed


def _one_line_error(capsys, *argv: str) -> str:
    assert main(list(argv)) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_unmatched_keys_shapes_and_foreign_files_are_one_line_errors(resnet: nn.Module, tmp_path: Path, capsys) -> None:
    state = _backbone_state(resnet)
    extra = tmp_path / "extra.ckpt"
    torch.save({"state_dict": {**{f"model.{k}": v for k, v in state.items()}, "model.queue": torch.zeros(3)}}, extra)
    err = _one_line_error(
        capsys, "import-weights", str(extra), str(tmp_path / "a.safetensors"), "--backbone", "resnet18"
    )
    assert "1 unmatched: model.queue" in err
    missing = tmp_path / "missing.pth"
    torch.save({k: v for k, v in state.items() if not k.startswith("layer4.")}, missing)
    err = _one_line_error(
        capsys, "import-weights", str(missing), str(tmp_path / "b.safetensors"), "--backbone", "resnet18"
    )
    assert "missing: layer4." in err
    plain = tmp_path / "plain.pth"
    torch.save(state, plain)
    err = _one_line_error(
        capsys,
        "import-weights",
        str(plain),
        str(tmp_path / "c.safetensors"),
        "--backbone",
        "resnet18",
        "--stem",
        "cifar",
    )
    assert "size mismatch" in err and "conv1.weight" in err
    hostile = tmp_path / "hostile.pth"
    torch.save({"state_dict": state, "payload": NotATensor()}, hostile)
    err = _one_line_error(
        capsys, "import-weights", str(hostile), str(tmp_path / "d.safetensors"), "--backbone", "resnet18"
    )
    assert f"{hostile} holds pickled Python objects (" in err and "not just tensors" in err
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint at all")
    assert "cannot read" in _one_line_error(
        capsys, "import-weights", str(junk), str(tmp_path / "e.safetensors"), "--backbone", "resnet18"
    )
    assert not list(tmp_path.glob("*.safetensors"))
