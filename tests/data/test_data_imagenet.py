"""ImageNet / ImageNet-100 on tiny fake ILSVRC2012 layouts: train/val label agreement for every accepted
validation layout, the subset, the one-line errors and the --download explanation."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from simclr.cli import main
from simclr.data.catalog import dataset_info, load_dataset
from simclr.data.imagenet import IMAGENET100_WNIDS, list_imagenet, load_imagenet
from simclr.data.request import LoadRequest
from simclr.errors import UserError
from simclr.models.backbones import resolve_stem

# Three real wnids, none of them in ImageNet-100, each drawn in its own colour so a decoded image shows its class.
WNIDS = ("n01440764", "n01443537", "n02102040")
COLOURS = {"n01440764": (250, 0, 0), "n01443537": (0, 250, 0), "n02102040": (0, 0, 250)}
# Flat val images in ILSVRC order; the classes are deliberately not in sorted order.
VAL_WNIDS = ("n02102040", "n01440764", "n01443537", "n02102040")


def _jpeg(path: Path, colour: tuple[int, int, int] = (128, 128, 128), size: tuple[int, int] = (40, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, quality=95)


def _train(root: Path, wnids: tuple[str, ...] = WNIDS, per_class: int = 3) -> None:
    for wnid in wnids:
        for k in range(per_class):
            _jpeg(root / "train" / wnid / f"{wnid}_{10026 + k}.JPEG", COLOURS.get(wnid, (128, 128, 128)))


def _val_name(k: int) -> str:
    return f"ILSVRC2012_val_{k:08d}"


def _flat_val(root: Path, wnids: tuple[str, ...] = VAL_WNIDS) -> None:
    for k, wnid in enumerate(wnids, start=1):
        _jpeg(root / "val" / f"{_val_name(k)}.JPEG", COLOURS.get(wnid, (128, 128, 128)))


def _kaggle_csv(root: Path, wnids: tuple[str, ...] = VAL_WNIDS) -> None:
    rows = [f"{_val_name(k)},{wnid} 10 20 30 40 {wnid} 1 2 3 4" for k, wnid in enumerate(wnids, start=1)]
    (root / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" + "\n".join(rows) + "\n")


def _labels_txt(root: Path) -> None:
    lines = [f"{_val_name(k)}.JPEG {wnid}" for k, wnid in enumerate(VAL_WNIDS, start=1)]
    (root / "val_labels.txt").write_text("\n".join(lines) + "\n")


def _devkit(root: Path) -> None:
    sio = pytest.importorskip("scipy.io")
    data = root / "ILSVRC2012_devkit_t12" / "data"
    data.mkdir(parents=True)
    # ILSVRC2012_IDs follow the devkit's own order, not the sorted wnids; id 4 is an inner synset.
    ids = {"n01443537": 1, "n02102040": 2, "n01440764": 3, "n00001740": 4}
    synsets = np.zeros((len(ids), 1), dtype=[("ILSVRC2012_ID", "O"), ("WNID", "O"), ("num_children", "O")])
    for row, (wnid, ilsvrc_id) in enumerate(ids.items()):
        synsets[row, 0] = (ilsvrc_id, wnid, 0 if ilsvrc_id < 4 else 3)
    sio.savemat(str(data / "meta.mat"), {"synsets": synsets})
    (data / "ILSVRC2012_validation_ground_truth.txt").write_text("".join(f"{ids[w]}\n" for w in VAL_WNIDS))


def _colour_label(store, wnid_order: list[str]) -> list[int]:
    """The label each decoded image's colour stands for (index of its wnid in ``wnid_order``)."""
    by_colour = {int(torch.tensor(c).argmax()): wnid_order.index(w) for w, c in COLOURS.items() if w in wnid_order}
    return [by_colour[int(img.float().mean(dim=(1, 2)).argmax())] for img in store.images]


# ------------------------------------------------------------------------------- constants


def test_imagenet100_list_is_100_distinct_wnids() -> None:
    assert len(IMAGENET100_WNIDS) == 100 and len(set(IMAGENET100_WNIDS)) == 100
    assert all(re.fullmatch(r"n\d{8}", w) for w in IMAGENET100_WNIDS)
    # The CMC list's first and last entries, in its order.
    assert IMAGENET100_WNIDS[:2] == ("n02869837", "n01749939") and IMAGENET100_WNIDS[-1] == "n02090622"


def test_dataset_info_224_and_imagenet_stem() -> None:
    info = dataset_info("imagenet")
    assert (info.image_size, info.num_classes, info.labelled) == (224, 1000, True)
    assert info.mean == (0.485, 0.456, 0.406) and info.std == (0.229, 0.224, 0.225)
    assert info.blur and info.jitter_strength == 1.0
    assert resolve_stem("auto", info.image_size) == "imagenet"
    sub = dataset_info("imagenet100")
    assert (sub.image_size, sub.num_classes) == (224, 100)


# ------------------------------------------------------------------------------- train / val


