"""The pictures of a run, as PNG files: training curves, confusion matrix, embedding map, augmented views.

Each function draws one figure, writes it atomically (temporary file + rename, so a report never inlines
a half-written PNG) and returns its path. They take plain arrays and paths, not run objects, so
``simclr evaluate`` decides what to draw and these functions only draw it.

Figures are rendered with matplotlib's Agg canvas on a :class:`matplotlib.figure.Figure` built directly,
never through ``pyplot``: no display is needed, no global backend is switched under a user's notebook,
and no figure is left open in pyplot's registry. matplotlib is a core dependency; the embedding maps' packages
are extras (scikit-learn for t-SNE: ``viz``; umap-learn: ``umap``), and a missing one raises
:class:`MissingMapPackage`, which names the extra. All are imported when a plot is drawn, so the file-name
constants import without them.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from simclr.errors import UserError
from simclr.figures import new_figure, save_figure

TRAINING_CURVES = "training_curves.png"
CONFUSION_MATRIX = "confusion_matrix.png"  # the linear probe's
CONFUSION_MATRIX_OF = "confusion_matrix_{method}.png"  # every other classifier protocol's (knn, finetune, ...)


def confusion_matrix_file(key: str) -> str:
    """The plot file of a protocol's confusion matrix (the linear probe keeps the name it always had)."""
    return CONFUSION_MATRIX if key == "linear" else CONFUSION_MATRIX_OF.format(method=key)


EMBEDDING_TSNE = "embedding_tsne.png"
EMBEDDING_UMAP = "embedding_umap.png"
AUGMENTED_VIEWS = "augmented_views.png"
EMBEDDING_METHODS = ("tsne", "umap")
EMBEDDING_FILES = {"tsne": EMBEDDING_TSNE, "umap": EMBEDDING_UMAP}
LABEL_EFFICIENCY = "label_efficiency.png"
LEARNING_CURVES = "{method}_curves.png"  # fine-tuning, supervised and SGD linear training, per epoch
ROBUSTNESS = "robustness.png"

_ANNOTATE_MAX_CLASSES = 20
_LEGEND_MAX_CLASSES = 20


class MissingMapPackage(UserError):
    """The package an embedding map needs is not installed; the message names the extra that adds it. Only the
    map is missing, so ``simclr evaluate`` leaves it out with this message as its note rather than failing after
    its numbers are written."""


def _as_array(values: Any, dtype: Any = None) -> np.ndarray:
    """numpy view of a numpy array, list or (possibly CUDA, possibly grad-tracking) torch tensor."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=dtype)


# ---------------------------------------------------------------------------------------------------
# Training curves


def _number(cell: str | None) -> float | None:
    """A CSV cell as a finite float; empty, missing, malformed and NaN cells are no data point."""
    if cell is None:
        return None
    try:
        value = float(cell)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _read_curves(metrics_csv: Path) -> dict[str, list[tuple[float, float, float | None]]]:
    """``{column: [(step, value, epoch), ...]}`` for train_loss, lr and knn_top1, skipping empty cells."""
    curves: dict[str, list[tuple[float, float, float | None]]] = {"train_loss": [], "lr": [], "knn_top1": []}
    try:
        with open(metrics_csv, newline="") as handle:
            for row in csv.DictReader(handle):
                step = _number(row.get("step"))
                if step is None:
                    continue
                epoch = _number(row.get("epoch"))
                for column, points in curves.items():
                    value = _number(row.get(column))
                    if value is not None:
                        points.append((step, value, epoch))
    except (csv.Error, UnicodeDecodeError) as exc:
        raise UserError(f"{metrics_csv} is not a readable CSV file ({exc}); delete or repair it") from None
    return curves


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average (shorter at the start), so the trend of a noisy per-step loss shows."""
    cumulative = np.concatenate([[0.0], np.cumsum(values)])
    stop = np.arange(1, len(values) + 1)
    start = np.maximum(0, stop - window)
    return (cumulative[stop] - cumulative[start]) / (stop - start)


