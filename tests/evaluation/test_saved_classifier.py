"""Classifiers that last: linear-eval and finetune save what they trained, and it reloads to the same predictions."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from simclr.cli import main
from simclr.errors import UserError
from simclr.evaluation.classifiers import saved_classifier as saved_module
from simclr.evaluation.classifiers.inputs import InputPipeline
from simclr.evaluation.classifiers.saved_classifier import load_classifier
from simclr.evaluation.inference.predict import predict_folder

FAST_LINEAR = ["--max-iter", "30", "--l2-grid", "1e-3", "--accelerator", "cpu", "--no-cache"]
FAST_FINETUNE = ["--epochs", "1", "--train-batch-size", "16", "--batch-size", "32", "--accelerator", "cpu"]


def write_two_class_folder(root: Path, per_class: int = 8, size: int = 16, seed: int = 0) -> Path:
    """``root/{train,test}/{dark,bright}/*.png``: noise images separable by brightness."""
    rng = np.random.default_rng(seed)
    for split in ("train", "test"):
        for name, (lo, hi) in (("dark", (0, 70)), ("bright", (185, 256))):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                pixels = rng.integers(lo, hi, (size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    return root


@pytest.fixture
def folder_run(make_run: Any, tmp_path: Path) -> Path:
    data = write_two_class_folder(tmp_path / "data")
    return make_run("imagefolder", data, image_size=16)


@pytest.fixture
def kept(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The in-memory classifiers the evaluation saved, as they were when saved."""
    calls: list[Any] = []
    real = saved_module.save_classifier

    def spy(path: Path, model: Any, metadata: Any, **kwargs: Any) -> Path:
        calls.append((model, metadata))
        return real(path, model, metadata, **kwargs)

    monkeypatch.setattr(saved_module, "save_classifier", spy)
    return calls


def loaded_linears(path: Path) -> list[torch.nn.Linear]:
    model, _ = load_classifier(path)
    return [m for m in model.head.modules() if isinstance(m, torch.nn.Linear)]


def test_bad_head_widths_are_a_one_line_error(folder_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["finetune", str(folder_run), "--head-dims", "8,0"]) == 2
    assert "bad head widths '8,0'" in capsys.readouterr().err


def _same_predictions(model: Any, path: Path) -> None:
    loaded, meta = load_classifier(path)
    pipeline = InputPipeline(meta.image_size, meta.mean, meta.std)
    images = torch.randint(0, 256, (6, 3, meta.decode_size, meta.decode_size), dtype=torch.uint8)
    inputs = pipeline.plain(images)
    model = model.cpu().eval()
    with torch.no_grad():
        assert torch.allclose(loaded(inputs), model(inputs), atol=1e-5, rtol=1e-5)
        assert torch.equal(loaded(inputs).argmax(1), model(inputs).argmax(1))


@pytest.mark.parametrize(
    ("command", "protocol", "includes_backbone"),
    [
        (["linear-eval", *FAST_LINEAR], "linear", False),
        (["finetune", *FAST_FINETUNE], "finetune", True),
        (["finetune", *FAST_FINETUNE, "--head-dims", "8,4"], "finetune", True),
    ],
)
def test_a_saved_classifier_predicts_as_in_memory(
    folder_run: Path, kept: list[Any], command: list[str], protocol: str, includes_backbone: bool
) -> None:
    assert main([command[0], str(folder_run), *command[1:]]) == 0
    path = folder_run / "eval" / protocol / "classifier.safetensors"
    ((model, _),) = kept
    _same_predictions(model, path)
    _, meta = load_classifier(path)
    assert meta.protocol == protocol and meta.class_names == ("bright", "dark")
    assert meta.image_size == meta.decode_size == 16
    assert (meta.backbone_file is None) == includes_backbone
    if "--head-dims" in command:  # the rittik9/SimCLR notebooks' head with explicit widths, rebuilt from the file
        assert meta.head["hidden_dims"] == [8, 4]
        assert [m.out_features for m in loaded_linears(path)] == [8, 4, 2]
    assert not list(path.parent.glob(".*.tmp-*"))  # written atomically, nothing left behind


def test_a_changed_backbone_or_a_damaged_file_is_a_one_line_error(folder_run: Path, kept: list[Any]) -> None:
    assert main(["linear-eval", str(folder_run), *FAST_LINEAR]) == 0
    path = folder_run / "eval" / "linear" / "classifier.safetensors"
    backbone = folder_run / "backbone.safetensors"
    backbone.write_bytes(backbone.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(UserError, match="has changed"):
        load_classifier(path)
    path.write_bytes(b"\x08\0\0\0\0\0\0\0{garbage")
    with pytest.raises(UserError, match="cannot read"):
        load_classifier(path)


# -- simclr predict ---------------------------------------------------------------------------------
def test_predict_a_folder_with_broken_files(
    folder_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["linear-eval", str(folder_run), *FAST_LINEAR]) == 0
    photos = tmp_path / "photos"
    (photos / "nested").mkdir(parents=True)
    rng = np.random.default_rng(3)
    for i, (lo, hi) in enumerate(((0, 40), (215, 256), (0, 40))):
        Image.fromarray(rng.integers(lo, hi, (20, 20, 3), dtype=np.uint8)).save(photos / "nested" / f"{i}.png")
    (photos / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (photos / "empty.png").write_bytes(b"")
    capsys.readouterr()
    out = tmp_path / "preds.csv"
    code = main(["predict", str(folder_run), "--data-dir", str(photos), "--out", str(out), "--top-k", "2"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "classifier: linear" in printed and "predicted 3 images" in printed and "skipped 2 file(s)" in printed
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["path"] for row in rows] == ["nested/0.png", "nested/1.png", "nested/2.png"]
    assert set(rows[0]) == {
        "path",
        "predicted_class",
        "probability",
        "class_1",
        "probability_1",
        "class_2",
        "probability_2",
    }
    for row in rows:
        assert row["predicted_class"] == row["class_1"] and {row["class_1"], row["class_2"]} == {"bright", "dark"}
        assert float(row["probability_1"]) >= float(row["probability_2"])
        assert float(row["probability_1"]) + float(row["probability_2"]) == pytest.approx(1.0, abs=1e-5)
    # the same predictions as the classifier in memory
    model, meta = load_classifier(folder_run / "eval" / "linear" / "classifier.safetensors")
    preds = predict_folder(model, meta, photos, top_k=2, workers=0)
    assert [meta.class_names[i] for i in preds.top_classes[:, 0].tolist()] == [row["predicted_class"] for row in rows]
    assert len(preds.skipped) == 2


def test_predict_parquet_and_the_errors(folder_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = folder_run.parent / "data" / "test"
    out = tmp_path / "preds.parquet"
    assert main(["predict", str(folder_run), "--data-dir", str(data), "--out", str(out)]) == 2
    assert "run 'simclr linear-eval" in capsys.readouterr().err
    assert main(["finetune", str(folder_run), *FAST_FINETUNE]) == 0
    assert main(["predict", str(folder_run), "--data-dir", str(data), "--out", str(out), "--top-k", "3"]) == 2
    assert "--top-k must be in 1..2" in capsys.readouterr().err
    assert main(["predict", str(folder_run), "--data-dir", str(data), "--out", str(out)]) == 0
    pq = pytest.importorskip("pyarrow.parquet")
    table = pq.read_table(out).to_pydict()
    assert len(table["path"]) == 16 and set(table["folder_class"]) == {"bright", "dark"}
    assert main(["predict", str(folder_run), "--data-dir", str(data), "--out", str(out)]) == 2  # no overwrite