def test_train_labels_are_sorted_wnid_folders(tmp_path: Path) -> None:
    _train(tmp_path)
    store = load_imagenet(LoadRequest("train", tmp_path, image_size=32, workers=0))
    assert store.class_names == sorted(WNIDS)
    assert store.images.shape == (9, 3, 32, 32) and store.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert _colour_label(store, store.class_names) == store.labels.tolist()
    assert store.file_names is not None and store.file_names[0] == "train/n01440764/n01440764_10026.JPEG"
    labelled = load_dataset("imagenet", "train_labeled", tmp_path, image_size=32)
    assert labelled is not None and labelled.labels.tolist() == store.labels.tolist()


def test_default_image_size_is_224(tmp_path: Path) -> None:
    _train(tmp_path, per_class=1)
    store = load_dataset("imagenet", "train", tmp_path)
    assert store is not None and store.images.shape == (3, 3, 224, 224)


@pytest.mark.parametrize("layout", ["foldered", "kaggle-csv", "val-labels-txt", "devkit"])
def test_val_labels_agree_with_train(tmp_path: Path, layout: str) -> None:
    _train(tmp_path)
    if layout == "foldered":
        for k, wnid in enumerate(VAL_WNIDS, start=1):
            _jpeg(tmp_path / "val" / wnid / f"{_val_name(k)}.JPEG", COLOURS[wnid])
    else:
        {"kaggle-csv": _kaggle_csv, "val-labels-txt": _labels_txt, "devkit": _devkit}[layout](tmp_path)
        _flat_val(tmp_path)
    train = load_dataset("imagenet", "train", tmp_path, image_size=32)
    test = load_dataset("imagenet", "test", tmp_path, image_size=32)
    assert train is not None and test is not None
    assert test.class_names == train.class_names
    assert sorted(test.labels.tolist()) == sorted(train.class_names.index(w) for w in VAL_WNIDS)
    assert _colour_label(test, train.class_names) == test.labels.tolist()


def test_flat_val_image_without_ground_truth_is_skipped_and_counted(tmp_path: Path) -> None:
    _train(tmp_path)
    _flat_val(tmp_path)
    _kaggle_csv(tmp_path)
    _jpeg(tmp_path / "val" / f"{_val_name(99)}.JPEG")
    (tmp_path / "train" / WNIDS[0] / f"{WNIDS[0]}_broken.JPEG").write_bytes(b"not a jpeg")
    test = load_imagenet(LoadRequest("test", tmp_path, image_size=32, workers=0))
    assert len(test) == len(VAL_WNIDS)
    assert test.skipped == [(f"val/{_val_name(99)}.JPEG", "no ground-truth label")]
    train = load_imagenet(LoadRequest("train", tmp_path, image_size=32, workers=0))
    assert len(train) == 9 and [name for name, _ in train.skipped] == [f"train/{WNIDS[0]}/{WNIDS[0]}_broken.JPEG"]


def test_limit_is_stratified_before_decoding(tmp_path: Path) -> None:
    _train(tmp_path)
    store = load_dataset("imagenet", "train", tmp_path, image_size=32, limit=3, seed=1)
    assert store is not None and sorted(store.labels.tolist()) == [0, 1, 2]
    again = load_dataset("imagenet", "train", tmp_path, image_size=32, limit=3, seed=1)
    assert again is not None and again.file_names == store.file_names


# ------------------------------------------------------------------------------- imagenet100


def _imagenet100_layout(root: Path, missing: int = 0) -> tuple[str, ...]:
    """One train image for every ImageNet-100 wnid but the last ``missing``, plus the three non-members."""
    present = IMAGENET100_WNIDS[: len(IMAGENET100_WNIDS) - missing]
    _train(root, present + WNIDS, per_class=1)
    return present


def test_imagenet100_keeps_only_its_classes(tmp_path: Path) -> None:
    _imagenet100_layout(tmp_path)
    val_wnids = (IMAGENET100_WNIDS[5], WNIDS[0], IMAGENET100_WNIDS[0])
    _flat_val(tmp_path, val_wnids)
    _kaggle_csv(tmp_path, val_wnids)
    files, classes, unlabelled = list_imagenet("train", tmp_path, subset=IMAGENET100_WNIDS)
    assert classes == sorted(IMAGENET100_WNIDS) and len(files) == 100 and not unlabelled
    assert {path.parent.name for path, _ in files} == set(IMAGENET100_WNIDS)
    assert all(classes[label] == path.parent.name for path, label in files)
    test = load_dataset("imagenet100", "test", tmp_path, image_size=32)
    assert test is not None and test.class_names == classes
    assert test.labels.tolist() == [classes.index(IMAGENET100_WNIDS[5]), classes.index(IMAGENET100_WNIDS[0])]
    assert not test.skipped  # other ImageNet classes are left out, not skipped
    train = load_dataset("imagenet100", "train", tmp_path, image_size=32, limit=10)
    assert train is not None and len(train) == 10 and train.labels.max() < 100


def test_imagenet100_names_missing_wnids(tmp_path: Path) -> None:
    _imagenet100_layout(tmp_path, missing=7)
    with pytest.raises(UserError) as info:
        load_dataset("imagenet100", "train", tmp_path, image_size=32)
    msg = str(info.value)
    assert "7 of the 100 imagenet100 classes are missing" in msg and "\n" not in msg
    assert ", ".join(sorted(IMAGENET100_WNIDS[-7:])[:3]) in msg