def plot_training_curves(metrics_csv: Path, out: Path) -> Path | None:
    """Loss and learning rate over steps, plus the online kNN top-1 when the run logged it.

    ``metrics_csv`` is a pretraining run's ``metrics.csv`` (columns ``step, epoch, train_loss, lr,
    img_per_s, knn_top1``; kNN rows appear at epoch ends with the other cells empty). Returns None when
    the file is missing or holds no data point, so callers can draw this for any run directory.
    """
    metrics_csv = Path(metrics_csv)
    if not metrics_csv.is_file():
        return None
    curves = _read_curves(metrics_csv)
    panels = [name for name, points in curves.items() if points]
    if not panels:
        return None
    titles = {"train_loss": "NT-Xent training loss", "lr": "learning rate", "knn_top1": "online kNN top-1 (%)"}
    figure = new_figure(4.2 * len(panels), 3.4)
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for ax, name in zip(axes, panels, strict=True):
        points = sorted(curves[name], key=lambda point: point[0])
        steps = np.array([point[0] for point in points])
        values = np.array([point[1] for point in points])
        if name == "knn_top1":
            percent = 100 * values if values.max() <= 1.0 else values
            ax.plot(steps, percent, marker="o", color="tab:green")
            ax.margins(x=0.08, y=0.2)  # room for the epoch labels
            epochs = [point[2] for point in points]
            if len(points) <= 25:
                for step, value, epoch in zip(steps, percent, epochs, strict=True):
                    if epoch is not None:
                        ax.annotate(
                            f"ep {int(epoch)}",
                            (step, value),
                            textcoords="offset points",
                            xytext=(0, 6),
                            ha="center",
                            fontsize=7,
                            color="dimgray",
                        )
        elif name == "train_loss" and len(values) >= 50:
            window = max(5, len(values) // 50)
            ax.plot(steps, values, color="tab:blue", alpha=0.3, linewidth=0.8, label="per step")
            ax.plot(steps, _smooth(values, window), color="tab:blue", linewidth=1.5, label=f"mean of {window}")
            ax.legend(fontsize=8)
        else:
            ax.plot(
                steps,
                values,
                color="tab:blue" if name == "train_loss" else "tab:orange",
                marker="." if len(values) < 50 else None,
            )
        ax.set_title(titles[name], fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    return save_figure(figure, out)


def plot_learning_curves(history: Sequence[Mapping[str, Any]], out: Path, *, title: str) -> Path:
    """Loss and top-1 per epoch of a trained classifier: training (augmented images) and validation."""
    figure = new_figure(9.0, 3.6)
    loss_ax, top1_ax = figure.subplots(1, 2)
    for ax, metric, unit in ((loss_ax, "loss", 1.0), (top1_ax, "top1", 100.0)):
        for part, style in (("train", "-"), ("val", "--")):
            column = f"{part}_{metric}"
            points = [(row["epoch"], unit * row[column]) for row in history if row.get(column) is not None]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, style, marker="o" if len(points) < 30 else None, label=part)
        ax.set_xlabel("epoch")
        ax.set_ylabel("top-1 (%)" if metric == "top1" else "loss")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    figure.suptitle(title, fontsize=10)
    return save_figure(figure, out)


def plot_score_curves(
    series: Mapping[str, Sequence[tuple[float, float]]],
    out: Path,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    reference: float | None = None,
    log_x: bool = False,
) -> Path:
    """One line of ``(x, score)`` points per named series, with an optional dashed reference level (e.g. the
    clean score a shifted one is compared with)."""
    figure = new_figure(5.6, 3.8)
    ax = figure.subplots()
    for name, points in series.items():
        xs, ys = zip(*sorted(points), strict=True) if points else ((), ())
        ax.plot(xs, ys, marker="o", label=name)
    if reference is not None:
        ax.axhline(reference, color="gray", linestyle="--", linewidth=1, label="clean")
    if log_x:
        ax.set_xscale("log")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if len(series) > 1 or reference is not None:
        ax.legend(fontsize=8)
    return save_figure(figure, out)


# ---------------------------------------------------------------------------------------------------
# Confusion matrix


def _short(name: str, width: int = 18) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def plot_confusion_matrix(
    matrix: Any, class_names: Sequence[str], out: Path, title: str = "Confusion matrix (test split)"
) -> Path:
    """Rows = true class, columns = predicted class, coloured by the fraction of each true class.

    Row-normalised colours make a rare class's errors as visible as a common one's; the raw counts are
    written in the cells up to 20 classes. Above that (CIFAR-100) the cells are too small for text, so
    only the colours and small tick labels are drawn.
    """
    counts = _as_array(matrix, dtype=float)
    n = len(class_names)
    if counts.ndim != 2 or counts.shape != (n, n):
        raise ValueError(f"confusion matrix of shape {counts.shape} does not match {n} class names")
    support = counts.sum(axis=1, keepdims=True)
    fractions = np.divide(counts, support, out=np.zeros_like(counts), where=support > 0)
    accuracy = np.trace(counts) / counts.sum() if counts.sum() > 0 else float("nan")

    side = min(max(6.0, 0.45 * n + 2.5), 20.0)
    figure = new_figure(side + 1.2, side)
    ax = figure.subplots()
    image = ax.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    figure.colorbar(image, ax=ax, fraction=0.04, pad=0.02, shrink=0.8, label="fraction of the true class")
    tick_size = 9 if n <= _ANNOTATE_MAX_CLASSES else max(4.0, min(8.0, 600 / n))
    names = [_short(str(name)) for name in class_names]
    ax.set_xticks(range(n), names, rotation=90, fontsize=tick_size)
    ax.set_yticks(range(n), names, fontsize=tick_size)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"{title} — accuracy {100 * accuracy:.2f}%", fontsize=11)
    if n <= _ANNOTATE_MAX_CLASSES:
        font = 8 if n <= 10 else 6
        for row in range(n):
            for col in range(n):
                colour = "white" if fractions[row, col] > 0.5 else "black"
                ax.text(col, row, f"{int(counts[row, col])}", ha="center", va="center", fontsize=font, color=colour)
    return save_figure(figure, out)


