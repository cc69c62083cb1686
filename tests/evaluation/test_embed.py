"""simclr embed: rows match files, every format round-trips, projection uses the trained head."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from simclr.cli import main
from simclr.config import build_config
from simclr.models.heads import build_head
from simclr.settings import read_yaml


def test_npz_rows_match_their_files_and_skips_are_reported(
    make_run, small_folder: Path, tmp_path: Path, capsys
) -> None:
    run = make_run("cifar10", None)
    out = tmp_path / "emb.npz"
    assert main(["embed", str(run), "--data-dir", str(small_folder), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    printed = captured.out
    assert "embedded 20 images (512-d backbone output)" in printed and "skipped 1 file(s)" in printed
    assert captured.err.strip().splitlines()[-1] == "embed images: 21/21"  # progress on stderr, not stdout
    data = np.load(out)
    assert data["embeddings"].shape == (20, 512)
    assert list(data["class_names"]) == ["cat", "ship"]
    assert np.bincount(data["labels"]).tolist() == [10, 10]
    # row i is the embedding of file_names[i]: embed that one file alone and compare
    name = str(data["file_names"][13])
    single = tmp_path / "single" / Path(name).parent
    single.mkdir(parents=True)
    shutil.copyfile(small_folder / name, single / Path(name).name)
    out_single = tmp_path / "one.npz"
    assert main(["embed", str(run), "--data-dir", str(tmp_path / "single"), "--out", str(out_single)]) == 0
    np.testing.assert_allclose(np.load(out_single)["embeddings"][0], data["embeddings"][13], rtol=0.05, atol=0.05)


def test_parquet_and_npy_formats(make_run, small_folder: Path, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    run = make_run("cifar10", None)
    assert main(["embed", str(run), "--data-dir", str(small_folder), "--out", str(tmp_path / "e.parquet")]) == 0
    table = pq.read_table(tmp_path / "e.parquet").to_pydict()
    assert len(table["file_name"]) == 20 and len(table["embedding"][0]) == 512
    assert set(table["class_name"]) == {"cat", "ship"}
    assert main(["embed", str(run), "--data-dir", str(small_folder), "--out", str(tmp_path / "e.npy")]) == 0
    matrix = np.load(tmp_path / "e.npy")
    with (tmp_path / "e.npy.index.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert matrix.shape == (20, 512) and len(rows) == 20
    assert rows[0]["file_name"].startswith("cat/") and rows[0]["class_name"] == "cat"


def test_projection_layer_uses_the_checkpointed_head(make_run, small_folder: Path, tmp_path: Path) -> None:
    run = make_run("cifar10", None)
    config = build_config(read_yaml(run / "config.yaml"), {})
    torch.manual_seed(5)
    head, _ = build_head(
        config.head,
        512,
        out_dim=config.head_out_dim,
        hidden_dim=config.head_hidden_dim,
        num_layers=config.head_layers,
        batch_norm=config.head_batch_norm,
    )
    (run / "checkpoints").mkdir()
    torch.save(
        {"state_dict": {f"model.head.{k}": v for k, v in head.state_dict().items()}}, run / "checkpoints" / "last.ckpt"
    )
    assert main(["embed", str(run), "--data-dir", str(small_folder), "--out", str(tmp_path / "b.npz")]) == 0
    assert (
        main(
            [
                "embed",
                str(run),
                "--data-dir",
                str(small_folder),
                "--out",
                str(tmp_path / "p.npz"),
                "--layer",
                "projection",
            ]
        )
        == 0
    )
    backbone = torch.from_numpy(np.load(tmp_path / "b.npz")["embeddings"])
    projected = np.load(tmp_path / "p.npz")["embeddings"]
    assert projected.shape == (20, 128)
    with torch.no_grad():
        np.testing.assert_allclose(projected, head.eval()(backbone).numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "out_name, extra, message",
    [
        ("exists.npz", [], "already exists; pass --overwrite"),
        ("emb.txt", [], "unknown format .txt"),
        ("nodir/emb.npz", [], "does not exist; create it first"),
        ("emb.npz", ["--layer", "projection"], "use --layer backbone"),
    ],
)
def test_bad_requests_exit_2_and_keep_existing_files(
    make_run, small_folder: Path, tmp_path: Path, capsys, out_name, extra, message
) -> None:
    run = make_run("cifar10", None)
    (tmp_path / "exists.npz").write_bytes(b"precious")
    assert main(["embed", str(run), "--data-dir", str(small_folder), "--out", str(tmp_path / out_name), *extra]) == 2
    assert message in capsys.readouterr().err
    assert (tmp_path / "exists.npz").read_bytes() == b"precious"
    assert not (tmp_path / "emb.npz").exists()


def test_a_folder_embedded_piece_by_piece_equals_one_piece(make_run, small_folder: Path) -> None:
    """A folder bigger than memory is read a few files at a time; the rows, names, labels and the broken file's
    report are those of reading it whole (the broken file falls in a middle piece here)."""
    from simclr.evaluation.inference.embed import embed_folder
    from simclr.evaluation.loading import resolve_run

    ref = resolve_run(make_run("cifar10", None))
    whole = embed_folder(ref, small_folder, workers=0)
    told: list[tuple[int, int]] = []
    pieces = embed_folder(ref, small_folder, workers=0, chunk=3, advance=lambda done, total: told.append((done, total)))
    # progress after every piece, counting the broken file among those read: 21 files, 3 at a time
    assert told == [(done, 21) for done in (3, 6, 9, 12, 15, 18, 21)]
    assert pieces.file_names == whole.file_names and len(whole.file_names) == 20
    assert pieces.labels.tolist() == whole.labels.tolist()
    assert [name for name, _ in pieces.skipped] == [name for name, _ in whole.skipped] == ["cat/broken.jpg"]
    # the same backbone in the same precision on the same images; batches differ in size, so allow rounding
    np.testing.assert_allclose(pieces.vectors, whole.vectors, rtol=0.05, atol=0.05)
