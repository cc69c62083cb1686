"""COCO export -> image folder of crops: names, pixels, padding, one-shot, hostile input, CLI errors."""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

from simclr.cli import main
from simclr.data import coco
from simclr.data.coco import extract_coco_crops, padded_box, sanitize_name
from simclr.data.imagefolder import load_image_folder

GREY = (128, 128, 128)
COLOURS = {1: (220, 20, 20), 2: (20, 200, 20), 3: (20, 20, 220)}
CATEGORIES = [
    {"id": 0, "name": "shapes", "supercategory": "none"},  # Roboflow's unused super-category
    {"id": 1, "name": "red", "supercategory": "shapes"},
    {"id": 2, "name": "green", "supercategory": "shapes"},
    {"id": 3, "name": "blue/dark", "supercategory": "shapes"},  # sanitised to blue_dark
]
# split -> image file -> (PIL mode, [(annotation id, category id, box)])
SPEC: dict[str, dict[str, tuple[str, list[tuple[int, int, list[float]]]]]] = {
    "train": {
        "a.png": ("RGB", [(1, 1, [10, 8, 20, 16]), (2, 3, [40, 20, 24, 20])]),
        "b.png": ("RGB", [(3, 1, [5, 5, 10, 10]), (4, 2, [30, 10, 20, 20])]),
        "c.png": ("RGB", [(5, 2, [2, 2, 16, 16]), (6, 3, [30, 20, 20, 20])]),
    },
    "valid": {
        "v.png": (
            "RGB",
            [(11, 1, [10, 10, 20, 20]), (12, 2, [35, 10, 20, 20]), (13, 3, [10, 30, 20, 15])],
        ),
    },
    "test": {
        "t.png": ("RGBA", [(21, 1, [10, 10, 20, 20]), (22, 2, [35, 10, 20, 20])]),
        "g.png": ("L", [(23, 3, [20, 20, 10, 10])]),
    },
}
FOLDERS = {1: "red", 2: "green", 3: "blue_dark"}


def _draw(path: Path, mode: str, boxes: list[tuple[int, int, list[float]]]) -> None:
    img = Image.new("RGB", (64, 48), GREY)
    draw = ImageDraw.Draw(img)
    for _, cat, (x, y, w, h) in boxes:
        draw.rectangle([x, y, x + w - 1, y + h - 1], fill=COLOURS[cat])
    img.convert(mode).save(path)


def _write_json(split_dir: Path, images: list[Any], annotations: list[Any]) -> None:
    data = {"images": images, "annotations": annotations, "categories": CATEGORIES}
    (split_dir / coco.ANNOTATION_FILE).write_text(json.dumps(data))


def make_export(root: Path, splits: tuple[str, ...] = coco.COCO_SPLITS) -> Path:
    """A small Roboflow-style COCO export of coloured rectangles on grey 64x48 images."""
    for split in splits:
        split_dir = root / split
        split_dir.mkdir(parents=True)
        images, annotations = [], []
        for image_id, (name, (mode, boxes)) in enumerate(SPEC[split].items(), start=1):
            _draw(split_dir / name, mode, boxes)
            images.append({"id": image_id, "file_name": name, "width": 64, "height": 48})
            annotations += [
                {
                    "id": a,
                    "image_id": image_id,
                    "category_id": c,
                    "bbox": box,
                    "area": box[2] * box[3],
                }
                for a, c, box in boxes
            ]
        _write_json(split_dir, images, annotations)
    return root


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.suffix == ".jpg"}


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        assert img.mode == "RGB"
        return np.asarray(img, dtype=np.int32)


def _near(pixel: np.ndarray, colour: tuple[int, int, int], tol: int = 24) -> bool:
    return bool(np.abs(pixel - np.array(colour)).max() <= tol)


def test_crops_land_in_class_folders_named_by_image_and_annotation(tmp_path: Path) -> None:
    summary = extract_coco_crops(make_export(tmp_path / "export"), tmp_path / "out", pad=0.0)
    expected = {
        f"{split}/{FOLDERS[cat]}/{Path(name).stem}_{ann}.jpg"
        for split, images in SPEC.items()
        for name, (_, boxes) in images.items()
        for ann, cat, _ in boxes
    }
    assert _files(tmp_path / "out") == expected
    assert not (tmp_path / "out" / "train" / "shapes").exists()  # unused super-category: no folder
    assert summary.crops["train"] == {"blue_dark": 2, "green": 2, "red": 2}
    assert summary.total == len(expected) and summary.skipped == [] and summary.missing_splits == []


