"""Packs that are complete or refused: file names that are not UTF-8 are packed (or skipped and listed), a cache
folder, ``--pack-dir`` or OUT that is a file is one line, a resumed pack whose source changed never mixes its old
and new files, a chunk whose size is not what the index says is refused before streaming, and a pack being
written is waited for by its readers."""

from __future__ import annotations

import csv
import logging
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from litdata import StreamingDataset
from PIL import Image

from simclr.cli import main
from simclr.data.cache_folder import CACHE_ENV
from simclr.data.pack_format import PACK_LOCK
from simclr.data.source import DataSource
from simclr.data.streaming import DamagedSplit, PackedSplit
from simclr.errors import UserError

from .test_pack_at_scale import PACK_COMMAND, photos, tiny, wait_for

NOT_UTF8 = b"\xff\xfe.png"  # a name Linux allows and UTF-8 cannot decode
BROKEN_NOT_UTF8 = b"\xfa\xfb broken.png"


def with_names_not_utf8(root: Path) -> Path:
    """A folder of 8 images plus one decodable and one broken image whose names are not UTF-8."""
    tiny(root, 8)
    with open(os.fsencode(root / "a") + b"/" + NOT_UTF8, "wb") as handle:
        Image.fromarray(np.full((8, 8, 3), 200, dtype=np.uint8)).save(handle, format="PNG")
    with open(os.fsencode(root / "b") + b"/" + BROKEN_NOT_UTF8, "wb") as handle:
        handle.write(b"not an image")
    return root


def stored_names(split_dir: Path) -> list[bytes]:
    """The names stored in a packed split, as bytes."""
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