# ---------------------------------------------------------------------------------------------------
# Embedding map


def _subsample(count: int, max_points: int, labels: np.ndarray | None, seed: int) -> np.ndarray:
    """Sorted indices of at most ``max_points`` items; stratified by label so small classes stay visible."""
    if count <= max_points:
        return np.arange(count)
    rng = np.random.default_rng(seed)
    if labels is None:
        return np.sort(rng.choice(count, size=max_points, replace=False))
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        take = max(1, int(round(max_points * len(members) / count)))
        chosen.append(rng.permutation(members)[:take])
    picked = np.concatenate(chosen)
    if len(picked) > max_points:
        picked = rng.choice(picked, size=max_points, replace=False)
    return np.sort(picked)


def _project(
    features: np.ndarray,
    method: str,
    seed: int,
    *,
    perplexity: float | None = None,
    neighbors: int = 15,
    targets: np.ndarray | None = None,
) -> np.ndarray:
    """2-D coordinates. Features are L2-normalised first: NT-Xent compares directions, not lengths. ``targets``
    (class labels) make the UMAP supervised."""
    features = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    count = len(features)
    if method == "umap":
        try:
            import umap
        except ImportError:
            raise MissingMapPackage(
                "--method umap needs umap-learn; pip install 'simclr-kit[umap]' adds it, or leave --method out "
                "for t-SNE"
            ) from None
        reducer = umap.UMAP(
            n_components=2,
            n_neighbors=max(2, min(neighbors, count - 1)),
            min_dist=0.1,
            random_state=seed,
            n_jobs=1,
            init="spectral" if count > 20 else "random",
        )
        return np.asarray(reducer.fit_transform(features, y=targets), dtype=float)
    try:
        from sklearn.decomposition import PCA
        from sklearn.manifold import TSNE
    except ImportError:
        raise MissingMapPackage("the t-SNE map needs scikit-learn; pip install 'simclr-kit[viz]' adds it") from None
    if features.shape[1] > 50 and count > 50:
        # The usual t-SNE preprocessing: PCA to 50 dimensions keeps the neighbourhoods, costs far less.
        features = PCA(n_components=50, random_state=seed).fit_transform(features)
    if perplexity is None:
        perplexity = float(min(30.0, max(2.0, (count - 1) / 3)))
    elif not 0 < perplexity < count:
        raise UserError(f"--perplexity {perplexity:g} must be between 0 and the {count} points mapped; lower it")
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto", random_state=seed)
    return np.asarray(tsne.fit_transform(features), dtype=float)


