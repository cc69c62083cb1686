"""The plot functions write real, non-blank PNGs and tolerate the data a real run produces."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from simclr.errors import UserError
from simclr.reports import plots
from simclr.reports.plots import (
    MissingMapPackage,
    plot_confusion_matrix,
    plot_embedding_map,
    plot_training_curves,
    plot_view_grid,
)

from .conftest import write_metrics_csv


def png_size(path: Path, min_side: int = 150, min_ink: float = 0.01) -> tuple[int, int]:
    """Assert ``path`` is a decodable PNG with drawn content; return its (width, height)."""
    assert path.is_file()
    with Image.open(path) as image:
        assert image.format == "PNG"
        pixels = np.asarray(image.convert("RGB"), dtype=float)
    height, width = pixels.shape[:2]
    assert min(width, height) >= min_side
    assert pixels.std() > 10, "image is a flat colour"
    assert (pixels.min(axis=2) < 200).mean() > min_ink, "almost nothing drawn"
    assert not list(path.parent.glob(".*.tmp")), "temporary file left behind"
    return width, height


def test_training_curves_tolerate_empty_cells_and_partial_rows(tmp_path: Path) -> None:
    csv_path = write_metrics_csv(tmp_path / "metrics.csv", steps=30)
    with csv_path.open("a") as handle:
        handle.write("31,5\n")  # a row cut short by a killed run
        handle.write("32,5,nan,,x,\n")  # NaN and garbage cells
        handle.write("not-a-step,0,1.0,0.1,,\n")
    with_knn = png_size(plot_training_curves(csv_path, tmp_path / "with_knn.png"))  # type: ignore[arg-type]
    no_knn_csv = write_metrics_csv(tmp_path / "no_knn.csv", steps=30, knn=False)
    without_knn = png_size(plot_training_curves(no_knn_csv, tmp_path / "without_knn.png"))  # type: ignore[arg-type]
    # The kNN panel is drawn only when the run logged kNN accuracy.
    assert with_knn[0] > without_knn[0] * 1.3
    assert with_knn[1] == without_knn[1]


def test_training_curves_smooth_long_runs(tmp_path: Path) -> None:
    out = plot_training_curves(write_metrics_csv(tmp_path / "metrics.csv", steps=400), tmp_path / "long.png")
    assert out is not None
    png_size(out)


@pytest.mark.parametrize(
    "content",
    [
        None,
        "",
        "step,epoch,train_loss,lr,img_per_s,knn_top1\n",
        "step,epoch,train_loss,lr,img_per_s,knn_top1\n3,0,,,,\n",
    ],
)
def test_training_curves_none_without_data(tmp_path: Path, content: str | None) -> None:
    csv_path = tmp_path / "metrics.csv"
    if content is not None:
        csv_path.write_text(content)
    assert plot_training_curves(csv_path, tmp_path / "out.png") is None
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("num_classes", [10, 100])
def test_confusion_matrix(tmp_path: Path, num_classes: int) -> None:
    rng = np.random.default_rng(num_classes)
    matrix = rng.integers(0, 5, (num_classes, num_classes)) + 40 * np.eye(num_classes, dtype=int)
    names = [f"class-{i}" for i in range(num_classes)]
    width, height = png_size(plot_confusion_matrix(matrix.tolist(), names, tmp_path / plots.CONFUSION_MATRIX))
    # 100 classes get a larger canvas so every row keeps its tick label.
    assert min(width, height) >= (1500 if num_classes == 100 else 500)


def test_confusion_matrix_rejects_mismatched_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="3 class names"):
        plot_confusion_matrix(np.eye(4, dtype=int), ["a", "b", "c"], tmp_path / "cm.png")


def clustered(n_per_class: int = 20, classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(classes), n_per_class)
    return rng.normal(size=(len(labels), 24)) + 4 * labels[:, None], labels


def test_embedding_map_by_class_is_reproducible(tmp_path: Path) -> None:
    features, labels = clustered()
    first = plot_embedding_map(
        torch.tensor(features),
        tmp_path / "a.png",
        labels=torch.tensor(labels),
        class_names=["cat", "dog", "ship"],
        max_points=45,
        seed=3,
    )
    second = plot_embedding_map(
        features, tmp_path / "b.png", labels=labels, class_names=["cat", "dog", "ship"], max_points=45, seed=3
    )
    png_size(first)
    assert first.read_bytes() == second.read_bytes()


def test_embedding_map_by_continuous_value(tmp_path: Path) -> None:
    features, _ = clustered()
    values = features[:, 0]
    png_size(plot_embedding_map(features, tmp_path / plots.EMBEDDING_TSNE, values=values, value_name="m"))
    with pytest.raises(ValueError, match="values"):
        plot_embedding_map(features, tmp_path / "bad.png", values=values[:10])


def test_subsample_is_stratified_and_seeded() -> None:
    labels = np.array([0] * 900 + [1] * 90 + [2] * 10)
    picked = plots._subsample(len(labels), 100, labels, seed=1)
    assert len(picked) <= 100 and len(set(picked.tolist())) == len(picked)
    counts = np.bincount(labels[picked], minlength=3)
    assert counts[2] >= 1 and counts[1] >= 8 and counts[0] >= 85
    assert np.array_equal(picked, plots._subsample(len(labels), 100, labels, seed=1))
    assert not np.array_equal(picked, plots._subsample(len(labels), 100, labels, seed=2))


@pytest.mark.slow
def test_embedding_map_umap(tmp_path: Path) -> None:
    features, labels = clustered()
    png_size(plot_embedding_map(features, tmp_path / plots.EMBEDDING_UMAP, labels=labels, method="umap"))


def test_embedding_map_unknown_method(tmp_path: Path) -> None:
    features, _ = clustered()
    with pytest.raises(UserError, match="tsne, umap"):
        plot_embedding_map(features, tmp_path / "x.png", method="pca")
    assert not (tmp_path / "x.png").exists()


def test_embedding_map_umap_missing_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "umap", None)  # import umap now raises ImportError
    features, _ = clustered()
    with pytest.raises(MissingMapPackage, match=r"pip install 'simclr-kit\[umap\]'"):
        plot_embedding_map(features, tmp_path / "x.png", method="umap")


def test_view_grid(tmp_path: Path) -> None:
    originals = torch.randint(0, 256, (10, 3, 32, 32), dtype=torch.uint8)
    views = [torch.rand(10, 3, 24, 24) for _ in range(2)]
    two_views = png_size(plot_view_grid(originals, views, tmp_path / plots.AUGMENTED_VIEWS, max_images=4))
    one_view = png_size(plot_view_grid(originals[:2], [views[0][:2]], tmp_path / "small.png"), min_side=100)
    assert two_views[0] > one_view[0] * 1.3  # a column per view
    assert two_views[1] > one_view[1] * 1.5  # a row per image, capped by max_images (4 vs 2)
    with pytest.raises(ValueError, match="view 1"):
        plot_view_grid(originals, [torch.rand(3, 3, 24, 24)], tmp_path / "bad.png")


def _neighbour_agreement(coords: np.ndarray, labels: np.ndarray, k: int = 5) -> float:
    """Share of each point's k nearest map neighbours that have its label."""
    distances = ((coords[:, None, :] - coords[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(distances, np.inf)
    nearest = np.argsort(distances, axis=1)[:, :k]
    return float((labels[nearest] == labels[:, None]).mean())


@pytest.mark.slow
def test_supervised_umap_separates_classes_that_the_features_do_not() -> None:
    rng = np.random.default_rng(0)
    features, labels = rng.normal(size=(150, 16)), np.repeat(np.arange(3), 50)  # no class structure at all
    plain = plots._project(features, "umap", seed=0, neighbors=10)
    guided = plots._project(features, "umap", seed=0, neighbors=10, targets=labels)
    assert _neighbour_agreement(plain, labels) < 0.6 < 0.9 < _neighbour_agreement(guided, labels)


def test_map_options_are_checked(tmp_path: Path) -> None:
    features, labels = clustered()
    with pytest.raises(UserError, match="--supervised-map needs --method umap"):
        plot_embedding_map(features, tmp_path / "x.png", labels=labels, supervised=True)
    with pytest.raises(UserError, match="--perplexity 5000"):
        plot_embedding_map(features, tmp_path / "x.png", labels=labels, perplexity=5000)
    assert not (tmp_path / "x.png").exists()
    png_size(plot_embedding_map(features, tmp_path / "p.png", labels=labels, perplexity=5))