def test_pad_zero_crop_is_the_box_in_its_colour_and_any_mode_becomes_rgb(tmp_path: Path) -> None:
    extract_coco_crops(make_export(tmp_path / "export"), tmp_path / "out", pad=0.0)
    for split, images in SPEC.items():
        for name, (mode, boxes) in images.items():
            for ann, cat, (_, _, w, h) in boxes:
                crop = _pixels(tmp_path / "out" / split / FOLDERS[cat] / f"{Path(name).stem}_{ann}.jpg")
                assert crop.shape == (h, w, 3)
                if mode != "L":
                    assert _near(np.median(crop.reshape(-1, 3), axis=0), COLOURS[cat])


def test_padding_is_symmetric_and_clipped_at_the_image_edge(tmp_path: Path) -> None:
    extract_coco_crops(make_export(tmp_path / "export"), tmp_path / "out", pad=0.25)
    # red box (10, 8, 20, 16): 5 px left/right, 4 px top/bottom of grey around it
    red = _pixels(tmp_path / "out" / "train" / "red" / "a_1.jpg")
    assert red.shape == (24, 30, 3)
    assert _near(red[12, 15], COLOURS[1]) and _near(red[1, 1], GREY) and _near(red[-2, -2], GREY)
    assert _near(red[4 + 2, 5 + 2], COLOURS[1]) and _near(red[12, 2], GREY)
    # blue box (40, 20, 24, 20) touches the right edge: padded 6 px left, none past the edge
    blue = _pixels(tmp_path / "out" / "train" / "blue_dark" / "a_2.jpg")
    assert blue.shape == (min(48, 45) - 15, 64 - 34, 3)
    assert _near(blue[15, -1], COLOURS[3]) and _near(blue[15, 1], GREY)


def test_padded_box_bounds() -> None:
    assert padded_box([10, 10, 20, 10], 0.0, 64, 48) == (10, 10, 30, 20)
    assert padded_box([10.5, 10, 20, 10], 0.0, 64, 48) == (10, 10, 31, 20)  # whole pixels, outwards
    assert padded_box([-5, -5, 10, 10], 0.5, 64, 48) == (0, 0, 10, 10)
    assert padded_box([64, 0, 5, 5], 0.0, 64, 48) is None
    assert padded_box([0, -10, 5, 10], 0.0, 64, 48) is None


def test_min_size_skips_and_counts(tmp_path: Path) -> None:
    summary = extract_coco_crops(make_export(tmp_path / "export"), tmp_path / "out", pad=0.0, min_size=16)
    small = {(s.split, s.annotation_id) for s in summary.skipped}
    assert small == {("train", "3"), ("test", "23"), ("valid", "13")}  # 10x10, 10x10, 20x15
    assert summary.skipped_by_reason() == {coco.TOO_SMALL: 3}
    assert not (tmp_path / "out" / "train" / "red" / "b_3.jpg").exists()


def _train_choice(export: Path, out: Path, seed: int) -> tuple[str, ...]:
    summary = extract_coco_crops(export, out, one_shot=True, seed=seed)
    assert summary.crops["train"] == {"blue_dark": 1, "green": 1, "red": 1}
    assert summary.crops["valid"] == {"blue_dark": 1, "green": 1, "red": 1}
    assert summary.crops["test"] == {"blue_dark": 1, "green": 1, "red": 1}
    assert summary.not_selected == 3 and summary.skipped == []
    return tuple(sorted(_files(out / "train")))


def test_one_shot_keeps_one_train_crop_per_class_reproducibly(tmp_path: Path) -> None:
    export = make_export(tmp_path / "export")
    first = _train_choice(export, tmp_path / "a", seed=3)
    assert _train_choice(export, tmp_path / "b", seed=3) == first
    others = {_train_choice(export, tmp_path / f"s{seed}", seed=seed) for seed in range(6)}
    assert len(others) > 1  # the seed matters
    assert _files(tmp_path / "a" / "valid") == _files(tmp_path / "s0" / "valid")


