"""Hostile ``simclr embed`` requests (issue 14): --out naming a folder, file names that are not UTF-8, and a
write that fails half-way. One line and exit code 2, or escaped names; never a temporary file left behind."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from simclr.cli import main
from simclr.errors import UserError
from simclr.evaluation.inference import embed
from simclr.evaluation.inference.embed import EmbeddingOrigin, Embeddings, write_embeddings


def jpeg_bytes(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def write_bytes_path(path: bytes, data: bytes) -> None:
    """Create a file whose name is raw bytes (not necessarily UTF-8), as another program could."""
    handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(handle, data)
    finally:
        os.close(handle)


@pytest.fixture
def hostile_folder(tmp_path: Path) -> Path:
    """Two classes, ``cat`` and a folder named ``dog\\xfe``, each holding a file named ``bad\\xff.jpg``."""
    folder = tmp_path / "images"
    (folder / "cat").mkdir(parents=True)
    (folder / "cat" / "good.jpg").write_bytes(jpeg_bytes((10, 10, 200)))
    write_bytes_path(os.fsencode(folder / "cat") + b"/bad\xff.jpg", jpeg_bytes((200, 10, 10)))
    dog = os.fsencode(folder) + b"/dog\xfe"
    os.mkdir(dog)
    write_bytes_path(dog + b"/bad\xff.jpg", jpeg_bytes((10, 200, 10)))
    return folder


def leftovers(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder) if ".tmp" in name)


@pytest.mark.parametrize("out_name, folder_name", [("emb.npz", "emb.npz"), ("emb.npy", "emb.npy.index.csv")])
def test_out_that_is_a_folder_is_refused_before_any_work(
    make_run, hostile_folder: Path, tmp_path: Path, capsys, monkeypatch, out_name: str, folder_name: str
) -> None:
    run = make_run("cifar10", None)
    (tmp_path / folder_name).mkdir()
    (tmp_path / folder_name / "keep.txt").write_text("precious")
    monkeypatch.setattr(embed, "embed_folder", lambda *a, **k: pytest.fail("embedded before checking --out"))
    argv = ["embed", str(run), "--data-dir", str(hostile_folder), "--out", str(tmp_path / out_name), "--overwrite"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("simclr: error: ") and "\n" not in err and "Traceback" not in err
    assert f"cannot write {tmp_path / folder_name}: it is a folder" in err and "choose another --out" in err
    assert (tmp_path / folder_name / "keep.txt").read_text() == "precious"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("suffix", [".npy", ".parquet", ".npz"])
def test_names_that_are_not_utf8_are_written_escaped(
    make_run, hostile_folder: Path, tmp_path: Path, suffix: str
) -> None:
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    run = make_run("cifar10", None)
    out = tmp_path / f"emb{suffix}"
    assert main(["embed", str(run), "--data-dir", str(hostile_folder), "--out", str(out), "--workers", "0"]) == 0
    expected_files = ["cat/bad\\xff.jpg", "cat/good.jpg", "dog\\xfe/bad\\xff.jpg"]
    if suffix == ".npy":
        with (tmp_path / "emb.npy.index.csv").open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        names, classes = [row["file_name"] for row in rows], [row["class_name"] for row in rows]
    elif suffix == ".npz":
        data = np.load(out)
        names, classes = [str(n) for n in data["file_names"]], [str(data["class_names"][i]) for i in data["labels"]]
    else:
        import pyarrow.parquet as pq

        table = pq.read_table(out).to_pydict()
        names, classes = table["file_name"], table["class_name"]
    assert sorted(names) == expected_files
    assert sorted(classes) == ["cat", "cat", "dog\\xfe"]
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".parquet", ".csv"])
def test_a_failed_write_leaves_no_temporary_file(tmp_path: Path, monkeypatch, suffix: str) -> None:
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    emb = Embeddings(
        vectors=np.zeros((2, 4), dtype=np.float32),
        file_names=["a.jpg", "b\udcff.jpg"],
        labels=np.array([0, -1]),
        class_names=["cat"],
        skipped=[],
        origin=EmbeddingOrigin(tmp_path, "backbone", tmp_path, "0" * 64, 32, (0.5,) * 3, (0.25,) * 3),
    )

    def full_disk(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    no_room = r"^the disk is full: \S+/emb\.\w+ could not be written \(.*\); .*free space on \S+, or choose another"
    with pytest.raises(UserError, match=no_room):
        write_embeddings(emb, tmp_path / f"emb{suffix}", "lightly-csv" if suffix == ".csv" else None)
    assert os.listdir(tmp_path) == []
