"""Embeddings of any image folder, for users who pretrain once and then search, cluster or label.

The backbone output (``layer="backbone"``, the representation SimCLR evaluates) or the projection
head's output (``layer="projection"``, the space NT-Xent was computed in; its head weights come from the
run's last checkpoint), saved with the file names and labels next to the vectors, and (``.npz``, ``.parquet``)
with where they came from (:class:`EmbeddingOrigin`), so a file that leaves the machine still says it.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from simclr.atomic import atomic_write
from simclr.data.catalog import dataset_info
from simclr.data.imagefolder import FOLDER_CHUNK, image_folder_chunks
from simclr.errors import UserError
from simclr.evaluation.features import extract_features
from simclr.evaluation.loading import RunRef, load_backbone
from simclr.model_from_config import build_projection_head
from simclr.paths import check_output_file
from simclr.resolve import normalized_info
from simclr.version import __version__

LAYERS = ("backbone", "projection")
SUFFIXES = {"npy": ".npy", "npz": ".npz", "parquet": ".parquet", "lightly-csv": ".csv"}
"""Every format by name (``--format``), with the suffix its file must have."""
FORMATS = tuple(suffix for suffix in SUFFIXES.values() if suffix != ".csv")
"""The formats ``--out``'s name alone chooses: a ``.csv`` could be many layouts, so lightly's is asked for by name."""
METADATA_KEY = "simclr"
"""The .parquet schema-metadata key (bytes ``b"simclr"``) and the .npz entry (``metadata``) hold the same JSON."""


@dataclass(frozen=True)
class EmbeddingOrigin:
    """How the vectors were made: enough to know whether two files are comparable, and to redo one."""

    data_dir: Path  # absolute; file names are relative to it unless written absolute
    layer: str
    run_dir: Path
    backbone_sha256: str
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass
class Embeddings:
    vectors: np.ndarray  # (N, D) float32
    file_names: list[str]  # relative to origin.data_dir
    labels: np.ndarray  # (N,) int64, -1 when unlabelled
    class_names: list[str]
    skipped: list[tuple[str, str]]
    origin: EmbeddingOrigin

    def metadata(self, absolute_paths: bool = False) -> dict[str, Any]:
        """The JSON object written into .npz and .parquet files (the keys README's ``simclr embed`` lists)."""
        origin = self.origin
        return {
            "simclr_version": __version__,
            "data_dir": utf8_text(str(origin.data_dir)),
            "paths": "absolute" if absolute_paths else "relative to data_dir",
            "layer": origin.layer,
            "run_dir": utf8_text(str(origin.run_dir)),
            "backbone_sha256": origin.backbone_sha256,
            "image_size": origin.image_size,
            "mean": list(origin.mean),
            "std": list(origin.std),
            "skipped_files": len(self.skipped),
        }


def load_projection_head(ref: RunRef, feature_dim: int) -> nn.Module:
    """The run's projection head with its trained weights from the Lightning checkpoint."""
    path = ref.run.last_checkpoint
    if not path.is_file():
        raise UserError(
            f"the projection layer needs the head's weights in {path}, which does not exist; use --layer backbone "
            "(evaluate: --map-layer backbone)"
        )
    head, _ = build_projection_head(ref.config, feature_dim)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    except Exception as exc:  # a damaged or foreign file: say which and stop
        raise UserError(f"cannot read {path}: {exc}") from None
    prefixes = ("model.head.", "model._orig_mod.head.")
    head_state = {key.split(".head.", 1)[1]: value for key, value in state.items() if key.startswith(prefixes)}
    try:
        head.load_state_dict(head_state)
    except RuntimeError as exc:
        raise UserError(f"the head in {path} does not match the run's config ({str(exc).splitlines()[0]})") from None
    return head.eval()


def embed_folder(
    ref: RunRef,
    data_dir: Path,
    *,
    layer: str = "backbone",
    batch_size: int = 512,
    workers: int = 2,
    device: torch.device | None = None,
    autocast_dtype: torch.dtype | None = None,
    follow_links: bool = False,
    chunk: int = FOLDER_CHUNK,
    advance: Callable[[int, int], None] | None = None,
) -> Embeddings:
    """Decode every image under ``data_dir`` at the run's image size and embed it, a piece of the folder at a
    time (a folder bigger than memory is never held); links leading outside ``data_dir`` are skipped and
    listed unless ``follow_links``. ``advance(done, total)`` is told how many files have been read."""
    if layer not in LAYERS:
        raise UserError(f"unknown layer {layer!r}; use one of {', '.join(LAYERS)}")
    loaded = load_backbone(ref)
    image_size = loaded.image_size(ref.config)
    info = normalized_info(ref.config, dataset_info(ref.config.dataset, image_size))
    device = device or torch.device("cpu")
    module = loaded.module.to(device)
    head = load_projection_head(ref, loaded.feature_dim) if layer == "projection" else None
    vectors: list[torch.Tensor] = []
    file_names: list[str] = []
    labels: list[torch.Tensor] = []
    skipped: list[tuple[str, str]] = []
    class_names: list[str] = []
    for piece in image_folder_chunks(
        Path(data_dir), image_size, workers, chunk=chunk, follow_external_links=follow_links, advance=advance
    ):
        features = extract_features(
            module,
            piece.images,
            info.mean,
            info.std,
            batch_size=batch_size,
            device=device,
            autocast_dtype=autocast_dtype,
        )
        if head is not None:
            with torch.no_grad():
                features = head(features)
        vectors.append(features.float())
        file_names += piece.file_names or []
        labels.append(piece.labels)
        skipped += piece.skipped
        class_names = piece.class_names
    return Embeddings(
        vectors=torch.cat(vectors).numpy(),
        file_names=file_names,
        labels=torch.cat(labels).numpy(),
        class_names=list(class_names),
        skipped=skipped,
        origin=EmbeddingOrigin(
            data_dir=Path(data_dir).resolve(),
            layer=layer,
            run_dir=ref.run.path.resolve(),
            backbone_sha256=loaded.sha256,
            image_size=image_size,
            mean=tuple(info.mean),
            std=tuple(info.std),
        ),
    )


def _index_path(out: Path) -> Path:
    """Where a ``.npy`` matrix keeps its names and labels."""
    return out.with_name(out.name + ".index.csv")


def output_format(out: Path, requested: str | None = None) -> str:
    """The format to write ``out`` in: ``requested`` (a key of :data:`SUFFIXES`; ``out`` must then have its
    suffix), else the one ``out``'s suffix names (:data:`FORMATS`)."""
    if requested is not None:
        if requested not in SUFFIXES:
            raise UserError(f"unknown format {requested!r}; use one of {', '.join(SUFFIXES)}")
        if out.suffix != SUFFIXES[requested]:
            raise UserError(
                f"cannot write {out}: --format {requested} writes a {SUFFIXES[requested]} file; name --out accordingly"
            )
        return requested
    if out.suffix == ".csv":
        raise UserError(f"cannot write {out}: for lightly's embeddings CSV pass --format lightly-csv")
    if out.suffix not in FORMATS:
        raise UserError(
            f"cannot write {out}: unknown format {out.suffix or '(none)'}; use a name ending in {', '.join(FORMATS)}"
            " (or .csv with --format lightly-csv)"
        )
    return out.suffix[1:]


def check_output_path(out: Path, overwrite: bool, formats: Sequence[str] = FORMATS) -> None:
    """Before any work: a known format (one of ``formats``), then what every output file needs
    (:func:`simclr.paths.check_output_file`: a name the file system holds, an existing parent this user may
    write into, not a folder, no silent overwrite), for the ``.npy``'s index file too."""
    if out.suffix not in formats:
        raise UserError(
            f"cannot write {out}: unknown format {out.suffix or '(none)'}; use a name ending in {', '.join(formats)}"
        )
    for path in (out, _index_path(out)) if out.suffix == ".npy" else (out,):
        check_output_file(path, overwrite=True)
    if out.exists() and not overwrite:
        raise UserError(f"{out} already exists; pass --overwrite to replace it or choose another --out")
    if out.suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            others = ", ".join(f for f in formats if f != ".parquet")
            raise UserError(
                f"writing .parquet needs pyarrow; pip install 'simclr-kit[parquet]' (or pyarrow), or use {others}"
            ) from None


def utf8_text(name: str) -> str:
    """``name`` as valid UTF-8 text. File names that are not UTF-8 reach Python with surrogate escapes, which
    no UTF-8 writer (csv, parquet, a later reader of the .npz) accepts; they are written with backslash
    escapes instead (the bytes ``bad\\xff.jpg`` become the text ``bad\\xff.jpg``)."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def write_embeddings(emb: Embeddings, out: Path, fmt: str | None = None, *, absolute_paths: bool = False) -> list[Path]:
    """Write atomically (:func:`simclr.atomic.atomic_write`: nothing half-written is ever seen, and nothing is left
    behind when writing fails); returns the files written.

    ``fmt`` is a key of :data:`SUFFIXES` (default: the one ``out``'s suffix names). ``.npz``: arrays
    ``embeddings``, ``file_names``, ``labels``, ``class_names`` and ``metadata`` (:meth:`Embeddings.metadata`
    as a JSON string). ``.parquet``: one row per image with ``file_name``, ``label``, ``class_name`` and
    ``embedding`` (a ``fixed_size_list<float, D>`` column), the metadata under the schema-metadata key
    ``simclr``. ``.npy`` holds only the matrix, so the names and labels go to ``FILE.index.csv`` beside it,
    row for row. ``lightly-csv``: lightly's embeddings CSV (:func:`_write_lightly_csv`). File names are relative
    to the data folder, or absolute with ``absolute_paths``; names that are not UTF-8 are written with backslash
    escapes (:func:`utf8_text`).
    """
    fmt = output_format(out, fmt)
    root = emb.origin.data_dir
    file_names = [utf8_text(str(root / name) if absolute_paths else name) for name in emb.file_names]
    class_names = [utf8_text(name) for name in emb.class_names]
    labels = emb.labels.tolist()
    metadata = json.dumps(emb.metadata(absolute_paths), sort_keys=True)
    index = _index_path(out)
    try:
        with atomic_write(out) as tmp:
            if fmt == "npy":
                with tmp.open("wb") as handle:
                    np.save(handle, emb.vectors)
                with atomic_write(index) as index_tmp:  # in place before the matrix it describes
                    _write_index_csv(index_tmp, file_names, labels, class_names)
            elif fmt == "npz":
                with tmp.open("wb") as handle:
                    np.savez(
                        handle,
                        embeddings=emb.vectors,
                        file_names=np.array(file_names),
                        labels=emb.labels,
                        class_names=np.array(class_names),
                        metadata=np.array(metadata),
                    )
            elif fmt == "lightly-csv":
                _write_lightly_csv(tmp, emb.vectors, file_names, labels)
            else:
                _write_parquet(tmp, emb, file_names, class_names, metadata)
    except OSError as exc:  # a full disk, a folder without write permission: the user's to fix
        raise UserError(f"cannot write {out}: {exc.strerror or exc}; free space or choose another --out") from None
    return [out, index] if fmt == "npy" else [out]


def _write_index_csv(path: Path, file_names: list[str], labels: list[int], class_names: list[str]) -> None:
    """The names and labels of a ``.npy`` matrix's rows: ``row, file_name, label, class_name``."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", "file_name", "label", "class_name"])
        for row, (name, label) in enumerate(zip(file_names, labels, strict=True)):
            writer.writerow([row, name, label, class_names[label] if label >= 0 else ""])


def _write_parquet(path: Path, emb: Embeddings, file_names: list[str], class_names: list[str], metadata: str) -> None:
    """One row per image (``file_name``, ``label``, ``class_name``, ``embedding``), ``metadata`` under the
    schema-metadata key :data:`METADATA_KEY`. ``embedding`` is ``fixed_size_list<float, D>``: the type vector
    stores and Arrow's tensor tools read as a matrix (a plain list column could hold rows of any length)."""
    # pyarrow is an optional extra, imported only when a .parquet file is asked for
    import pyarrow as pa
    import pyarrow.parquet as pq

    vectors = np.ascontiguousarray(emb.vectors, dtype=np.float32)
    embedding = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])
    table = pa.table(
        {
            "file_name": file_names,
            "label": emb.labels,
            "class_name": [class_names[i] if i >= 0 else None for i in emb.labels.tolist()],
            "embedding": embedding,
        }
    )
    pq.write_table(table.replace_schema_metadata({METADATA_KEY: metadata}), path)


def _write_lightly_csv(path: Path, vectors: np.ndarray, file_names: list[str], labels: list[int]) -> None:
    """lightly's embeddings CSV (``lightly.utils.io.save_embeddings``): a header ``filenames, embedding_0, ...,
    embedding_{D-1}, labels``, then one row per image. lightly reads it back with ``csv.reader``, so names
    holding commas, quotes or line breaks are quoted as the csv module quotes them and read back whole. The
    label is the class index, 0 for a folder without classes (as lightly labels one). Values are written in
    float32's shortest round-tripping form, so the file reads back to the very same vectors."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filenames", *(f"embedding_{i}" for i in range(vectors.shape[1])), "labels"])
        for name, vector, label in zip(file_names, vectors, labels, strict=True):
            writer.writerow([name, *vector.astype(str).tolist(), max(label, 0)])  # a row at a time: text is big