# ------------------------------------------------------------------------------- errors


def test_missing_train_folder_exits_2_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["pretrain", "--dataset", "imagenet", "--data-dir", str(empty), "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"no train/ folder in {empty}" in err and "--data-dir" in err


def test_train_without_wnid_folders(tmp_path: Path) -> None:
    _jpeg(tmp_path / "train" / "cats" / "0.JPEG")
    with pytest.raises(UserError, match="no wnid sub-folders"):
        load_imagenet(LoadRequest("train", tmp_path, image_size=32))


def test_flat_val_without_ground_truth(tmp_path: Path) -> None:
    _train(tmp_path)
    _flat_val(tmp_path)
    with pytest.raises(UserError) as info:
        load_imagenet(LoadRequest("test", tmp_path, image_size=32))
    msg = str(info.value)
    assert "no ground truth" in msg and "LOC_val_solution.csv" in msg and "val_labels.txt" in msg
    assert "ILSVRC2012_devkit_t12" in msg and "\n" not in msg


def test_bad_ground_truth_files(tmp_path: Path) -> None:
    _train(tmp_path)
    _flat_val(tmp_path)
    (tmp_path / "val_labels.txt").write_text(f"{_val_name(1)}.JPEG 3\n")
    with pytest.raises(UserError, match="line 1: expected '<file name> <wnid>'"):
        load_imagenet(LoadRequest("test", tmp_path, image_size=32))
    (tmp_path / "LOC_val_solution.csv").write_text("id,label\n")
    with pytest.raises(UserError, match="ImageId,PredictionString"):
        load_imagenet(LoadRequest("test", tmp_path, image_size=32))


def test_val_class_missing_from_train(tmp_path: Path) -> None:
    _train(tmp_path, WNIDS[:2])
    _jpeg(tmp_path / "val" / WNIDS[2] / f"{_val_name(1)}.JPEG")
    with pytest.raises(UserError, match=f"1 class\\(es\\) missing from .*train \\(e.g. {WNIDS[2]}\\)"):
        load_imagenet(LoadRequest("test", tmp_path, image_size=32))


def test_unknown_split(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unknown split"):
        load_imagenet(LoadRequest("validation", tmp_path))


@pytest.mark.parametrize("name", ["imagenet", "imagenet100"])
def test_download_explains_manual_fetch(tmp_path: Path, name: str) -> None:
    for data_dir in (tmp_path, None):
        with pytest.raises(UserError) as info:
            load_dataset(name, "train", data_dir, download=True)
        msg = str(info.value)
        assert msg.startswith(f"{name} cannot be downloaded automatically") and "\n" not in msg
        for part in ("image-net.org", "ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar", "ILSVRC2012_devkit_t12"):
            assert part in msg
        assert "DIR/train/<wnid>/*.JPEG" in msg and "--data-dir" in msg
    with pytest.raises(UserError, match="--data-dir"):
        load_dataset(name, "train", None)


def test_download_with_data_present_just_loads(tmp_path: Path) -> None:
    _train(tmp_path, per_class=1)
    store = load_dataset("imagenet", "train", tmp_path, download=True, image_size=32)
    assert store is not None and len(store) == 3


def test_devkit_without_scipy_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _train(tmp_path)
    _flat_val(tmp_path)
    _devkit(tmp_path)
    monkeypatch.setitem(sys.modules, "scipy.io", None)  # makes `from scipy.io import loadmat` fail
    with pytest.raises(UserError) as info:
        load_imagenet(LoadRequest("test", tmp_path, image_size=32))
    msg = str(info.value)
    assert "needs SciPy" in msg and "meta.mat" in msg and "\n" not in msg


def test_imagenet_over_the_memory_budget_is_packed_once_and_streamed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """ImageNet at 224 px (190 GB decoded) never goes into memory: over the budget its file lists are packed
    (labels and class order as the in-memory loader's) and the splits stream from the pack."""
    import logging

    from simclr.data.source import DataSource

    root = tmp_path / "ILSVRC2012"
    _train(root)
    _flat_val(root)
    _kaggle_csv(root)
    source = DataSource("imagenet", root, workers=1)
    with caplog.at_level(logging.INFO, logger="simclr"):
        assert source.streamed(None, memory_budget=10**9) is None  # 9 images fit
        streamed = source.streamed(None, memory_budget=2**20, pack_dir=tmp_path / "pack")
    assert "imagenet " in caplog.text and "9 images at 224x224 px take 1.3 MB decoded" in caplog.text
    assert "packed once and streamed" in caplog.text
    assert streamed is not None and streamed.image_size == 224 and streamed.test is not None
    held = load_imagenet(LoadRequest("train", root, image_size=224))
    assert streamed.train.class_names == list(WNIDS) == held.class_names
    assert sorted(streamed.train.labels.tolist()) == sorted(held.labels.tolist())
    assert sorted(streamed.test.labels.tolist()) == sorted(
        load_imagenet(LoadRequest("test", root, image_size=224)).labels.tolist()
    )
