"""Every recipe in src/simclr/recipes/*.yaml resolves, round-trips, and runs two training steps.

The smoke runs keep each recipe's model, loss and optimiser and change only what makes it fit on a
CPU in seconds: the data (the ``cifar_small`` copy of the real CIFAR-10, or a few Spirograph images),
the image size (32 px; 16 px for ResNet-50 with the gradient penalty), the batch (16), the penalty
draws (4; 1 for ResNet-50) and the precision (32). The ae-head recipe gets a one-epoch autoencoder from
``simclr train-ae`` in place of its placeholder checkpoint.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
import yaml

from simclr.cli import main
from simclr.config import build_config
from simclr.settings import read_yaml

REPO = Path(__file__).resolve().parents[1]
RECIPES = sorted((REPO / "src" / "simclr" / "recipes").glob("*.yaml"))
RECIPE_IDS = [p.stem for p in RECIPES]

# Datasets whose loader reads the DIR/{train,test}/<class>/ layout of ``cifar_small`` as that dataset
# (see simclr.data.torchvision_sets: every loader looks for the folder layout first; imagefolder is a
# folder by definition). The recipe's dataset therefore stays as written.
# what a smoke run must not change
RECIPE_KEYS = (
    "dataset", "backbone", "stem", "head", "head_out_dim", "head_layers", "temperature",
    "lambda_gp", "optimizer", "lr", "lr_scaling", "weight_decay", "nesterov",
)  # fmt: skip
FOLDER_DATASETS = {"cifar10", "cifar100", "stl10", "imagenette", "fgvc-aircraft", "imagefolder"}


def test_recipes_exist() -> None:
    names = set(RECIPE_IDS)
    for expected in (
        "sthalles-stl10-resnet18",
        "sthalles-cifar10-resnet18",
        "sthalles-stl10-resnet50",
        "invclr-cifar10-resnet50-gp",
        "invclr-cifar10-resnet50-simclr",
        "invclr-spirograph-resnet18-gp",
        "rittik9-cifar10-resnet18-adam",
        "rittik9-cifar10-resnet18-nesterov",
        "simclr-ae-cifar10-resnet34",
        "solo-learn-cifar10-resnet18",
    ):
        assert expected in names


@pytest.mark.parametrize("path", RECIPES, ids=RECIPE_IDS)
def test_recipe_resolves_and_round_trips(path: Path) -> None:
    file_values = read_yaml(path)
    assert file_values, f"{path} is empty"
    first_line = path.read_text().splitlines()[0]
    assert first_line.startswith("#"), f"{path} must start with a comment citing its source"
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(["pretrain", "--config", str(path), "--print-config"]) == 0
    printed = yaml.safe_load(buffer.getvalue())
    assert build_config(printed, {}) == build_config(file_values, {})
    # every key written in the recipe keeps its value in the resolved config
    for key, value in file_values.items():
        assert printed[key] == value, key


def _smoke_overrides(path: Path, cifar_small: Path, tmp: Path) -> list[str]:
    config = build_config(read_yaml(path), {})
    args: list[str] = []
    if config.dataset == "spirograph":
        args += ["--train-size", "64", "--test-size", "16"]
    elif config.dataset in FOLDER_DATASETS:
        args += ["--data-dir", str(cifar_small), "--no-download"]
    else:  # pragma: no cover - no such recipe yet
        pytest.skip(f"no local stand-in for dataset {config.dataset}")
    if config.backbone == "resnet50" and config.lambda_gp > 0:
        # the penalty's double backward through ResNet-50 is slow on 2 cores: 8 px, one draw
        args += ["--image-size", "8"]
    elif config.image_size is not None and config.image_size > 32:
        args += ["--image-size", "32"]  # 96/224 px is too slow for a CPU smoke run
    if config.limit_train_images is not None:
        args += ["--limit-train-images", "64"]
    if config.weights == "imagenet":
        args += ["--weights", "none"]  # torchvision's ImageNet weights cannot be downloaded here
    if config.lambda_gp > 0:
        # the penalty's cost grows with the draws; ResNet-50 with 4 draws takes minutes on 2 cores
        args += ["--gp-draws", "1" if config.backbone == "resnet50" else "4"]
    if config.head == "ae":
        ae_dir = tmp / "ae"
        ae_argv = (
            "train-ae --latent-dim 512 --epochs 1 --batch-size 64 --limit-train-images 128 --accelerator cpu --quiet"
        )
        ae_argv += f" --dataset {config.dataset}"
        assert main([*ae_argv.split(), "--data-dir", str(cifar_small), "--out", str(ae_dir)]) == 0
        args += ["--ae-checkpoint", str(ae_dir)]
    return args


@pytest.mark.slow
@pytest.mark.parametrize("path", RECIPES, ids=RECIPE_IDS)
def test_recipe_smoke_run(path: Path, cifar_small: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = [
        "pretrain", "--config", str(path),
        "--max-steps", "2", "--epochs", "1", "--batch-size", "16",
        "--out", str(out), "--quiet", "--knn-every-epochs", "0",
        "--precision", "32", "--accelerator", "cpu", "--workers", "1",
        *_smoke_overrides(path, cifar_small, tmp_path),
    ]  # fmt: skip
    assert main(argv) == 0
    saved = build_config(read_yaml(out / "config.yaml"), {})
    recipe = build_config(read_yaml(path), {})
    for key in RECIPE_KEYS:
        assert getattr(saved, key) == getattr(recipe, key), key
