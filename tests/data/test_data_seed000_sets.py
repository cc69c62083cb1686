"""Seed 000's other torchvision datasets, each loaded from a tiny stand-in in the exact on-disk layout
torchvision's loader reads (the files it opens, with random pixels); nothing touches the network."""

from __future__ import annotations

import json
import os
import struct
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from simclr.data.catalog import dataset_info, load_dataset
from simclr.data.listed_sets import HELD_OUT_TEST_FRACTION, LISTED_SETS
from simclr.errors import UserError

_RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any download attempt fails the test."""
    import torchvision.datasets.utils as tvu

    def forbidden(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(tvu, "download_url", forbidden)
    monkeypatch.setattr(tvu, "download_and_extract_archive", forbidden)


def _image(path: Path, size: tuple[int, int] = (14, 10)) -> None:
    """A small non-square RGB image at ``path`` (JPEG for .jpg, else by extension)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = _RNG.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="JPEG" if path.suffix == ".jpg" else None)


# Each builder writes a stand-in under ``root``: 3 classes, the files torchvision opens.


def _caltech101(root: Path) -> None:
    base = root / "caltech101" / "101_ObjectCategories"
    for cls in ("BACKGROUND_Google", "accordion", "airplanes", "anchor"):
        for i in range(1, 6):
            _image(base / cls / f"image_{i:04d}.jpg")


def _caltech256(root: Path) -> None:
    base = root / "caltech256" / "256_ObjectCategories"
    for k, cls in enumerate(("ak47", "bear", "clutter"), start=1):
        for i in range(1, 6):
            _image(base / f"{k:03d}.{cls}" / f"{k:03d}_{i:04d}.jpg")


def _eurosat(root: Path) -> None:
    for cls in ("Forest", "River", "SeaLake"):
        for i in range(5):
            _image(root / "eurosat" / "2750" / cls / f"{cls}_{i}.jpg", (64, 64))


def _dtd(root: Path) -> None:
    data = root / "dtd" / "dtd"
    (data / "labels").mkdir(parents=True)
    for split, n in (("train", 2), ("val", 1), ("test", 2)):
        lines = []
        for cls in ("banded", "dotted", "zigzagged"):
            for i in range(n):
                _image(data / "images" / cls / f"{cls}_{split}{i}.jpg")
                lines.append(f"{cls}/{cls}_{split}{i}.jpg")
        (data / "labels" / f"{split}1.txt").write_text("\n".join(lines) + "\n")


def _country211(root: Path) -> None:
    for split, n in (("train", 2), ("valid", 1), ("test", 2)):
        for cls in ("AD", "AE", "AF"):
            for i in range(n):
                _image(root / "country211" / split / cls / f"{i}.jpg")


def _food101(root: Path) -> None:
    base = root / "food-101"
    (base / "meta").mkdir(parents=True)
    for split, n in (("train", 3), ("test", 2)):
        meta = {}
        for cls in ("apple_pie", "baklava", "ramen"):
            meta[cls] = [f"{cls}/{split}{i}" for i in range(n)]
            for name in meta[cls]:
                _image(base / "images" / f"{name}.jpg")
        (base / "meta" / f"{split}.json").write_text(json.dumps(meta))


def _flowers102(root: Path) -> None:
    from scipy.io import savemat

    base = root / "flowers-102"
    labels = np.repeat(np.arange(1, 4), 5)  # 15 images, 3 classes, 1-based as in imagelabels.mat
    for i in range(1, 16):
        _image(base / "jpg" / f"image_{i:05d}.jpg")
    ids = np.arange(1, 16).reshape(3, 5)  # per class: 2 train, 1 val, 2 test
    savemat(base / "imagelabels.mat", {"labels": labels})
    savemat(
        base / "setid.mat",
        {"trnid": ids[:, :2].ravel(), "valid": ids[:, 2].ravel(), "tstid": ids[:, 3:].ravel()},
    )


