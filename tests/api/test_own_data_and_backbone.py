"""``pretrain(config, dataset=..., backbone=...)``: a Dataset and a network of one's own (or a timm model by
name) train by the run's usual path, the run directory says what they were, ``load_backbone`` gets them back,
and what only Python can pass is refused on the command line in one line."""

from __future__ import annotations

import csv
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from simclr import PretrainConfig, RunDir, extract_features, load_backbone, pretrain
from simclr.cli import main
from simclr.errors import UserError
from simclr.models.backbone_file import read_backbone_metadata

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/api/conftest.py


class TinyNet(nn.Module):
    """A backbone of one's own: (B, 3, H, W) -> (B, 8), its feature size measured, not declared."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images)


class Photos(Dataset):  # type: ignore[type-arg]
    """Labelled PIL images of other sizes and modes than the run's 16 px RGB, with torchvision's ``classes``."""

    classes = ["dark", "bright"]

    def __init__(self, count: int) -> None:
        rng = np.random.default_rng(0)
        self.items = []
        for index in range(count):
            label = index % 2
            pixels = rng.integers(0, 128, (20, 24, 4), dtype=np.uint8) + 127 * label
            mode = ("RGB", "L", "RGBA")[index % 3]
            image = Image.fromarray(pixels).convert(mode)  # RGBA -> RGB, L or RGBA
            self.items.append((image, label))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        return self.items[index]


def tiny_config(out: Path, **changes: object) -> PretrainConfig:
    values: dict[str, object] = dict(
        batch_size=16, epochs=1, precision="32", workers=0, knn_k=5, checkpoint_every_steps=0, out=str(out)
    )
    return PretrainConfig(**{**values, **changes})  # type: ignore[arg-type]


def labelled_tensors(count: int = 64) -> TensorDataset:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (count, 3, 16, 16), dtype=torch.uint8, generator=generator)
    return TensorDataset(images, torch.arange(count) % 4)


def cli_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """The one line ``simclr ARGS`` fails with (exit 2, no traceback)."""
    capsys.readouterr()
    assert main(list(args)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_own_dataset_and_module_train_and_load_back(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    net, data, config = TinyNet(), labelled_tensors(), tiny_config(tmp_path / "run", standardize=True)
    result = pretrain(replace(config, max_steps=2), dataset=data, backbone=net)  # stopped half-way
    run = result.run_dir
    assert result.global_step == 2

    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert (saved["dataset"], saved["dataset_class"]) == ("python", "torch.utils.data.dataset.TensorDataset")
    assert saved["backbone"] == f"custom:{__name__}.TinyNet"
    meta = read_backbone_metadata(run / "backbone.safetensors")
    assert (meta.backbone, meta.stem, meta.feature_dim, meta.image_size) == (saved["backbone"], None, 8, 16)

    # the weights go back into a new instance of the class: the features of the trained module
    loaded = load_backbone(run, module=TinyNet())
    images = torch.rand(4, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded.module(images), net.eval()(images))
    assert loaded.feature_dim == 8
    with pytest.raises(UserError, match=r"module of your own \(.*TinyNet\).*load_backbone\(.*module=TinyNet"):
        load_backbone(run)

    # the command line cannot rebuild the module nor read the Dataset, and says how to do it from Python
    assert "simclr.load_backbone(" in cli_error(capsys, "evaluate", str(run))
    steps_before = (run / "metrics.csv").read_text().count("\n")
    line = cli_error(capsys, "pretrain", "--resume", str(run))
    assert "Python Dataset (torch.utils.data.dataset.TensorDataset)" in line and "dataset=" in line

    assert "'python', a Python Dataset" in cli_error(capsys, "pretrain", "--dataset", "python")

    # from Python, a Dataset of another class or a changed setting is refused before anything runs
    with pytest.raises(UserError, match=r"\(dataset_class torch\.utils\.data\.dataset\.TensorDataset -> .*\.Photos\)"):
        pretrain(replace(config, resume=str(run)), dataset=Photos(4), backbone=TinyNet())
    with pytest.raises(UserError, match=r"\(batch_size 16 -> 8\); .*resume_with_changes=True"):
        pretrain(replace(config, resume=str(run), batch_size=8), dataset=data, backbone=TinyNet())
    assert (run / "metrics.csv").read_text().count("\n") == steps_before

    # from Python, the same Dataset and a new module continue the run to the end of its schedule
    again = pretrain(replace(config, resume=str(run)), dataset=data, backbone=TinyNet())
    assert again.global_step == 4 and again.knn_top1 is not None  # the labels reached the kNN monitor
    log = (run / "train.log").read_text()
    assert "resuming from" in log
    assert log.count("--standardize: mean") == 1  # the statistics measured at the start are kept, not measured anew
    steps = [row["step"] for row in csv.DictReader((run / "metrics.csv").open()) if row.get("train_loss")]
    assert steps == ["0", "1", "2", "3"]  # each step once: continued, not restarted

    # the run's own config, read back from config.yaml, is accepted as it is (docs/API.md): nothing left to train
    finished = pretrain(replace(RunDir(run).read_config(), resume=str(run)), dataset=data, backbone=TinyNet())
    assert finished.global_step == 4
    assert "settings changed on resume" not in (run / "train.log").read_text()


def test_pil_dataset_with_a_torchvision_backbone(tmp_path: Path) -> None:
    result = pretrain(tiny_config(tmp_path / "run", image_size=16, online_probe=True), dataset=Photos(32))
    meta = read_backbone_metadata(result.run_dir / "backbone.safetensors")
    assert (meta.backbone, meta.stem, meta.image_size, meta.dataset) == ("resnet18", "cifar", 16, "python")
    header = (result.run_dir / "metrics.csv").read_text().splitlines()[0]
    assert "online_linear_top1" in header and "knn_top1" in header  # both learn from the Dataset's labels
    assert load_backbone(result.run_dir).feature_dim == 512


def test_timm_backbone_by_name_is_rebuilt(tmp_path: Path) -> None:
    pytest.importorskip("timm")
    data = labelled_tensors(32)
    result = pretrain(tiny_config(tmp_path / "run", knn_every_epochs=0), dataset=data, backbone="timm:test_resnet")
    meta = read_backbone_metadata(result.run_dir / "backbone.safetensors")
    assert (meta.backbone, meta.stem) == ("timm:test_resnet", None)
    assert yaml.safe_load((result.run_dir / "config.yaml").read_text())["backbone"] == "timm:test_resnet"
    loaded = load_backbone(result.run_dir)
    images = data.tensors[0][:8]
    features = extract_features(loaded.module, images, meta.mean, meta.std, batch_size=8)
    assert features.shape == (8, loaded.feature_dim) and torch.isfinite(features).all()


def test_timm_backbone_from_the_command_line_and_evaluate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("timm")
    monkeypatch.chdir(tmp_path)
    tiny = ["--dataset", "spirograph", "--train-size", "32", "--test-size", "16", "--image-size", "16"]
    fast = ["--batch-size", "16", "--epochs", "1", "--precision", "32", "--workers", "0", "--quiet"]
    assert main(["pretrain", *tiny, *fast, "--backbone", "timm:test_resnet", "--out", "run"]) == 0
    assert main(["evaluate", "run", "--no-plots", "--workers", "0"]) == 0
    assert (tmp_path / "run" / "eval" / "metrics.json").is_file()
    line = cli_error(capsys, "pretrain", *tiny, "--backbone", "timm:test_resnet", "--stem", "cifar")
    assert "--stem cifar shapes torchvision ResNets" in line
    assert "timm.list_models" in cli_error(capsys, "pretrain", *tiny, *fast, "--backbone", "timm:no_such_net")
    assert not (tmp_path / "runs").exists()  # the errors came before any run directory


def test_without_timm_the_error_names_the_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm raises ImportError
    with pytest.raises(UserError, match=r"needs timm; install it with: pip install 'simclr-kit\[timm\]'$"):
        pretrain(tiny_config(tmp_path / "run"), dataset=labelled_tensors(32), backbone="timm:resnet18")
    assert not (tmp_path / "run").exists()


class Unpooled(nn.Module):
    feature_dim = 8

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images[:, :1].expand(-1, 8, -1, -1)


class Misdeclared(TinyNet):
    feature_dim = 16


@pytest.mark.parametrize(
    ("module", "message"),
    [
        (Unpooled(), r"maps \(2, 3, 16, 16\) images to \(2, 8, 16, 16\); a backbone returns \(B, D\) features"),
        (Misdeclared(), r"says feature_dim 16 but returns 8 features"),
        (nn.Linear(3, 8), r"fails on a batch of shape \(2, 3, 16, 16\)"),
    ],
)
def test_a_module_that_is_not_a_backbone_is_refused(tmp_path: Path, module: nn.Module, message: str) -> None:
    with pytest.raises(UserError, match=message):
        pretrain(tiny_config(tmp_path / "run"), dataset=labelled_tensors(32), backbone=module)
    assert not (tmp_path / "run").exists()


def test_a_bad_item_stops_before_the_run_directory(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"Photos\[0\] is a builtins.str"):

        class Photos(Dataset):  # type: ignore[type-arg]
            def __len__(self) -> int:
                return 4

            def __getitem__(self, index: int) -> str:
                return "photo.png"

        pretrain(tiny_config(tmp_path / "run"), dataset=Photos())
    assert not (tmp_path / "run").exists()
