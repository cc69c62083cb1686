"""``simclr predict``: the class of every image in a folder, by a classifier an evaluation saved.

The folder is read a piece at a time (:func:`simclr.data.imagefolder.image_folder_chunks`, as ``simclr embed``
reads it), so its size is not bounded by memory; files that cannot be decoded (or links leading outside the
folder) are skipped and counted. Images are decoded at the size the classifier's run stored them and fed to it
as it was evaluated (:class:`simclr.evaluation.classifiers.inputs.InputPipeline`'s un-augmented path).
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from simclr.atomic import atomic_write
from simclr.data.imagefolder import FOLDER_CHUNK, image_folder_chunks
from simclr.errors import UserError
from simclr.evaluation.classifiers.classifier_heads import Classifier
from simclr.evaluation.classifiers.inputs import InputPipeline, predict_logits
from simclr.evaluation.classifiers.saved_classifier import ClassifierMetadata
from simclr.evaluation.inference.embed import utf8_text
from simclr.rundir import RunDir

__all__ = ["FORMATS", "PREFERENCE", "Predictions", "choose_classifier", "predict_folder", "write_predictions"]

FORMATS = (".csv", ".parquet")
PREFERENCE = ("finetune", "linear", "linear_tta", "linear_sgd", "supervised", "supervised_imagenet")
"""Which of a run's saved classifiers ``predict RUN`` uses: a fine-tuned model first, then the linear probes,
then the supervised baselines (they do not use the run's SimCLR weights)."""


@dataclass
class Predictions:
    """The ``top_k`` classes of every image, most probable first, with their softmax probabilities."""

    file_names: list[str]
    top_classes: Tensor  # (N, K) class indices
    top_probabilities: Tensor  # (N, K) float32
    class_names: tuple[str, ...]
    folder_classes: list[str | None]  # the class sub-folder an image was found in, if any
    skipped: list[tuple[str, str]]


def choose_classifier(target: Path) -> tuple[Path, str]:
    """``target`` itself when it is a file; for a run directory its saved classifier by :data:`PREFERENCE`,
    with a line saying which was chosen and which others there are."""
    target = Path(target).expanduser()
    if target.is_file():
        return target, f"classifier: {target}"
    if not target.is_dir():
        raise UserError(f"{target} does not exist; pass a run directory or a classifier .safetensors file")
    found = RunDir(target).eval.classifiers()
    if not found:
        raise UserError(
            f"{target} has no saved classifier; run 'simclr linear-eval {target}' (or finetune) first, which saves one"
        )
    ranked = sorted(found, key=lambda name: (PREFERENCE.index(name) if name in PREFERENCE else len(PREFERENCE), name))
    chosen = ranked[0]
    others = f" (also saved: {', '.join(ranked[1:])}; pass its file to use it)" if ranked[1:] else ""
    return found[chosen], f"classifier: {chosen}, {found[chosen]}{others}"


def predict_folder(
    model: Classifier,
    meta: ClassifierMetadata,
    data_dir: Path,
    *,
    top_k: int = 1,
    batch_size: int = 256,
    workers: int = 2,
    device: torch.device | None = None,
    autocast_dtype: torch.dtype | None = None,
    follow_links: bool = False,
    chunk: int = FOLDER_CHUNK,
    advance: Callable[[int, int], None] | None = None,
) -> Predictions:
    """Classify every image under ``data_dir``; ``advance(done, total)`` is called after every piece."""
    classes = len(meta.class_names)
    if not 1 <= top_k <= classes:
        raise UserError(f"--top-k must be in 1..{classes} (the classifier's classes), got {top_k}")
    data_dir = Path(data_dir).expanduser()
    device = device or torch.device("cpu")
    model = model.to(device)
    pipeline = InputPipeline(meta.image_size, meta.mean, meta.std)
    names: list[str] = []
    folder_classes: list[str | None] = []
    top_classes: list[Tensor] = []
    top_probabilities: list[Tensor] = []
    skipped: list[tuple[str, str]] = []
    for piece in image_folder_chunks(
        data_dir, meta.decode_size, workers, chunk=chunk, follow_external_links=follow_links, advance=advance
    ):
        skipped += piece.skipped
        if len(piece):
            logits = predict_logits(
                model, pipeline, piece.images, batch_size=batch_size, device=device, autocast_dtype=autocast_dtype
            )
            values, indices = logits.float().softmax(1).topk(top_k, dim=1)
            top_classes.append(indices)
            top_probabilities.append(values)
            names += piece.file_names or []
            folder_classes += [piece.class_names[i] if i >= 0 else None for i in piece.labels.tolist()]
    return Predictions(
        file_names=names,
        top_classes=torch.cat(top_classes),
        top_probabilities=torch.cat(top_probabilities),
        class_names=meta.class_names,
        folder_classes=folder_classes,
        skipped=skipped,
    )


def _columns(preds: Predictions) -> dict[str, list[object]]:
    """One row per image: ``path``, ``predicted_class``, ``probability``, then ``class_<i>`` and
    ``probability_<i>`` for every rank i of the top-k (when k > 1), and ``folder_class`` when the folder has
    class sub-folders."""
    names = [utf8_text(name) for name in preds.class_names]
    classes, probabilities = preds.top_classes.tolist(), preds.top_probabilities.tolist()
    columns: dict[str, list[object]] = {
        "path": [utf8_text(name) for name in preds.file_names],
        "predicted_class": [names[row[0]] for row in classes],
        "probability": [row[0] for row in probabilities],
    }
    k = preds.top_classes.shape[1]
    for rank in range(k if k > 1 else 0):
        columns[f"class_{rank + 1}"] = [names[row[rank]] for row in classes]
        columns[f"probability_{rank + 1}"] = [row[rank] for row in probabilities]
    if any(name is not None for name in preds.folder_classes):
        columns["folder_class"] = [utf8_text(name) if name is not None else None for name in preds.folder_classes]
    return columns


def write_predictions(preds: Predictions, out: Path) -> None:
    """``.csv`` or ``.parquet`` (:func:`_columns`), written atomically (temporary file, then rename)."""
    columns = _columns(preds)
    try:
        with atomic_write(out) as tmp:
            if out.suffix == ".csv":
                with tmp.open("w", newline="", encoding="utf-8") as handle:
                    writer = csv.writer(handle)
                    writer.writerow(columns)
                    writer.writerows(zip(*columns.values(), strict=True))
            else:
                # pyarrow is an optional extra, imported only when a .parquet file is asked for
                import pyarrow as pa
                import pyarrow.parquet as pq

                pq.write_table(pa.table(columns), tmp)
    except OSError as exc:  # a full disk, a folder without write permission: the user's to fix
        raise UserError(f"cannot write {out}: {exc.strerror or exc}; free space or choose another --out") from None
