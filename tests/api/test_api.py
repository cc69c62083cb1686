"""The Python API: every public name loads from the top of the package, ``import simclr`` stays cheap, the
per-image transform works in a DataLoader, and the examples/ scripts run."""

from __future__ import annotations

import importlib.util
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from torch.utils.data import DataLoader

import simclr
from simclr import SimCLRTransform, ViewConfig
from simclr.errors import UserError
from simclr.models.backbone_file import read_backbone_metadata

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_every_public_name_loads() -> None:
    assert sorted(simclr.__all__) == sorted(["__version__", *simclr._EXPORTS])
    for name in simclr.__all__:
        assert getattr(simclr, name) is not None, name
    assert "pretrain" in dir(simclr)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        simclr.nothing  # noqa: B018


def test_import_simclr_loads_no_torch() -> None:
    code = "import sys, simclr; print(simclr.__version__); assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_transform_makes_views_of_pil_array_and_tensor_images() -> None:
    transform = SimCLRTransform(size=24, n_views=3)
    rng = np.random.default_rng(0)
    array = rng.integers(0, 256, (30, 20, 3), dtype=np.uint8)
    for image in (Image.fromarray(array), Image.fromarray(array).convert("L"), array, torch.rand(3, 30, 20)):
        views = transform(image)
        assert len(views) == 3 and all(v.shape == (3, 24, 24) and v.dtype == torch.float32 for v in views)
    with pytest.raises(UserError, match="needs the view size"):
        SimCLRTransform()
    with pytest.raises(UserError, match="cannot make views of a str"):
        transform("image.png")  # type: ignore[arg-type]


def test_transform_follows_the_global_seed_and_draws_per_image() -> None:
    transform = SimCLRTransform(config=ViewConfig(size=16, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)))
    image = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    torch.manual_seed(3)
    first = transform(image)
    torch.manual_seed(3)
    again = transform(image)
    later = transform(image)
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert not torch.equal(first[0], later[0]) and not torch.equal(first[0], first[1])
    assert all(float(v.min()) >= 0.0 and float(v.max()) <= 1.0 for v in first)  # identity normalisation


def test_transform_in_a_dataloader_with_workers() -> None:
    images = [torch.randint(0, 256, (3, 40, 40), dtype=torch.uint8) for _ in range(4)]

    class Images(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(images)

        def __getitem__(self, index: int) -> list[torch.Tensor]:
            return SimCLRTransform(size=32)(images[index])

    first, second = next(iter(DataLoader(Images(), batch_size=4, num_workers=1)))
    assert first.shape == second.shape == (4, 3, 32, 32)


def check_run_records(run: Path) -> None:
    """The example's run directory: the backbone's metadata and the resolved settings and environment."""
    meta = read_backbone_metadata(run / "backbone.safetensors")
    assert (meta.stem, meta.image_size, len(meta.mean or ()), len(meta.std or ())) == ("cifar", 16, 3, 3)
    record = yaml.safe_load((run / "environment.yaml").read_text())
    resolved, environment = record["resolved"], record["environment"]
    assert resolved["precision"] == "32" and resolved["lr"] > 0 and resolved["optimizer"] == "lars"
    assert environment["simclr"] == simclr.__version__ and environment["packages"]["torch"] == torch.__version__
    assert environment["host"] and environment["cpu"] and "command" in environment and "git" in environment


@pytest.mark.slow
def test_examples_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every script of examples/ runs (in this process: one torch import for all) and does what it says."""
    scripts = sorted(EXAMPLES.glob("*.py"))
    assert {p.name for p in scripts} >= {
        "lightning_trainer.py",
        "pretrain_and_probe.py",
        "pretrain_on_your_data.py",
        "train_on_tensors.py",
        "transform_in_a_dataloader.py",
    }
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops: extra threads only cost time on a shared CPU (3 s instead of 30)
    try:
        for script in scripts:
            main = runpy.run_path(str(script), run_name="example")["main"]
            if script.name == "pretrain_and_probe.py":
                scores = main(tmp_path)
                assert scores["linear_top1"] > 0.5  # the class is the brightest channel: easy for any features
                check_run_records(tmp_path / "run")
            elif script.name == "pretrain_on_your_data.py":
                names = main(tmp_path / "own-data")
                assert names["own"] == "custom:example.SmallConvNet"  # the class, as the run's files name it
                has_timm = importlib.util.find_spec("timm") is not None
                assert names.get("timm") == ("timm:resnet18" if has_timm else None)
            elif script.name == "lightning_trainer.py":
                losses = main(tmp_path / "lightning")  # it checks that load_from_checkpoint gives its weights back
                assert len(losses) == 4 and all(np.isfinite(losses))
                assert (tmp_path / "lightning" / "simclr.ckpt").is_file()
            elif script.name == "train_on_tensors.py":
                losses = main()
                assert len(losses) == 3 and all(np.isfinite(losses))
            else:
                main()
    finally:
        torch.set_num_threads(threads)
    assert "run directory:" in capsys.readouterr().out
