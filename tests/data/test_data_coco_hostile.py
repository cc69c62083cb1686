"""Hostile COCO exports (issue 14): JSON nested 200,000 deep, and more boxes than anyone should write."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image

from simclr.cli import main
from simclr.data import coco
from simclr.data.coco import extract_coco_crops
from simclr.errors import UserError


def make_export(root: Path, boxes_per_split: dict[str, int]) -> Path:
    """One grey 32x32 image per split with ``n`` 8x8 boxes of one class, annotation ids 1..n."""
    for split, count in boxes_per_split.items():
        split_dir = root / split
        split_dir.mkdir(parents=True)
        Image.new("RGB", (32, 32), (128, 128, 128)).save(split_dir / "img.png")
        doc = {
            "images": [{"id": 1, "file_name": "img.png", "width": 32, "height": 32}],
            "annotations": [
                {"id": i, "image_id": 1, "category_id": 1, "bbox": [i % 4 * 8, 0, 8, 8]} for i in range(1, count + 1)
            ],
            "categories": [{"id": 1, "name": "box"}],
        }
        (split_dir / coco.ANNOTATION_FILE).write_text(json.dumps(doc))
    return root


def crops_on_disk(out: Path) -> list[Path]:
    return sorted(out.rglob("*.jpg"))


def test_json_nested_200000_deep_is_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = make_export(tmp_path / "export", {"train": 1})
    depth = 200_000
    (export / "train" / coco.ANNOTATION_FILE).write_text("[" * depth + "]" * depth)
    out = tmp_path / "crops"
    assert main(["data", "coco-crops", str(export), str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("simclr: error: ") and "\n" not in err and "Traceback" not in err
    assert "nested too deeply" in err and "re-export" in err
    assert not out.exists()


def test_max_crops_stops_writing_and_still_writes_the_csvs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    export = make_export(tmp_path / "export", {"train": 5, "valid": 2})
    out = tmp_path / "crops"
    assert main(["data", "coco-crops", str(export), str(out), "--max-crops", "3"]) == 0
    printed = capsys.readouterr().out
    assert "stopped at --max-crops 3; pass a larger --max-crops to continue" in printed
    assert len(crops_on_disk(out)) == 3
    assert not list(out.rglob("*.part"))
    with (out / coco.SUMMARY_FILE).open(newline="") as handle:
        assert list(csv.reader(handle)) == [["split", "class", "crops"], ["train", "box", "3"]]
    assert (out / coco.SKIPPED_FILE).is_file()


def test_max_crops_that_fits_every_box_is_not_a_stop(tmp_path: Path) -> None:
    export = make_export(tmp_path / "export", {"train": 2, "valid": 1})
    summary = extract_coco_crops(export, tmp_path / "crops", max_crops=3)
    assert summary.total == 3 and not summary.stopped_at_max
    stopped = extract_coco_crops(export, tmp_path / "fewer", max_crops=2)
    assert stopped.stopped_at_max and stopped.crops == {"train": {"box": 2}, "valid": {}}
    assert len(crops_on_disk(tmp_path / "fewer")) == 2


def test_max_crops_must_be_positive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    export = make_export(tmp_path / "export", {"train": 1})
    assert main(["data", "coco-crops", str(export), str(tmp_path / "crops"), "--max-crops", "0"]) == 2
    assert "--max-crops" in capsys.readouterr().err
    with pytest.raises(UserError, match="--max-crops must be >= 1"):
        extract_coco_crops(export, tmp_path / "crops", max_crops=0)
    assert not (tmp_path / "crops").exists()
