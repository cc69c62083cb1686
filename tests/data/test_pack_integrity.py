"""Packs that are complete or refused: file names that are not UTF-8 are packed (or skipped and listed), a cache
folder, ``--pack-dir`` or OUT that is a file is one line, a resumed pack whose source changed never mixes its old
and new files, a chunk whose size is not what the index says is refused before streaming, and a pack being
written is waited for by its readers."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
from litdata import StreamingDataset
from PIL import Image

from simclr.cli import main
from simclr.data.cache_folder import CACHE_ENV

NOT_UTF8 = b"\xff\xfe.png"  # a name Linux allows and UTF-8 cannot decode
BROKEN_NOT_UTF8 = b"\xfa\xfb broken.png"


def tiny(root: Path, count: int, classes: tuple[str, ...] = ("a", "b"), seed: int = 0) -> Path:
    """``count`` 8 px PNGs in class folders, named ``SEED-I.png``."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        path = root / classes[i % len(classes)] / f"{seed}-{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(path)
    return root


def with_names_not_utf8(root: Path) -> Path:
    """A folder of 8 images plus one decodable and one broken image whose names are not UTF-8."""
    tiny(root, 8)
    with open(os.fsencode(root / "a") + b"/" + NOT_UTF8, "wb") as handle:
        Image.fromarray(np.full((8, 8, 3), 200, dtype=np.uint8)).save(handle, format="PNG")
    with open(os.fsencode(root / "b") + b"/" + BROKEN_NOT_UTF8, "wb") as handle:
        handle.write(b"not an image")
    return root


def stored_names(split_dir: Path) -> list[bytes]:
    dataset = StreamingDataset(str(split_dir))
    return sorted(bytes(dataset[i]["path"]) for i in range(len(dataset)))


def folder_names(folder: Path, suffix: bytes = b".png") -> list[bytes]:
    return sorted(os.fsencode(p.relative_to(folder)) for p in folder.rglob("*") if os.fsencode(p).endswith(suffix))


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


# -- file names that are not UTF-8 ------------------------------------------------------------------
def test_data_pack_packs_names_that_are_not_utf8_and_lists_the_broken_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = with_names_not_utf8(tmp_path / "folder")
    out = tmp_path / "packed"
    assert main(["data", "pack", str(folder), str(out), "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert "9 images, 2 classes, 1 skipped" in printed
    assert "skipped b/\\udcfa\\udcfb broken.png: UnidentifiedImageError" in printed  # escaped, one line
    broken = b"b/" + BROKEN_NOT_UTF8
    assert stored_names(out / "train") == [n for n in folder_names(folder) if n != broken]
    assert b"a/" + NOT_UTF8 in stored_names(out / "train")  # the name's own bytes
    with open(out / "train" / "skipped.csv", newline="", encoding="utf-8", errors="surrogateescape") as handle:
        assert [os.fsencode(row["path"]) for row in csv.DictReader(handle)] == [broken]
    assert main(["data", "pack", str(folder), str(out), "--workers", "1"]) == 0  # the same files: kept
    assert "(packed earlier from the same files: kept)" in capsys.readouterr().out


@pytest.mark.slow
def test_pretraining_over_the_memory_budget_packs_names_that_are_not_utf8(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = with_names_not_utf8(tmp_path / "folder")
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    run = tmp_path / "run"
    args = [
        "pretrain",
        "--dataset",
        "imagefolder",
        "--data-dir",
        str(folder),
        "--memory-budget",
        "1",
        "--out",
        str(run),
    ]
    args += ["--max-steps", "1", "--batch-size", "4", "--image-size", "8", "--knn-every-epochs", "0"]
    args += ["--precision", "32", "--workers", "1", "--quiet"]
    assert main(args) == 0
    log = (run / "train.log").read_text()
    assert "memory budget 1 B: packed once and streamed" in log
    assert "train: 1 file(s) were skipped when packing" in log
    (split,) = (tmp_path / "cache").glob("packed/*/train")
    assert stored_names(split) == [n for n in folder_names(folder) if n != b"b/" + BROKEN_NOT_UTF8]


# -- a cache folder, --pack-dir or OUT that is a file ------------------------------------------------
PRETRAIN_STREAMED = ["pretrain", "--dataset", "imagefolder", "--memory-budget", "1", "--max-steps", "1", "--quiet"]


def test_a_cache_folder_that_is_a_file_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tiny(tmp_path / "folder", 8)
    (tmp_path / "a-file").write_text("mine")
    for cache, where in ((tmp_path / "a-file", "is a file"), (tmp_path / "a-file" / "sub", "lies under the file")):
        monkeypatch.setenv(CACHE_ENV, str(cache))
        run = tmp_path / f"run-{cache.name}"
        assert main([*PRETRAIN_STREAMED, "--data-dir", str(folder), "--out", str(run)]) == 2
        err = one_line_error(capsys)
        assert f"the cache folder {cache} (SIMCLR_CACHE) {where}" in err and "set SIMCLR_CACHE to a folder" in err
    assert (tmp_path / "a-file").read_text() == "mine"


def test_a_pack_dir_that_is_a_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tiny(tmp_path / "folder", 8)
    (tmp_path / "a-file").write_text("mine")
    args = [*PRETRAIN_STREAMED, "--data-dir", str(folder), "--pack-dir", str(tmp_path / "a-file")]
    assert main([*args, "--out", str(tmp_path / "run")]) == 2
    assert f"{tmp_path / 'a-file'} is a file, not a folder; choose another --pack-dir" in one_line_error(capsys)
    assert (tmp_path / "a-file").read_text() == "mine"


@pytest.mark.parametrize("under", [False, True])
def test_data_pack_into_a_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], under: bool) -> None:
    folder = tiny(tmp_path / "folder", 8)
    (tmp_path / "a-file").write_text("mine")
    out = tmp_path / "a-file" / "packed" if under else tmp_path / "a-file"
    assert main(["data", "pack", str(folder), str(out)]) == 2
    err = one_line_error(capsys)
    assert "is a file, not a folder; choose another OUT" in err
    assert (tmp_path / "a-file").read_text() == "mine"
