"""simclr embed outputs that travel (issue 18): the .npz and .parquet say where they came from, lightly's
embeddings CSV, absolute paths, and file names that a CSV could mangle."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import simclr
from simclr.cli import main

FORMAT_FLAGS = {".npy": [], ".npz": [], ".parquet": [], ".csv": ["--format", "lightly-csv"]}


def embed(run: Path, folder: Path, out: Path, *extra: str) -> None:
    argv = ["embed", str(run), "--data-dir", str(folder), "--out", str(out), "--workers", "0"]
    assert main([*argv, *FORMAT_FLAGS[out.suffix], *extra]) == 0


def read_lightly_csv(path: Path) -> tuple[list[str], np.ndarray, list[int], list[str]]:
    """Read as lightly's ``lightly.utils.io.load_embeddings`` does: csv.reader, name first, label last."""
    with path.open(newline="", encoding="utf-8") as handle:
        header, *rows = list(csv.reader(handle))
    names = [row[0] for row in rows]
    vectors = np.array([row[1:-1] for row in rows], dtype=np.float64)
    return names, vectors, [int(row[-1]) for row in rows], header


def names_in(out: Path) -> list[str]:
    if out.suffix == ".npz":
        return [str(name) for name in np.load(out)["file_names"]]
    if out.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(out).to_pydict()["file_name"]
    if out.suffix == ".npy":
        with out.with_name(out.name + ".index.csv").open(newline="", encoding="utf-8") as handle:
            return [row["file_name"] for row in csv.DictReader(handle)]
    return read_lightly_csv(out)[0]


def test_npz_and_parquet_carry_the_same_metadata(make_run, small_folder: Path, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    run = make_run("cifar10", None)
    embed(run, small_folder, tmp_path / "e.npz")
    embed(run, small_folder, tmp_path / "e.parquet")
    with np.load(tmp_path / "e.npz", allow_pickle=False) as data:  # no pickled objects: safe to load from anyone
        assert data["metadata"].shape == ()
        meta = json.loads(data["metadata"].item())
    assert meta == {
        "simclr_version": simclr.__version__,
        "data_dir": str(small_folder.resolve()),
        "paths": "relative to data_dir",
        "layer": "backbone",
        "run_dir": str(run.resolve()),
        "backbone_sha256": hashlib.sha256((run / "backbone.safetensors").read_bytes()).hexdigest(),
        "image_size": 32,
        "mean": pytest.approx([0.4914, 0.4822, 0.4465]),
        "std": pytest.approx([0.2470, 0.2435, 0.2616]),
        "skipped_files": 1,
    }
    assert json.loads(pq.read_schema(tmp_path / "e.parquet").metadata[b"simclr"]) == meta


def test_parquet_embedding_is_a_fixed_size_float_list_holding_the_npz_vectors(
    make_run, small_folder: Path, tmp_path: Path
) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    run = make_run("cifar10", None)
    embed(run, small_folder, tmp_path / "e.npz")
    embed(run, small_folder, tmp_path / "e.parquet")
    # the type vector stores and Arrow's tensor tools take as a (N, 512) matrix
    assert pq.read_schema(tmp_path / "e.parquet").field("embedding").type == pa.list_(pa.float32(), 512)
    column = pq.read_table(tmp_path / "e.parquet").column("embedding").combine_chunks()
    matrix = column.flatten().to_numpy().reshape(len(column), 512)
    data = np.load(tmp_path / "e.npz")
    assert matrix.shape == (20, 512)
    np.testing.assert_array_equal(matrix, data["embeddings"])


def test_lightly_csv_holds_the_npz_rows(make_run, small_folder: Path, tmp_path: Path) -> None:
    run = make_run("cifar10", None)
    embed(run, small_folder, tmp_path / "e.npz")
    embed(run, small_folder, tmp_path / "e.csv")
    names, vectors, labels, header = read_lightly_csv(tmp_path / "e.csv")
    assert header == ["filenames", *(f"embedding_{i}" for i in range(512)), "labels"]
    data = np.load(tmp_path / "e.npz")
    assert names == [str(name) for name in data["file_names"]] and len(names) == 20
    assert labels == data["labels"].tolist() and sorted(set(labels)) == [0, 1]
    # float32 written in its shortest round-tripping form: the very same vectors come back
    np.testing.assert_array_equal(vectors.astype(np.float32), data["embeddings"])


@pytest.mark.parametrize("suffix", list(FORMAT_FLAGS))
def test_absolute_paths_name_the_files_themselves(make_run, small_folder: Path, tmp_path: Path, suffix: str) -> None:
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    run = make_run("cifar10", None)
    relative = tmp_path / f"rel{suffix}"
    absolute = tmp_path / f"abs{suffix}"
    embed(run, small_folder, relative)
    embed(run, small_folder, absolute, "--absolute-paths")
    expected = [str(small_folder.resolve() / name) for name in names_in(relative)]
    assert names_in(absolute) == expected and all(Path(name).is_file() for name in expected)
    if suffix == ".npz":
        assert json.loads(np.load(absolute)["metadata"].item())["paths"] == "absolute"


def test_names_a_csv_could_break_come_back_whole(make_run, tmp_path: Path) -> None:
    """Commas, quotes and line breaks in file names are quoted, and lightly's reader gets each name back; a folder
    without classes is labelled 0, as lightly labels one."""
    folder = tmp_path / "flat"
    folder.mkdir()
    hostile = ["a,b.jpg", 'say "hi".jpg', "two\nlines.jpg", "cr\rname.jpg", "plain.jpg"]
    for number, name in enumerate(hostile):
        Image.new("RGB", (32, 32), (40 * number, 90, 200)).save(folder / name, format="JPEG")
    run = make_run("cifar10", None)
    embed(run, folder, tmp_path / "e.csv")
    embed(run, folder, tmp_path / "e.npz")
    names, vectors, labels, _ = read_lightly_csv(tmp_path / "e.csv")
    assert sorted(names) == sorted(hostile) and labels == [0] * len(hostile)
    data = np.load(tmp_path / "e.npz")
    assert names == [str(name) for name in data["file_names"]] and data["labels"].tolist() == [-1] * len(hostile)
    np.testing.assert_array_equal(vectors.astype(np.float32), data["embeddings"])


@pytest.mark.parametrize(
    "out_name, extra, message",
    [
        ("e.csv", [], "pass --format lightly-csv"),
        ("e.npz", ["--format", "lightly-csv"], "--format lightly-csv writes a .csv file"),
        ("e.csv", ["--format", "tsv"], "unknown format 'tsv'; use one of npy, npz, parquet, lightly-csv"),
    ],
)
def test_format_mistakes_are_one_line(
    make_run, small_folder: Path, tmp_path: Path, capsys, out_name: str, extra: list[str], message: str
) -> None:
    run = make_run("cifar10", None)
    assert main(["embed", str(run), "--data-dir", str(small_folder), "--out", str(tmp_path / out_name), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("simclr: error: ") and "\n" not in err and message in err
    assert not (tmp_path / out_name).exists()