def _gtsrb(root: Path) -> None:
    base = root / "gtsrb"
    for cls in range(3):
        for i in range(3):
            _image(base / "GTSRB" / "Training" / f"{cls:05d}" / f"00000_{i:05d}.ppm", (31, 35))
    rows = ["Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId"]
    for i in range(6):
        _image(base / "GTSRB" / "Final_Test" / "Images" / f"{i:05d}.ppm", (40, 33))
        rows.append(f"{i:05d}.ppm;40;33;5;5;35;28;{i % 3}")
    (base / "GT-final_test.csv").write_text("\n".join(rows) + "\n")


def _oxford_pet(root: Path) -> None:
    base = root / "oxford-iiit-pet"
    (base / "annotations").mkdir(parents=True)
    for split, n in (("trainval", 3), ("test", 2)):
        lines = []
        for label, (breed, species) in enumerate((("Abyssinian", 1), ("basset_hound", 2), ("Bengal", 1)), 1):
            for i in range(n):
                image_id = f"{breed}_{split}{i}"
                _image(base / "images" / f"{image_id}.jpg")
                lines.append(f"{image_id} {label} {species} {label}")
        (base / "annotations" / f"{split}.txt").write_text("\n".join(lines) + "\n")


def _idx_file(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    path.write_bytes(header + arr.astype(np.uint8).tobytes())


def _idx_set(raw: Path, prefixes: tuple[str, str], classes: int) -> np.ndarray:
    images = _RNG.integers(0, 256, (2 * classes, 28, 28), dtype=np.uint8)
    for prefix in prefixes:
        _idx_file(raw / f"{prefix}-images-idx3-ubyte", images)
        _idx_file(raw / f"{prefix}-labels-idx1-ubyte", np.tile(np.arange(classes), 2))
    return images


# name: (builder, train images per class, test images per class, classes)
STAND_INS: dict[str, tuple[Callable[[Path], None], int, int, int]] = {
    "caltech101": (_caltech101, 4, 1, 3),  # no split: 20% of 5 per class held out
    "caltech256": (_caltech256, 4, 1, 3),
    "eurosat": (_eurosat, 4, 1, 3),
    "dtd": (_dtd, 3, 2, 3),  # train + val
    "country211": (_country211, 3, 2, 3),  # train + valid
    "food101": (_food101, 3, 2, 3),
    "flowers102": (_flowers102, 3, 2, 3),  # train + val
    "gtsrb": (_gtsrb, 3, 2, 3),
    "oxford-iiit-pet": (_oxford_pet, 3, 2, 3),
}


@pytest.mark.parametrize("name", list(STAND_INS))
def test_listed_set_loads_from_stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    if name == "flowers102":  # torchvision checks the .mat files' md5 sums; only that check is replaced
        import torchvision.datasets.flowers102 as flowers

        monkeypatch.setattr(flowers, "check_integrity", lambda path, md5=None: os.path.isfile(path))
    build, n_train, n_test, n_classes = STAND_INS[name]
    build(tmp_path)
    train = load_dataset(name, "train", tmp_path, image_size=16)
    test = load_dataset(name, "test", tmp_path, image_size=16)
    assert train is not None and test is not None
    assert train.images.shape == (n_train * n_classes, 3, 16, 16) and train.images.dtype == torch.uint8
    assert Counter(train.labels.tolist()) == {c: n_train for c in range(n_classes)}
    assert Counter(test.labels.tolist()) == {c: n_test for c in range(n_classes)}
    # Flowers102 and GTSRB name all their classes whatever the files hold.
    assert len(train.class_names) == {"flowers102": 102, "gtsrb": 43}.get(name, n_classes)
    assert train.class_names == test.class_names
    assert not set(train.file_names or []) & set(test.file_names or [])
    assert train.skipped == [] and test.skipped == []
    assert torch.equal(load_dataset(name, "train_labeled", tmp_path, image_size=16).images, train.images)
    limited = load_dataset(name, "train", tmp_path, image_size=16, limit=n_classes)
    assert sorted(limited.labels.tolist()) == list(range(n_classes))


def test_unsplit_sets_are_cut_by_a_fixed_seed(tmp_path: Path) -> None:
    _caltech101(tmp_path)
    first = load_dataset("caltech101", "test", tmp_path, image_size=8, seed=1)
    again = load_dataset("caltech101", "test", tmp_path, image_size=8, seed=2)
    assert first.file_names == again.file_names  # the run's seed does not move the test split
    assert len(first) == round(15 * HELD_OUT_TEST_FRACTION)
    assert load_dataset("caltech101", "train", tmp_path, image_size=8).class_names == [
        "accordion",
        "airplanes",
        "anchor",
    ]


def test_class_names_and_default_sizes(tmp_path: Path) -> None:
    _caltech256(tmp_path)
    store = load_dataset("caltech256", "train", tmp_path)
    assert store.class_names == ["ak47", "bear", "clutter"]
    assert store.images.shape[-2:] == (128, 128)  # the default size, from 14 x 10 images
    _gtsrb(tmp_path)
    assert load_dataset("gtsrb", "test", tmp_path).images.shape[-2:] == (32, 32)
    assert load_dataset("gtsrb", "train", tmp_path).class_names[:3] == ["00", "01", "02"]


def test_info_of_every_new_set() -> None:
    expected = {
        "caltech101": 101,
        "caltech256": 257,
        "dtd": 47,
        "country211": 211,
        "food101": 101,
        "eurosat": 10,
        "flowers102": 102,
        "gtsrb": 43,
        "oxford-iiit-pet": 37,
        "emnist": 62,
        "fashion-mnist": 10,
    }
    assert set(LISTED_SETS) | {"emnist", "fashion-mnist"} == set(expected)
    for name, classes in expected.items():
        info = dataset_info(name)
        assert info.num_classes == classes and info.labelled


def test_fashion_mnist_padded_to_32_rgb(tmp_path: Path) -> None:
    images = _idx_set(tmp_path / "FashionMNIST" / "raw", ("train", "t10k"), 10)
    store = load_dataset("fashion-mnist", "test", tmp_path)
    assert store.images.shape == (20, 3, 32, 32)
    assert store.labels.tolist() == list(range(10)) * 2 and store.class_names[0] == "T-shirt/top"
    assert torch.equal(store.images[:, 0, 2:30, 2:30], torch.from_numpy(images))


def test_emnist_byclass_upright(tmp_path: Path) -> None:
    images = _idx_set(tmp_path / "EMNIST" / "raw", ("emnist-byclass-train", "emnist-byclass-test"), 62)
    store = load_dataset("emnist", "train", tmp_path)
    assert store.images.shape == (124, 3, 32, 32) and len(store.class_names) == 62
    assert Counter(store.labels.tolist()) == {c: 2 for c in range(62)}
    # The stored glyphs are transposed; the store holds them upright.
    assert torch.equal(store.images[:, 2, 2:30, 2:30], torch.from_numpy(images).transpose(1, 2))


@pytest.mark.parametrize("name", [*LISTED_SETS, "emnist", "fashion-mnist"])
def test_missing_without_download_names_the_flag(tmp_path: Path, name: str) -> None:
    with pytest.raises(UserError) as info:
        load_dataset(name, "train", tmp_path, download=False)
    msg = str(info.value)
    assert f"{name} not found in {tmp_path}" in msg and "--download" in msg and "\n" not in msg


def test_missing_dataset_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from simclr.cli import main

    code = main(["data", "pack", "dtd", str(tmp_path / "out"), "--data-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--download" in err


def test_pack_a_new_set(tmp_path: Path) -> None:
    from simclr.data.pack_sources import pack_sources

    _eurosat(tmp_path / "data")
    sources = pack_sources("eurosat", tmp_path / "data")
    assert {split: len(source.names) for split, source in sources.items()} == {"train": 12, "test": 3}
