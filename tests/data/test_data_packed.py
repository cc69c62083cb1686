"""Packing image folders and datasets into litdata shards: what is stored, what is skipped, resuming."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from litdata import StreamingDataset
from PIL import Image

from simclr.cli import main
from simclr.data import packed
from simclr.data.decode import load_image
from simclr.data.pack_format import INDEX_FILE, LABELS_FILE, SKIPPED_FILE, read_pack_info
from simclr.data.pack_settings import PackConfig
from simclr.data.pack_sources import pack_sources
from simclr.data.packed import pack_dataset
from simclr.data.streaming import decode_stored
from simclr.errors import UserError


def _image(path: Path, size: tuple[int, int], mode: str = "RGB", seed: int = 0, **save: object) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "I;16":
        Image.fromarray(rng.integers(0, 65535, (size[1], size[0]), dtype=np.uint16)).save(path, **save)
    else:
        channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
        data = rng.integers(0, 255, (size[1], size[0], channels), dtype=np.uint8)
        Image.fromarray(data.squeeze(-1) if channels == 1 else data, mode=mode).save(path, **save)
    return path


def _stored(split_dir: Path) -> dict[str, dict[str, object]]:
    dataset = StreamingDataset(str(split_dir))
    return {bytes(item["path"]).decode(): item for item in (dataset[i] for i in range(len(dataset)))}


@pytest.fixture
def hostile_folder(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    _image(root / "cats" / "small.jpg", (40, 30), seed=1, quality=90)
    _image(root / "cats" / "big.jpg", (900, 600), seed=2)
    _image(root / "cats" / "alpha.png", (50, 50), "RGBA", seed=3)
    _image(root / "dogs" / "gray16.png", (48, 40), "I;16", seed=4)
    _image(root / "dogs" / "plain.png", (64, 64), seed=5)
    _image(root / "dogs" / "deep" / "nested.jpg", (70, 50), seed=6)
    (root / "dogs" / "empty.jpg").write_bytes(b"")
    (root / "dogs" / "notes.jpg").write_text("this is not an image")
    truncated = io.BytesIO()
    Image.new("RGB", (80, 80), "red").save(truncated, format="JPEG")
    (root / "cats" / "truncated.jpg").write_bytes(truncated.getvalue()[:200])
    return root


def test_pack_stores_kept_files_byte_for_byte_and_converts_the_rest(hostile_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "packed"
    summaries = pack_dataset(str(hostile_folder), out, PackConfig(max_side=512, workers=1))
    summary = summaries["train"]
    assert summary.images == 6 and summary.classes == 2
    assert sorted(path for path, _ in summary.skipped) == ["cats/truncated.jpg", "dogs/empty.jpg", "dogs/notes.jpg"]
    with open(out / "train" / SKIPPED_FILE, newline="") as handle:
        assert sorted(row["path"] for row in csv.DictReader(handle)) == sorted(p for p, _ in summary.skipped)

    stored = _stored(out / "train")
    assert set(stored) == {
        "cats/small.jpg",
        "cats/big.jpg",
        "cats/alpha.png",
        "dogs/gray16.png",
        "dogs/plain.png",
        "dogs/deep/nested.jpg",
    }
    # JPEG and 8-bit RGB PNG within max_side: the file itself
    for name in ("cats/small.jpg", "dogs/plain.png", "dogs/deep/nested.jpg"):
        assert bytes(stored[name]["image"]) == (hostile_folder / name).read_bytes()
    # too large: downscaled once to the longer side max_side, aspect ratio kept
    big = decode_stored(stored["cats/big.jpg"]["image"])
    assert big.size == (512, 341)
    # alpha and 16-bit: converted as the folder loader converts them, losslessly (a PNG source stays lossless)
    for name in ("cats/alpha.png", "dogs/gray16.png"):
        decoded = np.asarray(decode_stored(stored[name]["image"]))
        assert np.array_equal(decoded, load_image(hostile_folder / name))
    # labels: class folder order, and labels.npy lists them in stored order
    info = read_pack_info(out / "train")
    assert info.class_names == ["cats", "dogs"] and info.images == 6 and info.skipped == 3
    labels = np.load(out / "train" / LABELS_FILE)
    dataset = StreamingDataset(str(out / "train"))
    assert labels.tolist() == [dataset[i]["label"] for i in range(len(dataset))]
    assert all(stored[name]["label"] == (0 if name.startswith("cats") else 1) for name in stored)


def test_samples_are_stored_in_a_seeded_shuffled_order(tmp_path: Path) -> None:
    root = tmp_path / "folder"
    for i in range(30):
        _image(root / f"c{i % 3}" / f"{i:02d}.png", (8, 8), seed=i)
    first = pack_dataset(str(root), tmp_path / "a", PackConfig(seed=0, workers=1))["train"]
    again = pack_dataset(str(root), tmp_path / "b", PackConfig(seed=0, workers=1))["train"]
    other = pack_dataset(str(root), tmp_path / "c", PackConfig(seed=1, workers=1))["train"]
    order = [list(_stored(s.out)) for s in (first, again, other)]
    assert order[0] == order[1] != order[2]
    assert order[0] != sorted(order[0])  # shuffled: classes are mixed within a chunk
    assert sorted(order[0]) == sorted(order[2])


def test_an_interrupted_pack_finishes_without_redoing_finished_parts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "folder"
    for i in range(22):
        _image(root / f"c{i % 2}" / f"{i:02d}.png", (10, 10), seed=i)
    monkeypatch.setattr(packed, "PART_SIZE", 5)  # 5 parts
    real_pack_part = packed._pack_part
    calls: list[int] = []

    def dies_at_part_3(part: int) -> packed._PartResult:
        calls.append(part)
        if part == 3:
            raise KeyboardInterrupt("killed while packing part 3")
        return real_pack_part(part)

    monkeypatch.setattr(packed, "_pack_part", dies_at_part_3)
    out = tmp_path / "packed"
    with pytest.raises(KeyboardInterrupt):
        pack_dataset(str(root), out, PackConfig(workers=1))
    assert calls == [0, 1, 2, 3]
    assert not (out / "train" / INDEX_FILE).exists()

    calls.clear()
    monkeypatch.setattr(packed, "_pack_part", lambda part: (calls.append(part), real_pack_part(part))[1])
    summary = pack_dataset(str(root), out, PackConfig(workers=1))["train"]
    assert calls == [3, 4]  # parts 0-2 were finished: kept, not redone
    assert summary.resumed_parts == 3 and summary.images == 22
    names = [bytes(StreamingDataset(str(out / "train"))[i]["path"]).decode() for i in range(22)]
    assert sorted(names) == sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))  # each once


def test_a_dataset_by_name_is_packed_lossless(cifar_small: Path, tmp_path: Path) -> None:
    sources = pack_sources("cifar10", cifar_small)
    assert set(sources) == {"train", "test"}
    summaries = pack_dataset("cifar10", tmp_path / "packed", PackConfig(data_dir=cifar_small, workers=1))
    assert summaries["train"].images == 300 and summaries["test"].images == 100
    train = sources["train"]
    stored = _stored(tmp_path / "packed" / "train")
    for i in range(0, 300, 37):
        decoded = np.asarray(decode_stored(stored[train.names[i]]["image"]))
        assert np.array_equal(decoded, train.read(i))  # PNG: lossless


def test_cli_packs_reports_and_rerun_keeps_the_pack(
    hostile_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "packed"
    assert main(["data", "pack", str(hostile_folder), str(out), "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert f"{out / 'train'}: 6 images, 2 classes, 3 skipped" in printed
    assert "skipped dogs/empty.jpg" in printed
    before = {p.name: p.stat().st_mtime_ns for p in (out / "train").iterdir()}
    assert main(["data", "pack", str(hostile_folder), str(out)]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in (out / "train").iterdir()} == before
    assert "6 images, 2 classes, 3 skipped" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nowhere-at-all", "OUT"], "cannot pack 'nowhere-at-all'"),
        (["SRC", "OUT", "--quality", "101"], "quality must be within 1..100, got 101; fix --quality"),
        (["SRC", "OUT", "--max-side", "8"], "max_side must be >= 16"),
    ],
)
def test_cli_errors_are_one_line(
    args: list[str], message: str, hostile_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    resolved = [str(hostile_folder) if a == "SRC" else str(tmp_path / "out") if a == "OUT" else a for a in args]
    assert main(["data", "pack", *resolved]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_refuses_to_write_into_a_folder_that_is_not_a_pack(hostile_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "occupied" / "train"
    out.mkdir(parents=True)
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(UserError, match="not an unfinished pack"):
        pack_dataset(str(hostile_folder), tmp_path / "occupied", PackConfig(workers=1))
    assert (out / "precious.txt").read_text() == "keep me"


def test_a_damaged_pack_description_is_a_one_line_error(hostile_folder: Path, tmp_path: Path) -> None:
    pack_dataset(str(hostile_folder), tmp_path / "p", PackConfig(workers=1))
    (tmp_path / "p" / "train" / "simclr-pack.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(UserError, match="damaged"):
        read_pack_info(tmp_path / "p" / "train")


def test_imagenet_is_packed_from_its_files_with_train_labels_for_val(tmp_path: Path) -> None:
    """The ILSVRC2012 layout (train/<wnid>/, flat val/ with Kaggle's ground truth) is listed, not decoded."""
    root = tmp_path / "ILSVRC2012"
    wnids = ("n01440764", "n01443537")
    for label, wnid in enumerate(wnids):
        for k in range(3):
            _image(root / "train" / wnid / f"{wnid}_{k}.JPEG", (40, 30), seed=10 * label + k, format="JPEG")
    rows = []
    for k, wnid in enumerate(("n01443537", "n01440764"), start=1):
        _image(root / "val" / f"ILSVRC2012_val_{k:08d}.JPEG", (40, 30), seed=100 + k, format="JPEG")
        rows.append(f"ILSVRC2012_val_{k:08d},{wnid} 1 2 3 4")
    (root / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" + "\n".join(rows) + "\n")
    summaries = pack_dataset("imagenet", tmp_path / "packed", PackConfig(data_dir=root, workers=1))
    assert summaries["train"].images == 6 and summaries["test"].images == 2
    assert read_pack_info(tmp_path / "packed" / "test").class_names == list(wnids)
    val = _stored(tmp_path / "packed" / "test")
    assert val["val/ILSVRC2012_val_00000001.JPEG"]["label"] == 1
    assert val["val/ILSVRC2012_val_00000002.JPEG"]["label"] == 0