def test_hostile_and_broken_entries_are_skipped_and_counted(tmp_path: Path) -> None:
    export = make_export(tmp_path / "export")
    train = export / "train"
    outside = tmp_path / "evil.jpg"
    Image.new("RGB", (64, 48), (1, 2, 3)).save(outside)
    (train / "link.png").symlink_to(outside)
    (train / "corrupt.png").write_bytes(b"not a png at all")
    data = json.loads((train / coco.ANNOTATION_FILE).read_text())
    bad_files = ["../../evil.jpg", str(outside), "link.png", "missing.png", "corrupt.png"]
    for k, name in enumerate(bad_files):
        data["images"].append({"id": 100 + k, "file_name": name})
        data["annotations"].append({"id": 100 + k, "image_id": 100 + k, "category_id": 1, "bbox": [1, 1, 9, 9]})
    bad_annotations: list[tuple[int, int, list[float]]] = [
        (1, 1, [5, 5, 0, 10]),  # zero width
        (1, 1, [5, 5, 10, -3]),  # negative height
        (1, 1, [float("nan"), 5, 10, 10]),
        (1, 1, [5, float("inf"), 10, 10]),
        (1, 1, [100, 100, 10, 10]),  # wholly outside the 64x48 image
        (1, 99, [5, 5, 10, 10]),  # unknown category
        (999, 1, [5, 5, 10, 10]),  # unknown image
    ]
    for k, (image_id, cat, box) in enumerate(bad_annotations):
        data["annotations"].append({"id": 200 + k, "image_id": image_id, "category_id": cat, "bbox": box})
    (train / coco.ANNOTATION_FILE).write_text(json.dumps(data))  # NaN/Infinity as Python writes them
    before = {p for p in tmp_path.rglob("*")}

    summary = extract_coco_crops(export, tmp_path / "out")

    assert summary.skipped_by_reason() == {
        coco.UNSAFE_PATH: 3,
        coco.NON_FINITE_BOX: 2,
        coco.EMPTY_BOX: 2,
        coco.MISSING_IMAGE: 1,
        coco.UNDECODABLE_IMAGE: 1,
        coco.OUTSIDE_BOX: 1,
        coco.UNKNOWN_CATEGORY: 1,
        coco.UNKNOWN_IMAGE: 1,
    }
    by_id = {s.annotation_id: s.reason for s in summary.skipped}
    assert [by_id[str(100 + k)] for k in range(5)] == [coco.UNSAFE_PATH] * 3 + [
        coco.MISSING_IMAGE,
        coco.UNDECODABLE_IMAGE,
    ]
    assert summary.crops["train"] == {
        "blue_dark": 2,
        "green": 2,
        "red": 2,
    }  # the good ones still made
    new = {p for p in tmp_path.rglob("*")} - before
    assert new and all(p.is_relative_to(tmp_path / "out") for p in new)
    assert not any("evil" in p.name or "link" in p.name for p in new)


def test_malformed_entries_and_hostile_names_stay_inside_out_dir(tmp_path: Path) -> None:
    export = make_export(tmp_path / "export", splits=("train",))
    data = json.loads((export / "train" / coco.ANNOTATION_FILE).read_text())
    data["categories"].append({"id": 7, "name": "../.."})
    data["images"].append({"id": 50, "file_name": 42})
    data["annotations"] += [
        {"id": "../../x", "image_id": 1, "category_id": 7, "bbox": [1, 1, 8, 8]},
        {"id": 300, "image_id": 50, "category_id": 1, "bbox": [1, 1, 8, 8]},
        {"id": 301, "image_id": 1, "category_id": 1, "bbox": [1, 1, 8]},
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 8, 8]},
        "not an annotation",
    ]
    (export / "train" / coco.ANNOTATION_FILE).write_text(json.dumps(data))
    summary = extract_coco_crops(export, tmp_path / "out")
    assert summary.skipped_by_reason() == {
        coco.BAD_IMAGE_ENTRY: 1,
        coco.MALFORMED_BOX: 1,
        coco.DUPLICATE_ID: 1,
        coco.BAD_ANNOTATION: 1,
    }
    assert (tmp_path / "out" / "train" / "___.." / "a____.._x.jpg").is_file()
    assert {p.name for p in tmp_path.iterdir()} == {"export", "out"}


def test_sanitize_name() -> None:
    assert sanitize_name("a/b\\c") == "a_b_c"
    assert sanitize_name("..") == "__"
    assert sanitize_name(".hidden") == "_hidden"
    assert sanitize_name("  ") == "unnamed"
    assert sanitize_name("ok name") == "ok name"
    assert len(sanitize_name("x" * 500)) == 100