def _class_colours(count: int) -> list[Any]:
    from matplotlib import colormaps

    if count <= 10:
        return [colormaps["tab10"](i) for i in range(count)]
    if count <= 20:
        return [colormaps["tab20"](i) for i in range(count)]
    turbo = colormaps["turbo"]
    return [turbo(i / max(1, count - 1)) for i in range(count)]


def plot_embedding_map(
    features: Any,
    out: Path,
    *,
    labels: Any = None,
    class_names: Sequence[str] | None = None,
    values: Any = None,
    value_name: str | None = None,
    method: str = "tsne",
    seed: int = 0,
    max_points: int = 2000,
    perplexity: float | None = None,
    neighbors: int = 15,
    supervised: bool = False,
) -> Path:
    """A 2-D t-SNE (default) or UMAP map of ``(N, D)`` test embeddings.

    Coloured by class (``labels`` with ``class_names`` for the legend; label -1 is drawn grey as
    unlabelled) or, for regression data with no classes, by one continuous target ``values`` with a
    colourbar titled ``value_name``. At most ``max_points`` points are embedded (t-SNE is quadratic),
    chosen reproducibly from ``seed``, stratified by class when there are labels. ``perplexity`` (t-SNE) and
    ``neighbors`` (UMAP) set the neighbourhood size; ``supervised`` lets UMAP use the labels (SimCLR-Lightning's
    supervised UMAP: it shows how the classes can be separated, not how the features cluster unaided).
    """
    method = method.lower()
    if method not in EMBEDDING_METHODS:
        raise UserError(f"unknown embedding method {method!r}; choose one of: {', '.join(EMBEDDING_METHODS)}")
    data = _as_array(features, dtype=float)
    if data.ndim != 2:
        raise ValueError(f"features must be (N, D), got shape {data.shape}")
    total = len(data)
    if total < 4:
        raise ValueError(f"an embedding map needs at least 4 points, got {total}")
    label_array = None if labels is None else _as_array(labels).astype(int).reshape(-1)
    value_array = None if values is None else _as_array(values, dtype=float).reshape(-1)
    for name, array in (("labels", label_array), ("values", value_array)):
        if array is not None and len(array) != total:
            raise ValueError(f"{name} has {len(array)} entries for {total} feature rows")

    if supervised and (method != "umap" or label_array is None):
        raise UserError("--supervised-map needs --method umap and a labelled test split; drop --supervised-map")
    keep = _subsample(total, max_points, label_array, seed)
    targets = label_array[keep] if supervised and label_array is not None else None
    coords = _project(data[keep], method, seed, perplexity=perplexity, neighbors=neighbors, targets=targets)
    figure = new_figure(8.0, 7.0)
    ax = figure.subplots()
    size = 24 if len(keep) <= 200 else 12 if len(keep) <= 800 else 6
    if value_array is not None:
        points = ax.scatter(coords[:, 0], coords[:, 1], c=value_array[keep], cmap="viridis", s=size, linewidths=0)
        figure.colorbar(points, ax=ax, label=value_name or "value")
    elif label_array is not None:
        _draw_classes(ax, coords, label_array[keep], class_names, size)
    else:
        ax.scatter(coords[:, 0], coords[:, 1], s=size, linewidths=0, color="tab:blue")
    shown = f"{len(keep)} of {total}" if len(keep) < total else f"{total}"
    kind = ("supervised UMAP" if supervised else "UMAP") if method == "umap" else "t-SNE"
    ax.set_title(f"{kind} of {shown} test embeddings (seed {seed})", fontsize=11)
    ax.set_xticks([])
    ax.set_yticks([])
    return save_figure(figure, out)


