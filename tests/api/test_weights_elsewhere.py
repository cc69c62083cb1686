"""backbone.safetensors travels: its metadata says how to rebuild and feed the network, it has the run's file
permissions, and docs/GUIDE.md's plain-torchvision code loads it into the same function as simclr's loader."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from simclr.errors import UserError
from simclr.models.backbone_file import BackboneMetadata, read_backbone_metadata, write_backbone
from simclr.models.backbones import build_backbone

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "GUIDE.md"
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.247, 0.2435, 0.2616)


def readme_block(section: str, contains: str) -> str:
    """The first python block of docs/GUIDE.md section ``section`` that contains ``contains``."""
    text = GUIDE.read_text()
    body = text[text.index(f"## {section}") :]
    body = body[: body.find("\n## ", 4)]
    return next(b for b in re.findall(r"```python\n(.*?)```", body, re.S) if contains in b)


@pytest.fixture
def umask() -> Iterator[None]:
    previous = os.umask(0o027)
    yield
    os.umask(previous)


def saved_backbone(folder: Path, stem: str = "cifar") -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(0)
    module, dim = build_backbone("resnet18", stem)  # type: ignore[arg-type]
    meta = BackboneMetadata("resnet18", stem, dim, "cifar10", 32, mean=CIFAR_MEAN, std=CIFAR_STD)
    path = folder / "backbone.safetensors"
    write_backbone(path, module.state_dict(), meta)
    return path, module.eval()


def test_metadata_carries_normalisation_image_size_and_stem(tmp_path: Path) -> None:
    path, _ = saved_backbone(tmp_path)
    meta = read_backbone_metadata(path)
    assert (meta.stem, meta.image_size, meta.mean, meta.std) == ("cifar", 32, CIFAR_MEAN, CIFAR_STD)
    assert BackboneMetadata(mean=CIFAR_MEAN).to_strings()["mean"] == "0.4914,0.4822,0.4465"


@pytest.mark.parametrize("text", ["0.5,0.5", "a,b,c", "0.5,nan,0.5"])
def test_damaged_normalisation_is_one_line_error(text: str) -> None:
    with pytest.raises(UserError, match=r"mean=.* is not three numbers; the file is damaged"):
        BackboneMetadata.from_strings({"mean": text}, "backbone.safetensors")


def test_backbone_has_the_permissions_of_the_run_files(tmp_path: Path, umask: None) -> None:
    path, _ = saved_backbone(tmp_path)
    (tmp_path / "config.yaml").write_text("x: 1\n")
    assert path.stat().st_mode & 0o777 == (tmp_path / "config.yaml").stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize("stem", ["cifar", "stl"])
def test_readme_torchvision_code_loads_the_same_network(tmp_path: Path, stem: str) -> None:
    path, reference = saved_backbone(tmp_path, stem)
    code = readme_block("Loading the weights elsewhere", "torchvision").replace(
        "runs/c10/backbone.safetensors", str(path)
    )
    scope: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - the README's own example
    model = scope["model"]
    assert isinstance(model, torch.nn.Module)
    assert scope["mean"] == list(CIFAR_MEAN) and scope["std"] == list(CIFAR_STD)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(images), reference(images))


@pytest.mark.parametrize("stem", ["cifar", "stl"])
def test_readme_timm_code_loads_the_file(tmp_path: Path, stem: str) -> None:
    pytest.importorskip("timm")
    path, reference = saved_backbone(tmp_path, stem)
    setup = readme_block("Loading the weights elsewhere", "torchvision").replace(
        "runs/c10/backbone.safetensors", str(path)
    )
    scope: dict[str, object] = {}
    exec(compile(setup, "README.md", "exec"), scope)  # noqa: S102
    exec(compile(readme_block("Loading the weights elsewhere", "import timm"), "README.md", "exec"), scope)  # noqa: S102
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(scope["model"].eval()(images), reference(images))  # type: ignore[attr-defined]


def test_readme_code_loads_a_timm_run(tmp_path: Path) -> None:
    pytest.importorskip("timm")
    torch.manual_seed(0)
    module, dim = build_backbone("timm:test_resnet")
    path = tmp_path / "backbone.safetensors"
    write_backbone(path, module.state_dict(), BackboneMetadata("timm:test_resnet", None, dim, "python", 32))
    code = readme_block("Loading the weights elsewhere", "removeprefix").replace(
        "runs/timm-run/backbone.safetensors", str(path)
    )
    scope: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(scope["model"].eval()(images), module.eval()(images))  # type: ignore[attr-defined]
