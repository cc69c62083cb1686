"""Image-folder loading: layouts, labels, broken files, sizes, errors, real CIFAR-10 JPEGs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from simclr.data.imagefolder import (
    decode_files,
    folder_class_names,
    list_image_folder,
    load_image_folder,
    load_split_folder,
)
from simclr.errors import UserError


def _png(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (8, 8)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def _class_color(k: int) -> tuple[int, int, int]:
    return (10 * k + 5, 100, 200 - 10 * k)


def _make_classes(root: Path, names: list[str], per_class: int = 3) -> None:
    # Colour encodes the (sorted) class index so labels can be checked from pixels.
    for k, name in enumerate(sorted(names)):
        for i in range(per_class):
            _png(root / name / f"{i:03d}.png", _class_color(k))


def test_class_folders_give_sorted_labels(tmp_path: Path) -> None:
    _make_classes(tmp_path, ["zebra", "ant", "moose"])
    store = load_image_folder(tmp_path)
    assert store.class_names == ["ant", "moose", "zebra"]
    assert store.images.shape == (9, 3, 8, 8) and store.images.dtype == torch.uint8
    assert store.labels.dtype == torch.int64
    assert store.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert store.has_labels
    for img, lab in zip(store.images, store.labels.tolist(), strict=True):
        assert tuple(img[:, 0, 0].tolist()) == _class_color(lab)
    assert store.file_names is not None and store.file_names[0] == "ant/000.png"
    assert store.skipped == []


def test_extensions_case_insensitive_hidden_and_non_images_ignored(tmp_path: Path) -> None:
    _png(tmp_path / "a" / "x.PNG", (1, 2, 3))
    _png(tmp_path / "a" / "y.png", (1, 2, 3))
    (tmp_path / "b").mkdir()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(tmp_path / "b" / "z.JpG", format="JPEG")
    (tmp_path / "a" / "notes.txt").write_text("hello")
    (tmp_path / "a" / "._x.PNG").write_bytes(b"\x00\x05\x16\x07")  # macOS resource fork
    (tmp_path / ".cache").mkdir()
    _png(tmp_path / ".cache" / "thumb.png", (9, 9, 9))
    store = load_image_folder(tmp_path)
    assert store.class_names == ["a", "b"]
    assert sorted(store.file_names or []) == ["a/x.PNG", "a/y.png", "b/z.JpG"]
    assert store.skipped == []


def test_nested_images_inside_class_folders(tmp_path: Path) -> None:
    _png(tmp_path / "cat" / "1.png", (0, 0, 0))
    _png(tmp_path / "cat" / "deep" / "2.png", (0, 0, 0))
    _png(tmp_path / "dog" / "3.png", (0, 0, 0))
    store = load_image_folder(tmp_path)
    assert store.class_names == ["cat", "dog"]
    assert store.labels.tolist() == [0, 0, 1]


def test_flat_folder_is_unlabeled(tmp_path: Path) -> None:
    for i in range(4):
        _png(tmp_path / f"{i}.png", (i, i, i))
    store = load_image_folder(tmp_path)
    assert store.labels.tolist() == [-1] * 4
    assert store.class_names == [] and not store.has_labels


def test_nested_folder_without_class_structure_is_unlabeled(tmp_path: Path) -> None:
    _png(tmp_path / "2019" / "jan" / "a.png", (0, 0, 0))
    _png(tmp_path / "2019" / "feb" / "b.png", (0, 0, 0))
    _png(tmp_path / "2020" / "mar" / "c.png", (0, 0, 0))
    store = load_image_folder(tmp_path)
    assert len(store) == 3 and store.labels.tolist() == [-1, -1, -1]
    assert store.file_names == ["2019/feb/b.png", "2019/jan/a.png", "2020/mar/c.png"]
    # A single sub-folder is not a class structure either.
    single = tmp_path / "single"
    _png(single / "images" / "x.png", (0, 0, 0))
    assert load_image_folder(single).labels.tolist() == [-1]
    # Images at the top level next to sub-folders: unlabeled, recursive.
    mixed = tmp_path / "mixed"
    _png(mixed / "top.png", (0, 0, 0))
    _make_classes(mixed, ["a", "b"], per_class=1)
    store = load_image_folder(mixed)
    assert len(store) == 3 and not store.has_labels


def _write_broken(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.png").write_text("this is not a PNG")
    good = folder / "good_for_truncation.jpg"
    arr = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(arr).save(good, quality=90)
    data = good.read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 3])
    good.unlink()


@pytest.mark.parametrize("workers", [0, 2])
def test_corrupt_files_are_skipped_counted_and_listed(tmp_path: Path, workers: int) -> None:
    _make_classes(tmp_path, ["a", "b"], per_class=2)
    _write_broken(tmp_path / "b")
    store = load_image_folder(tmp_path, workers=workers)
    assert len(store) == 4
    assert store.labels.tolist() == [0, 0, 1, 1]
    assert sorted(p for p, _ in store.skipped) == ["b/empty.jpg", "b/text.png", "b/truncated.jpg"]
    assert all(reason for _, reason in store.skipped)
    assert all("empty" not in f for f in store.file_names or [])


def test_folder_with_only_broken_files_is_user_error(tmp_path: Path) -> None:
    _write_broken(tmp_path)
    with pytest.raises(UserError, match="no readable image") as info:
        load_image_folder(tmp_path)
    assert str(tmp_path) in str(info.value) and "--data-dir" in str(info.value)


def test_empty_folder_is_user_error(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(UserError, match="no image files") as info:
        load_image_folder(tmp_path)
    assert str(tmp_path) in str(info.value) and "--data-dir" in str(info.value)


def test_missing_folder_is_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist") as info:
        load_image_folder(tmp_path / "nowhere")
    assert "--data-dir" in str(info.value)
    file = tmp_path / "file.png"
    _png(file, (0, 0, 0))
    with pytest.raises(UserError, match="not a folder"):
        load_image_folder(file)


def test_native_size_kept_when_uniform(tmp_path: Path) -> None:
    for i in range(3):
        _png(tmp_path / f"{i}.png", (0, 0, 0), size=(12, 10))
    store = load_image_folder(tmp_path)
    assert store.images.shape == (3, 3, 10, 12)


def test_varying_sizes_need_image_size(tmp_path: Path) -> None:
    _png(tmp_path / "a.png", (255, 0, 0), size=(8, 8))
    _png(tmp_path / "b.png", (0, 255, 0), size=(20, 12))
    _png(tmp_path / "c.png", (0, 0, 255), size=(5, 9))
    with pytest.raises(UserError, match="--image-size"):
        load_image_folder(tmp_path)
    store = load_image_folder(tmp_path, image_size=6)
    assert store.images.shape == (3, 3, 6, 6)
    assert store.images[1, 1].min() > 200  # uniform green stays green after resize


def test_limit_per_class_and_limit(tmp_path: Path) -> None:
    _make_classes(tmp_path, ["a", "b", "c"], per_class=5)
    store = load_image_folder(tmp_path, limit_per_class=2)
    assert store.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert store.file_names == [
        "a/000.png",
        "a/001.png",
        "b/000.png",
        "b/001.png",
        "c/000.png",
        "c/001.png",
    ]
    limited = load_image_folder(tmp_path, limit=6, seed=3)
    assert torch.bincount(limited.labels).tolist() == [2, 2, 2]
    again = load_image_folder(tmp_path, limit=6, seed=3)
    assert limited.file_names == again.file_names


def test_workers_give_identical_result(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    for k in range(2):
        for i in range(150):  # more than one decode chunk
            arr = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
            path = tmp_path / f"c{k}" / f"{i:04d}.png"
            path.parent.mkdir(exist_ok=True)
            Image.fromarray(arr).save(path)
    (tmp_path / "c1" / "0007.png").write_bytes(b"broken")
    serial = load_image_folder(tmp_path, workers=0)
    assert len(serial) == 299 and [p for p, _ in serial.skipped] == ["c1/0007.png"]
    parallel = load_image_folder(tmp_path, workers=2)  # forked processes on Linux
    assert torch.equal(serial.images, parallel.images)
    assert torch.equal(serial.labels, parallel.labels)
    assert serial.file_names == parallel.file_names and serial.skipped == parallel.skipped
    paths = [tmp_path / f for f in serial.file_names or []]
    for pool in ("thread", "process"):
        images, ok_idx, skipped = decode_files(paths, workers=2, pool=pool)
        assert torch.equal(images, serial.images) and ok_idx.numel() == 299 and skipped == []


@pytest.mark.parametrize("pool", ["thread", "process"])
def test_parallel_size_mismatch_is_user_error(tmp_path: Path, pool: str) -> None:
    paths = [_png(tmp_path / f"{i:03d}.png", (0, 0, 0), size=(8, 8)) for i in range(100)]
    paths.append(_png(tmp_path / "odd.png", (0, 0, 0), size=(9, 8)))
    with pytest.raises(UserError, match="--image-size"):
        decode_files(paths, workers=2, pool=pool)


def test_split_folder_test_reuses_train_classes(tmp_path: Path) -> None:
    _make_classes(tmp_path / "train", ["a", "b", "c"], per_class=2)
    # The test split lacks class "a": "c" must still be label 2.
    _png(tmp_path / "test" / "b" / "0.png", _class_color(1))
    _png(tmp_path / "test" / "c" / "0.png", _class_color(2))
    test = load_split_folder(tmp_path, "test")
    assert test.class_names == ["a", "b", "c"]
    assert test.labels.tolist() == [1, 2]
    assert folder_class_names(tmp_path / "train") == ["a", "b", "c"]
    _png(tmp_path / "val_only" / "train" / "a" / "0.png", (0, 0, 0))
    with pytest.raises(UserError, match="test/ or val"):
        load_split_folder(tmp_path / "val_only", "test")


def test_unknown_test_class_is_user_error(tmp_path: Path) -> None:
    _make_classes(tmp_path / "train", ["a", "b"], per_class=1)
    _make_classes(tmp_path / "test", ["a", "x"], per_class=1)
    with pytest.raises(UserError, match="not among the training classes"):
        load_split_folder(tmp_path, "test")


def test_symlinked_files_are_followed(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _make_classes(src, ["a", "b"], per_class=2)
    dst = tmp_path / "dst"
    for cls in ("a", "b"):
        (dst / cls).mkdir(parents=True)
        for f in (src / cls).iterdir():
            os.symlink(f, dst / cls / f.name)
    assert len(load_image_folder(dst)) == 4


def test_real_cifar10_subset(cifar_small: Path) -> None:
    train = load_split_folder(cifar_small, "train", workers=2)
    test = load_split_folder(cifar_small, "test")
    expected = sorted(p.name for p in (cifar_small / "train").iterdir())
    assert train.class_names == expected and len(expected) == 10
    assert train.images.shape == (300, 3, 32, 32) and train.images.dtype == torch.uint8
    assert train.images.is_contiguous()
    assert torch.bincount(train.labels).tolist() == [30] * 10
    assert test.images.shape == (100, 3, 32, 32) and test.class_names == expected
    assert torch.bincount(test.labels).tolist() == [10] * 10
    # Pixels and labels match a direct PIL decode of the same file.
    k = 137
    name = train.file_names[k]
    ref = np.asarray(Image.open(cifar_small / "train" / name).convert("RGB"))
    np.testing.assert_array_equal(train.images[k].permute(1, 2, 0).numpy(), ref)
    assert train.class_names[int(train.labels[k])] == name.split("/")[0]


def test_list_image_folder_without_decoding(tmp_path: Path) -> None:
    _make_classes(tmp_path, ["b", "a"], per_class=2)
    paths, labels, names = list_image_folder(tmp_path)
    assert names == ["a", "b"] and labels.tolist() == [0, 0, 1, 1]
    assert paths == ["a/000.png", "a/001.png", "b/000.png", "b/001.png"]