def _draw_classes(
    ax: Any, coords: np.ndarray, labels: np.ndarray, class_names: Sequence[str] | None, size: float
) -> None:
    """Legend up to 20 classes; above that, each class name is written at the median of its points."""
    classes = sorted(int(label) for label in np.unique(labels) if label >= 0)
    colours = _class_colours(len(classes))

    def name_of(label: int) -> str:
        if class_names is not None and 0 <= label < len(class_names):
            return str(class_names[label])
        return str(label)

    unlabelled = labels < 0
    if unlabelled.any():
        ax.scatter(
            coords[unlabelled, 0], coords[unlabelled, 1], s=size, linewidths=0, color="lightgray", label="unlabelled"
        )
    for colour, label in zip(colours, classes, strict=True):
        members = labels == label
        ax.scatter(
            coords[members, 0], coords[members, 1], s=size, linewidths=0, color=colour, label=_short(name_of(label))
        )
    if len(classes) <= _LEGEND_MAX_CLASSES:
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, markerscale=2.0, frameon=False)
        return
    for label in classes:
        centre = np.median(coords[labels == label], axis=0)
        ax.text(
            centre[0],
            centre[1],
            _short(name_of(label), 12),
            fontsize=5,
            ha="center",
            va="center",
            bbox={"boxstyle": "round,pad=0.1", "facecolor": "white", "alpha": 0.6, "linewidth": 0},
        )


# ---------------------------------------------------------------------------------------------------
# Augmented views


def _image(array: np.ndarray) -> tuple[np.ndarray, str | None]:
    """``(C, H, W)`` in [0, 1] to what ``imshow`` takes, and the colour map a single channel needs."""
    array = np.clip(array, 0.0, 1.0)
    if array.shape[0] == 1:
        return array[0], "gray"
    return np.transpose(array[:3], (1, 2, 0)), None


def plot_view_grid(originals: Any, views: Sequence[Any], out: Path, max_images: int = 8) -> Path:
    """One row per image: the stored original, then each augmented view, to check the augmentations by eye.

    ``originals`` is ``(N, C, H, W)`` uint8 as the dataset stores it; ``views`` are ``(N, C, h, w)`` floats
    in [0, 1] before normalisation (normalised views look like noise and show nothing).
    """
    base = _as_array(originals)
    base = base.astype(float) / 255.0 if base.dtype == np.uint8 else base.astype(float)
    view_arrays = [_as_array(view, dtype=float) for view in views]
    if base.ndim != 4:
        raise ValueError(f"originals must be (N, C, H, W), got shape {base.shape}")
    for index, view in enumerate(view_arrays, start=1):
        if view.ndim != 4 or len(view) != len(base):
            raise ValueError(f"view {index} has shape {view.shape}; expected ({len(base)}, C, h, w)")
    rows = min(len(base), max_images)
    if rows < 1:
        raise ValueError("plot_view_grid needs at least one image")
    columns = [("original", base)] + [(f"view {i}", view) for i, view in enumerate(view_arrays, start=1)]
    figure = new_figure(1.7 * len(columns), 1.7 * rows + 0.3)
    axes = figure.subplots(rows, len(columns), squeeze=False)
    for row in range(rows):
        for col, (title, stack) in enumerate(columns):
            ax = axes[row][col]
            picture, cmap = _image(stack[row])
            ax.imshow(picture, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(title, fontsize=9)
    return save_figure(figure, out)


# ---------------------------------------------------------------------------------------------------
# Checkpoint scan


def plot_checkpoint_scan(epochs: Sequence[int], scores: dict[str, Sequence[float]], out: Path) -> Path:
    """The scores (fractions, shown in %: top-1 accuracy or R^2) of every kept backbone against the epochs it
    trained, one line per method."""
    figure = new_figure(5.0, 3.4)
    ax = figure.subplots()
    for name, values in scores.items():
        ax.plot(list(epochs), [100 * value for value in values], marker="o", label=name)
    ax.set_xlabel("epochs trained")
    ax.set_ylabel("score (%)")
    ax.set_title("kept backbones", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(figure, out)