def test_summary_and_skipped_csv(tmp_path: Path) -> None:
    export = make_export(tmp_path / "export")
    extract_coco_crops(export, tmp_path / "out", pad=0.0, min_size=16)
    with open(tmp_path / "out" / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["split"], r["class"], r["crops"]) for r in rows] == [
        ("train", "blue_dark", "2"),
        ("train", "green", "2"),
        ("train", "red", "1"),
        ("valid", "green", "1"),
        ("valid", "red", "1"),
        ("test", "green", "1"),
        ("test", "red", "1"),
    ]
    with open(tmp_path / "out" / "skipped.csv", newline="") as f:
        skipped = list(csv.DictReader(f))
    assert {(r["split"], r["file_name"], r["annotation_id"], r["reason"]) for r in skipped} == {
        ("train", "b.png", "3", coco.TOO_SMALL),
        ("valid", "v.png", "13", coco.TOO_SMALL),
        ("test", "g.png", "23", coco.TOO_SMALL),
    }


def test_output_loads_as_an_image_folder(tmp_path: Path) -> None:
    extract_coco_crops(make_export(tmp_path / "export"), tmp_path / "out")
    store = load_image_folder(tmp_path / "out" / "train", image_size=32)
    assert store.class_names == ["blue_dark", "green", "red"]
    assert Counter(store.labels.tolist()) == {0: 2, 1: 2, 2: 2}
    assert tuple(store.images.shape) == (6, 3, 32, 32)


def _cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main(["data", "coco-crops", *(str(a) for a in args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_prints_table_notes_missing_splits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    export = make_export(tmp_path / "export", splits=("train", "valid"))
    code, out, err = _cli(capsys, export, tmp_path / "out", "--pad", "0", "--min-size", "16")
    assert code == 0 and err == ""
    assert "no test/" in out
    for name in ("red", "green", "blue_dark", coco.TOO_SMALL):
        assert name in out
    assert (tmp_path / "out" / "train" / "red" / "a_1.jpg").is_file()


def _one_line_error(code: int, err: str, *words: str) -> None:
    assert code == 2
    assert err.startswith("simclr: error: ") and err.count("\n") == 1
    assert all(word in err for word in words), err


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    export = make_export(tmp_path / "export", splits=("train", "valid"))
    (export / "valid" / coco.ANNOTATION_FILE).write_text("{not json")
    _one_line_error(*_cli(capsys, export, tmp_path / "out")[::2], "valid", coco.ANNOTATION_FILE)
    assert not (tmp_path / "out").exists()  # nothing written before every file was read
    (tmp_path / "empty").mkdir()
    _one_line_error(*_cli(capsys, tmp_path / "empty", tmp_path / "out")[::2], "no split")
    _one_line_error(*_cli(capsys, export, tmp_path / "out", "--pad", "-1")[::2], "--pad")
    _one_line_error(*_cli(capsys, export)[::2], "OUT_DIR")
    _one_line_error(*_cli(capsys, export, tmp_path, "--overwrite")[::2], "outside")
    assert (export / "train" / "a.png").is_file()
    (export / "valid" / coco.ANNOTATION_FILE).write_text('{"images": []}')
    _one_line_error(*_cli(capsys, export, tmp_path / "out")[::2], "not a COCO annotation file")


def test_existing_crops_are_kept_unless_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    export = make_export(tmp_path / "export")
    out = tmp_path / "out"
    assert _cli(capsys, export, out)[0] == 0
    stray = out / "train" / "red" / "old.jpg"
    stray.write_bytes(b"keep me")
    snapshot = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()}

    _one_line_error(*_cli(capsys, export, out, "--one-shot")[::2], "--overwrite")
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()} == snapshot

    assert _cli(capsys, export, out, "--one-shot", "--overwrite")[0] == 0
    assert not stray.exists()  # the earlier extraction was replaced, not mixed in
    assert len(_files(out / "train")) == 3 and len(_files(out / "valid")) == 3


def test_unrelated_files_in_out_dir_are_fine(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "README.txt").write_text("notes")
    extract_coco_crops(make_export(tmp_path / "export"), out)
    assert (out / "README.txt").read_text() == "notes"
    assert os.path.isfile(out / "summary.csv")