# -- a resumed pack whose source changed ------------------------------------------------------------
def start_pack(folder: Path, out: Path) -> subprocess.Popen[str]:
    """``simclr data pack FOLDER OUT`` in a process group of its own, in parts of 4 images."""
    args = ["data", "pack", str(folder), str(out), "--workers", "1"]
    return subprocess.Popen(
        [sys.executable, "-c", PACK_COMMAND, *args],
        env=dict(os.environ, OMP_NUM_THREADS="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def text_names(split_dir: Path) -> list[str]:
    return sorted(os.fsdecode(name) for name in stored_names(split_dir))


def jpg_names(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.jpg"))


def test_a_stopped_pack_whose_folder_changed_is_refused_and_never_mixes_old_and_new_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = photos(tmp_path / "photos", 48)
    out = tmp_path / "packed"
    proc = start_pack(folder, out)
    try:
        wait_for(lambda: list((out / "train" / ".parts").glob("[0-9]*.json")), "a finished part", proc)
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=60) == 143
    finally:
        proc.kill()
        proc.wait()
    shutil.copy(folder / "cats" / "000.jpg", folder / "dogs" / "new.jpg")  # added
    (folder / "cats" / "002.jpg").unlink()  # deleted
    (folder / "dogs" / "001.jpg").rename(folder / "dogs" / "renamed.jpg")  # renamed
    before = sorted((p.relative_to(out).as_posix(), p.stat().st_mtime_ns) for p in out.rglob("*"))
    capsys.readouterr()
    assert main(["data", "pack", str(folder), str(out), "--workers", "1"]) == 2
    err = one_line_error(capsys)
    assert f"{out / 'train'} holds an unfinished pack of {folder}, not what {folder} holds now" in err
    assert "choose another OUT, or delete" in err
    assert sorted((p.relative_to(out).as_posix(), p.stat().st_mtime_ns) for p in out.rglob("*")) == before
    # the fix it names: the pack holds exactly the folder's files now
    assert main(["data", "pack", str(folder), str(tmp_path / "new-out"), "--workers", "1"]) == 0
    assert text_names(tmp_path / "new-out" / "train") == jpg_names(folder)
    shutil.rmtree(out)
    assert main(["data", "pack", str(folder), str(out), "--workers", "1"]) == 0
    assert text_names(out / "train") == jpg_names(folder)


# -- chunks: their sizes checked when a split is opened, their bytes as they are read -------------------
def packed_tiny(tmp_path: Path) -> tuple[Path, Path]:
    folder = tiny(tmp_path / "folder", 12)
    out = tmp_path / "packed"
    assert main(["data", "pack", str(folder), str(out), "--workers", "1"]) == 0
    return folder, out


def test_a_truncated_chunk_is_refused_when_its_split_is_opened_and_packed_again_by_data_pack(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    folder, out = packed_tiny(tmp_path)
    (chunk,) = (out / "train").glob("chunk-*.bin")
    size = chunk.stat().st_size
    chunk.write_bytes(chunk.read_bytes()[: size - 100])  # as a crash, a second writer or a bad copy leaves it
    with pytest.raises(UserError) as refused:
        PackedSplit(out / "train")
    message = str(refused.value)
    assert f"packed split {out / 'train'} is damaged: chunk {chunk.name} is {size - 100} bytes" in message
    assert f"its index.json says {size}" in message and "pack it again with 'simclr data pack'" in message
    capsys.readouterr()
    run = ["pretrain", "--dataset", "packed", "--data-dir", str(out), "--out", str(tmp_path / "run"), "--quiet"]
    assert main(run) == 2
    assert f"chunk {chunk.name} is {size - 100} bytes" in one_line_error(capsys)
    chunk.unlink()
    with pytest.raises(UserError, match=f"chunk {chunk.name} is missing"):
        PackedSplit(out / "train")

    with caplog.at_level(logging.WARNING, logger="simclr"):
        assert main(["data", "pack", str(folder), str(out), "--workers", "1"]) == 0  # the same files: made again
    assert f"{out / 'train'} is damaged (chunk {chunk.name} is missing): packing it again" in caplog.text
    assert PackedSplit(out / "train").info.images == 12
    assert stored_names(out / "train") == folder_names(folder)


def test_a_damaged_automatic_pack_is_packed_again(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tiny(tmp_path / "folder", 12)
    pack_dir = tmp_path / "pack-dir"
    source = DataSource("imagefolder", folder, workers=1)
    assert source.streamed(None, memory_budget=1, pack_dir=pack_dir) is not None
    (chunk,) = (pack_dir / "train").glob("chunk-*.bin")
    chunk.write_bytes(chunk.read_bytes()[:-1])
    with caplog.at_level(logging.INFO, logger="simclr"):
        again = source.streamed(None, memory_budget=1, pack_dir=pack_dir)
    assert "packed earlier from the same files" not in caplog.text
    assert f"{pack_dir / 'train'} is damaged (chunk {chunk.name} is" in caplog.text
    assert again is not None and again.train.info.images == 12
    assert stored_names(pack_dir / "train") == folder_names(folder)


def test_a_chunk_damaged_inside_stops_streaming_in_one_line_naming_the_split(tmp_path: Path) -> None:
    _, out = packed_tiny(tmp_path)
    (chunk,) = (out / "train").glob("chunk-*.bin")
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 400] = bytes(400)  # the size its index says, the bytes wrong
    chunk.write_bytes(bytes(data))
    split = PackedSplit(out / "train")  # the sizes are right: opened
    with pytest.raises(DamagedSplit) as damaged:
        split.images_at(8, workers=1).load()  # read in a loader worker, raised again here
    message = str(damaged.value)
    assert "\n" not in message and "Traceback" not in message
    assert message.startswith(f"packed split {out / 'train'}: sample ")
    assert "its chunk is damaged; pack the split again with 'simclr data pack'" in message
    # its loader worker has ended: one left alive (it ignores SIGTERM) would hang this process's exit
    assert multiprocessing.active_children() == []


# -- two processes on one pack -----------------------------------------------------------------------
def test_two_data_packs_into_one_out_pack_it_once_and_completely(tmp_path: Path) -> None:
    folder = photos(tmp_path / "photos", 96)
    out = tmp_path / "packed"
    first = start_pack(folder, out)
    second = None
    try:
        wait_for(lambda: (out / PACK_LOCK).exists(), "its lock", first)
        os.killpg(first.pid, signal.SIGSTOP)  # paused holding the lock, so the second surely finds it held
        with open(tmp_path / "second.err", "w") as err:
            second = subprocess.Popen(
                [sys.executable, "-c", PACK_COMMAND, "data", "pack", str(folder), str(out), "--workers", "1"],
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                start_new_session=True,
            )
        waiting = f"waiting for process {first.pid} on "
        wait_for(lambda: waiting in (tmp_path / "second.err").read_text(), "the second to wait", second)
        os.killpg(first.pid, signal.SIGCONT)
        first_out, first_err = first.communicate(timeout=120)
        second_out, _ = second.communicate(timeout=120)
    finally:
        for proc in (first, second):
            if proc is not None:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGCONT)
                proc.kill()
                proc.wait()
    assert first.returncode == 0 and second.returncode == 0, first_err + (tmp_path / "second.err").read_text()
    assert "96 images, 2 classes, 0 skipped" in first_out and "kept" not in first_out  # the first packed it
    assert "(packed earlier from the same files: kept)" in second_out  # the second found it made
    assert text_names(out / "train") == jpg_names(folder)
    assert not (out / PACK_LOCK).exists()


def test_reading_a_pack_while_data_pack_writes_it_waits_for_the_packer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = photos(tmp_path / "photos", 96)
    out = tmp_path / "packed"
    packer = start_pack(folder, out)
    try:
        wait_for(lambda: (out / PACK_LOCK).exists(), "its lock", packer)
        os.killpg(packer.pid, signal.SIGSTOP)  # paused mid-pack: the reader surely finds it packing
        threading.Timer(2.0, os.killpg, (packer.pid, signal.SIGCONT)).start()
        with caplog.at_level(logging.INFO, logger="simclr"):
            streamed = DataSource("packed", out, workers=1).streamed(None, memory_budget=1)
        assert packer.wait(timeout=120) == 0
    finally:
        packer.kill()
        packer.wait()
    assert f"waiting for process {packer.pid} on " in caplog.text and f"to finish packing {out}" in caplog.text
    assert streamed is not None and streamed.train.info.images == 96
    assert text_names(Path(streamed.train.path)) == jpg_names(folder)
