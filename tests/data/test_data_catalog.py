"""The dataset catalog and the torchvision loaders (real CIFAR-10 folders; tiny fake torchvision files)."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from simclr.data.catalog import (
    CATALOG,
    DATASET_NAMES,
    PYTHON_DATASET,
    catalog_entry,
    dataset_info,
    datasets_table,
    load_dataset,
    resolve_image_size,
)
from simclr.data.request import SplitPolicy
from simclr.data.torchvision_files import resize_images
from simclr.errors import UserError

from ..conftest import CIFAR10 as SHARED_CIFAR
from ..conftest import NEEDS_REAL_CIFAR10

DATASETS_DOC = Path(__file__).resolve().parents[2] / "docs" / "DATASETS.md"


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any download attempt fails the test: nothing here may touch the network."""
    import torchvision.datasets.utils as tvu

    def forbidden(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(tvu, "download_url", forbidden)
    monkeypatch.setattr(tvu, "download_and_extract_archive", forbidden)


# ------------------------------------------------------------------------------------ catalog


def test_the_datasets_page_is_the_catalog() -> None:
    """Adding a dataset to the catalog (or changing one) without `make docs` fails here."""
    table = datasets_table()
    assert table in DATASETS_DOC.read_text(), "docs/DATASETS.md is out of date: run make docs"
    rows = [line for line in table.splitlines()[2:]]
    assert [row.split("`")[1] for row in rows] == list(DATASET_NAMES)
    assert "| `stl10` | STL10 | 10 | 96 | train + unlabeled (labelled: train) / test |" in rows
    assert "| `eurosat` | EuroSAT (RGB) | 10 | 64 | 80% / 20% seeded cut |" in rows


def test_every_named_dataset_has_a_loader_and_python_has_none() -> None:
    assert set(DATASET_NAMES) == set(CATALOG) - {PYTHON_DATASET}
    assert all(CATALOG[name].load is not None for name in DATASET_NAMES)
    assert catalog_entry(PYTHON_DATASET).load is None
    with pytest.raises(UserError, match="Python Dataset"):
        load_dataset(PYTHON_DATASET, "train", None)


def test_split_policies_name_the_sources_splits() -> None:
    stl = catalog_entry("stl10").splits
    assert stl.source_splits("train") == ("train", "unlabeled")
    assert stl.source_splits("train_labeled") == ("train",) and stl.source_splits("test") == ("test",)
    assert catalog_entry("dtd").splits.source_splits("train_labeled") == ("train", "val")
    assert catalog_entry("caltech101").splits.source_splits("test") == ()
    assert SplitPolicy((), (), held_out=0.25).describe() == "75% / 25% seeded cut"
    with pytest.raises(UserError, match="split"):
        stl.source_splits("validation")


def test_the_image_size_is_the_given_one_else_the_datasets() -> None:
    assert resolve_image_size("cifar10", None) == 32 and resolve_image_size("cifar10", 48) == 48
    assert resolve_image_size("imagenet", None) == 224 and resolve_image_size("spirograph", None) == 32
    assert resolve_image_size("imagefolder", None) is None
    with pytest.raises(UserError, match="image size must be positive"):
        resolve_image_size("cifar10", 0)


# ------------------------------------------------------------------------------- dataset_info


def test_dataset_info_constants() -> None:
    c10 = dataset_info("cifar10")
    assert (c10.image_size, c10.num_classes, c10.labelled, c10.regression) == (32, 10, True, False)
    assert c10.mean == (0.4914, 0.4822, 0.4465) and c10.std == (0.2470, 0.2435, 0.2616)
    assert c10.jitter_strength == 0.5 and not c10.blur
    assert dataset_info("cifar100").num_classes == 100
    stl = dataset_info("stl10")
    assert stl.image_size == 96 and stl.jitter_strength == 1.0 and stl.blur
    spiro = dataset_info("spirograph")
    assert spiro.regression and not spiro.labelled and spiro.num_classes is None
    assert spiro.mean == (0.5, 0.5, 0.5)
    assert dataset_info("mnist").mean == (0.1307,) * 3
    air = dataset_info("fgvc-aircraft")
    assert (air.image_size, air.num_classes, air.mean) == (128, 30, (0.485, 0.456, 0.406))
    big = dataset_info("cifar10", image_size=128)
    assert big.image_size == 128 and big.jitter_strength == 1.0 and big.blur
    for name in DATASET_NAMES:
        dataset_info(name)


def test_unknown_dataset_lists_valid_names() -> None:
    with pytest.raises(UserError) as info:
        dataset_info("cifar11")
    assert "cifar10" in str(info.value) and "fgvc-aircraft" in str(info.value)
    with pytest.raises(UserError):
        load_dataset("nope", "train", None)
    with pytest.raises(UserError, match="split"):
        load_dataset("spirograph", "validation", None)


def test_imagefolder_info_from_store(tmp_path: Path) -> None:
    for cls in ("a", "b", "c"):
        (tmp_path / cls).mkdir()
        Image.new("RGB", (20, 20)).save(tmp_path / cls / "0.png")
    store = load_dataset("imagefolder", "train", tmp_path)
    info = dataset_info("imagefolder", store=store)
    assert info.image_size == 20 and info.num_classes == 3 and info.labelled
    assert dataset_info("imagefolder").image_size == 0


# ---------------------------------------------------------------------------------- CIFAR-10


def test_cifar10_image_folder_with_limit() -> None:
    if not (SHARED_CIFAR / "train").is_dir():
        pytest.skip(f"{NEEDS_REAL_CIFAR10} at {SHARED_CIFAR}")
    store = load_dataset("cifar10", "test", SHARED_CIFAR, limit=100, seed=1, workers=2)
    assert store is not None
    assert store.images.shape == (100, 3, 32, 32) and store.images.dtype == torch.uint8
    assert torch.bincount(store.labels).tolist() == [10] * 10
    assert store.class_names[0] == "airplane" and len(store.class_names) == 10
    again = load_dataset("cifar10", "test", SHARED_CIFAR, limit=100, seed=1)
    assert again.file_names == store.file_names
    # data_dir may also be the parent holding cifar10/.
    parent = load_dataset("cifar10", "test", SHARED_CIFAR.parent, limit=20, seed=1)
    assert len(parent) == 20


def _fake_cifar10(root: Path, n_per_batch: int = 4) -> np.ndarray:
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)
    test_data = rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)
    for i in range(1, 6):
        data = rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)
        with open(base / f"data_batch_{i}", "wb") as f:
            pickle.dump({"data": data, "labels": [i % 10] * n_per_batch}, f)
    with open(base / "test_batch", "wb") as f:
        pickle.dump({"data": test_data, "labels": list(range(n_per_batch))}, f)
    with open(base / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{k}" for k in range(10)]}, f)
    return test_data


def test_cifar10_torchvision_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets.cifar as tv_cifar

    test_data = _fake_cifar10(tmp_path)
    monkeypatch.setattr(tv_cifar.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)
    test = load_dataset("cifar10", "test", tmp_path)
    assert test.images.shape == (4, 3, 32, 32)
    # torchvision rows are (3, 32, 32) channel planes.
    assert torch.equal(test.images, torch.from_numpy(test_data.reshape(4, 3, 32, 32)))
    assert test.labels.tolist() == [0, 1, 2, 3] and test.class_names[3] == "class3"
    train = load_dataset("cifar10", "train", tmp_path)
    assert len(train) == 20
    resized = load_dataset("cifar10", "test", tmp_path, image_size=16)
    assert resized.images.shape == (4, 3, 16, 16)


@pytest.mark.parametrize("name", ["cifar100", "cifar10", "stl10", "mnist", "imagenette", "fgvc-aircraft"])
def test_missing_without_download_is_user_error(tmp_path: Path, name: str) -> None:
    with pytest.raises(UserError) as info:
        load_dataset(name, "train", tmp_path, download=False)
    msg = str(info.value)
    assert f"{name} not found in {tmp_path}" in msg and "--download" in msg and "--data-dir" in msg
    with pytest.raises(UserError, match="--download"):
        load_dataset(name, "test", tmp_path / "absent", download=False)
    with pytest.raises(UserError, match="--data-dir"):
        load_dataset(name, "train", None)


# ---------------------------------------------------------------------------------- STL-10


def test_stl10_splits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets.stl10 as tv_stl

    base = tmp_path / "stl10_binary"
    base.mkdir()
    rng = np.random.default_rng(0)
    files = {"train": 3, "unlabeled": 4, "test": 2}
    for split, n in files.items():
        rng.integers(0, 256, n * 3 * 96 * 96, dtype=np.uint8).tofile(base / f"{split}_X.bin")
        if split != "unlabeled":
            np.arange(1, n + 1, dtype=np.uint8).tofile(base / f"{split}_y.bin")
    (base / "class_names.txt").write_text("\n".join(f"c{k}" for k in range(10)))
    monkeypatch.setattr(tv_stl.STL10, "_check_integrity", lambda self: True)
    train = load_dataset("stl10", "train", tmp_path)
    assert train.images.shape == (7, 3, 96, 96)
    assert train.labels.tolist() == [0, 1, 2, -1, -1, -1, -1]
    labelled = load_dataset("stl10", "train_labeled", tmp_path)
    assert labelled.labels.tolist() == [0, 1, 2]
    test = load_dataset("stl10", "test", tmp_path, image_size=32)
    assert test.images.shape == (2, 3, 32, 32)


def test_stl10_folder_layout(tmp_path: Path) -> None:
    for split, classes in (("train", ("a", "b")), ("test", ("a", "b"))):
        for cls in classes:
            (tmp_path / split / cls).mkdir(parents=True)
            Image.new("RGB", (96, 96)).save(tmp_path / split / cls / "0.png")
    (tmp_path / "unlabeled").mkdir()
    for i in range(3):
        Image.new("RGB", (96, 96)).save(tmp_path / "unlabeled" / f"{i}.png")
    train = load_dataset("stl10", "train", tmp_path, image_size=24)
    assert train.labels.tolist() == [0, 1, -1, -1, -1]
    assert train.images.shape == (5, 3, 24, 24)
    assert len(load_dataset("stl10", "train_labeled", tmp_path)) == 2


# ----------------------------------------------------------------------------------- MNIST


def _idx_file(path: Path, arr: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    path.write_bytes(header + arr.astype(np.uint8).tobytes())


def test_mnist_padded_to_32_rgb(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    for prefix in ("train", "t10k"):
        _idx_file(raw / f"{prefix}-images-idx3-ubyte", images)
        _idx_file(raw / f"{prefix}-labels-idx1-ubyte", np.array([3, 1, 4, 1, 5], dtype=np.uint8))
    store = load_dataset("mnist", "train", tmp_path)
    assert store.images.shape == (5, 3, 32, 32)
    assert store.labels.tolist() == [3, 1, 4, 1, 5]
    assert torch.equal(store.images[:, 1, 2:30, 2:30], torch.from_numpy(images))
    assert store.images[:, :, :2].max() == 0 and store.images[:, :, :, 30:].max() == 0
    assert torch.equal(store.images[:, 0], store.images[:, 2])


# ------------------------------------------------------------------------------ Imagenette


def test_imagenette_existing_variant_folder(tmp_path: Path) -> None:
    root = tmp_path / "imagenette2-160"
    for split in ("train", "val"):
        for wnid in ("n01440764", "n03888605"):
            (root / split / wnid).mkdir(parents=True)
            Image.new("RGB", (40, 30), (200, 10, 10)).save(root / split / wnid / "a.JPEG")
    train = load_dataset("imagenette", "train", tmp_path, image_size=16)
    assert train.class_names == ["tench", "parachute"]
    assert train.images.shape == (2, 3, 16, 16)
    test = load_dataset("imagenette", "test", tmp_path, image_size=16)
    assert test.labels.tolist() == [0, 1]


# ---------------------------------------------------------------------------- FGVC-Aircraft


def test_fgvc_aircraft_annotations_and_banner(tmp_path: Path) -> None:
    data = tmp_path / "fgvc-aircraft-2013b" / "data"
    (data / "images").mkdir(parents=True)
    (data / "manufacturers.txt").write_text("Airbus\nBoeing\nde Havilland\n")
    lines = {
        "trainval": ["0001 Boeing", "0002 de Havilland", "0003 Airbus"],
        "test": ["0004 Airbus"],
    }
    for split, rows in lines.items():
        (data / f"images_manufacturer_{split}.txt").write_text("\n".join(rows) + "\n")
    for i in range(1, 5):
        arr = np.zeros((80, 60, 3), dtype=np.uint8)
        arr[:60] = (0, 0, 255)
        arr[60:] = (255, 255, 0)  # 20-px banner
        Image.fromarray(arr).save(data / "images" / f"{i:04d}.jpg", quality=95)
    train = load_dataset("fgvc-aircraft", "train", tmp_path, image_size=24)
    assert train.class_names == ["Airbus", "Boeing", "de Havilland"]
    assert train.labels.tolist() == [1, 2, 0]
    assert train.images.shape == (3, 3, 24, 24)
    assert train.images[:, 0].float().mean() < 20  # no yellow banner left
    assert len(load_dataset("fgvc-aircraft", "test", tmp_path, image_size=24)) == 1


# ------------------------------------------------------------------------ imagefolder, spirograph


def test_imagefolder_splits(tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(6):
        Image.new("RGB", (10, 10), (i, i, i)).save(flat / f"{i}.png")
    train = load_dataset("imagefolder", "train", flat, limit=4)
    assert len(train) == 4 and not train.has_labels
    assert load_dataset("imagefolder", "test", flat) is None
    split = tmp_path / "split"
    for s in ("train", "val"):
        for cls in ("x", "y"):
            (split / s / cls).mkdir(parents=True)
            Image.new("RGB", (10, 10)).save(split / s / cls / "0.png")
    test = load_dataset("imagefolder", "test", split)
    assert test is not None and test.labels.tolist() == [0, 1]
    with pytest.raises(UserError, match="does not exist"):
        load_dataset("imagefolder", "train", tmp_path / "missing")


def test_spirograph_sizes_and_seeds() -> None:
    train = load_dataset("spirograph", "train", None, spirograph_size=50)
    test = load_dataset("spirograph", "test", None, spirograph_size=50)
    assert len(train) == 50 and len(test) == 10
    assert train.factors is not None and test.factors is not None
    assert not torch.equal(train.factors[:10], test.factors)
    limited = load_dataset("spirograph", "train", None, spirograph_size=50, limit=20, image_size=16)
    assert limited.images.shape == (20, 3, 16, 16)
    assert dataset_info("spirograph").regression


def test_resize_images_shorter_side_and_centre_crop() -> None:
    images = torch.zeros((2, 3, 20, 40), dtype=torch.uint8)
    images[:, :, :, 10:30] = 255
    out = resize_images(images, 10)
    assert out.shape == (2, 3, 10, 10) and out.dtype == torch.uint8
    # The centre square was white; antialiasing softens only its border columns.
    assert out[..., 1:-1].min() == 255 and out.min() > 128
