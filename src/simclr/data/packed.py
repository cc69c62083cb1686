"""Packing an image dataset into litdata shards, for training on data bigger than memory.

``simclr data pack SRC OUT`` turns an image folder (class sub-folders or flat, nested), a folder with
``train/`` and ``test/`` (or ``val/``) splits, or a torchvision dataset into one litdata dataset per split:
chunk files of samples ``{"image": encoded bytes, "label": int, "path": relative path as bytes}`` and an
``index.json``, which :class:`litdata.StreamingDataset` streams from local disk or object storage, sharded
by rank and node and resumable (:mod:`simclr.data.streaming`).

- Images whose longer side exceeds ``max_side`` are downscaled once (Lanczos) and stored as JPEG of the
  given quality; the default 512 keeps a random resized crop of the whole image sharp at 224 px. Other
  JPEG and 8-bit PNG files are stored byte for byte; every other format or mode (16-bit, CMYK, alpha,
  EXIF-rotated) is converted to RGB the way the folder loader does and stored as JPEG.
- Files that cannot be decoded are skipped, counted and listed in ``skipped.csv``, as the folder loader
  reports them.
- The samples are written in a seeded random order, so every chunk mixes the classes (a streamed batch
  reads few chunks) and the first samples of a split are a random subset (the kNN monitor reads them).
- The work is cut into parts of :data:`PART_SIZE` images, written by a pool of processes; each part
  leaves a marker when its chunks are complete, so an interrupted pack re-run redoes only the parts
  without one, then merges the parts' indexes.

Beside litdata's files each split holds ``simclr-pack.json`` (source, class names, counts, the settings)
and ``labels.npy`` (every sample's label in stored order), which stratified subsets and the kNN monitor
read without touching the images.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import multiprocessing as mp
import os
import shutil
import statistics
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from litdata.streaming.writer import BinaryWriter
from PIL import Image

from simclr.atomic import atomic_write, write_text_atomic
from simclr.data.catalog import DATASET_NAMES, load_dataset
from simclr.data.decode import ImageDecodeError, load_image
from simclr.data.folder_listing import find_split_folder, has_split_layout, scan_image_folder
from simclr.data.imagenet import IMAGENET_SUBSETS, list_imagenet
from simclr.data.pack_format import (
    INDEX_FILE,
    INFO_FILE,
    LABELS_FILE,
    PACK_SPLITS,
    SKIPPED_FILE,
    PackedSplitInfo,
    read_pack_info,
)
from simclr.data.pack_settings import PackConfig
from simclr.errors import UserError

log = logging.getLogger("simclr")

__all__ = ["PART_SIZE", "PackSource", "PackSummary", "pack_dataset", "pack_split", "pack_sources"]

PART_SIZE = 2048
CHUNK_BYTES = "64MB"
_PARTS_DIR = ".parts"
_KEPT_FORMATS = {"JPEG", "PNG"}
_KEPT_MODES = {"RGB", "L"}
_EXIF_ORIENTATION = 0x0112
# the datasets named by SRC that are packed from what their loader reads (image folders are packed from their
# files, spirograph is generated, packed data is packed already)
_NOT_PACKED_BY_NAME = ("imagefolder", "spirograph", "packed")


@dataclass(frozen=True)
class PackSource:
    """One split to pack: how to read image ``i`` (its file, or an already decoded RGB array), its label
    (-1 when unlabelled) and the name it is listed under."""

    names: Sequence[str]
    labels: Sequence[int]
    class_names: Sequence[str]
    read: Callable[[int], Path | np.ndarray]
    description: str
    listing_skipped: Sequence[tuple[str, str]] = ()  # found while listing (links, FIFOs), before any decoding

    def __len__(self) -> int:
        return len(self.names)


@dataclass
class PackSummary:
    """What one split's packing produced."""

    out: Path
    images: int
    classes: int
    skipped: list[tuple[str, str]] = field(default_factory=list)
    bytes: int = 0
    resumed_parts: int = 0

    def line(self) -> str:
        size = f"{self.bytes / 2**30:.2f} GB" if self.bytes >= 2**30 else f"{self.bytes / 2**20:.1f} MB"
        resumed = f", {self.resumed_parts} part(s) kept from an earlier run" if self.resumed_parts else ""
        return f"{self.out}: {self.images} images, {self.classes} classes, {len(self.skipped)} skipped, {size}{resumed}"


# -- one image -----------------------------------------------------------------------------------
@dataclass
class _Encoded:
    data: bytes
    shorter_side: int


def _needs_reencoding(raw: bytes, max_side: int) -> bool:
    with Image.open(io.BytesIO(raw)) as img:
        rotated = img.format == "JPEG" and img.getexif().get(_EXIF_ORIENTATION, 1) != 1
        return (
            img.format not in _KEPT_FORMATS
            or img.mode not in _KEPT_MODES
            or rotated
            or max(img.size) > max_side
            or getattr(img, "n_frames", 1) > 1
        )


def encode_image(source: Path | np.ndarray, max_side: int, quality: int) -> _Encoded:
    """The bytes stored for one image (see the module docstring); raises :class:`ImageDecodeError`."""
    lossless = True  # decoded arrays (torchvision's datasets) and every format but JPEG
    if isinstance(source, np.ndarray):
        rgb = source
    else:
        rgb = load_image(source)  # decodes fully: a broken file fails here, whatever its header says
        raw = source.read_bytes()
        if not _needs_reencoding(raw, max_side):
            return _Encoded(raw, min(rgb.shape[0], rgb.shape[1]))
        with Image.open(io.BytesIO(raw)) as header:
            lossless = header.format != "JPEG"
    img = Image.fromarray(rgb)
    resized = max(img.size) > max_side
    if resized:
        img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if lossless and not resized:  # never add compression loss to a lossless source, unless downscaling
        img.save(buffer, format="PNG")
    else:
        img.save(buffer, format="JPEG", quality=quality)
    return _Encoded(buffer.getvalue(), min(img.size))


# -- one part --------------------------------------------------------------------------------------
@dataclass
class _PartResult:
    part: int
    labels: list[int]
    skipped: list[tuple[str, str]]
    bytes: int
    shorter_sides: list[int]


@dataclass
class _PackJob:
    source: PackSource
    order: np.ndarray  # the stored order: a seeded permutation of the source's indices
    out: Path
    max_side: int
    quality: int


_JOB: _PackJob | None = None  # set before the pool forks, so the workers share the source


@contextmanager
def _writer_rank(rank: int) -> Iterator[None]:
    """litdata names a writer's chunk files after its rank; a part's rank is its number."""
    previous = os.environ.get("DATA_OPTIMIZER_GLOBAL_RANK")
    os.environ["DATA_OPTIMIZER_GLOBAL_RANK"] = str(rank)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("DATA_OPTIMIZER_GLOBAL_RANK", None)
        else:
            os.environ["DATA_OPTIMIZER_GLOBAL_RANK"] = previous


def _part_marker(out: Path, part: int) -> Path:
    return out / _PARTS_DIR / f"{part}.json"


def _pack_part(part: int) -> _PartResult:
    job = _JOB
    assert job is not None
    indices = job.order[part * PART_SIZE : (part + 1) * PART_SIZE]
    result = _PartResult(part, [], [], 0, [])
    with _writer_rank(part), redirect_stdout(io.StringIO()):  # litdata prints the types it infers
        writer = BinaryWriter(str(job.out), chunk_bytes=CHUNK_BYTES)
        for i in indices.tolist():
            name = job.source.names[i]
            try:
                encoded = encode_image(job.source.read(i), job.max_side, job.quality)
            except ImageDecodeError as exc:
                result.skipped.append((name, exc.reason))
                continue
            except OSError as exc:  # unreadable file (permissions, vanished)
                result.skipped.append((name, f"{type(exc).__name__}: {exc}"))
                continue
            label = int(job.source.labels[i])
            writer.add_item(len(result.labels), {"image": encoded.data, "label": label, "path": name.encode()})
            result.labels.append(label)
            result.bytes += len(encoded.data)
            result.shorter_sides.append(encoded.shorter_side)
        writer.done()
    write_text_atomic(_part_marker(job.out, part), json.dumps(asdict(result)))
    return result


def _read_marker(path: Path) -> _PartResult | None:
    try:
        values = json.loads(path.read_text())
        values["skipped"] = [tuple(item) for item in values["skipped"]]
        return _PartResult(**values)
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _clear_unfinished(out: Path, part: int) -> None:
    for stale in out.glob(f"chunk-{part}-*.bin"):
        stale.unlink()
    (out / f"{part}.{INDEX_FILE}").unlink(missing_ok=True)


def _use_processes(workers: int) -> bool:
    return (
        workers > 1
        and sys.platform.startswith("linux")
        and "fork" in mp.get_all_start_methods()
        and not mp.current_process().daemon
    )


# -- one split -------------------------------------------------------------------------------------
def pack_split(
    source: PackSource,
    out: Path,
    settings: PackConfig | None = None,
    on_part: Callable[[int, int], None] | None = None,
) -> PackSummary:
    """Pack ``source`` into the litdata dataset ``out`` (created, or finished when an earlier run stopped).

    ``on_part(images_done, images_total)`` is called as parts finish (the CLI draws its progress bar
    from it). A finished pack of the same source is left as it is.
    """
    settings = settings or PackConfig()
    settings.validate()
    max_side, quality, workers, seed = settings.max_side, settings.quality, settings.workers, settings.seed
    if len(source) == 0:
        raise UserError(f"{source.description} holds no image files; nothing to pack")
    out = Path(out)
    if (out / INDEX_FILE).is_file() and (out / INFO_FILE).is_file():
        info = read_pack_info(out)
        return PackSummary(out, info.images, len(info.class_names), _read_skipped(out), info.bytes, 0)
    if out.exists() and any(out.iterdir()) and not (out / _PARTS_DIR).is_dir():
        raise UserError(f"{out} exists and is not an unfinished pack; choose an empty or new OUT folder")
    (out / _PARTS_DIR).mkdir(parents=True, exist_ok=True)

    order = np.random.default_rng(seed).permutation(len(source))
    parts = range((len(source) + PART_SIZE - 1) // PART_SIZE)
    results: dict[int, _PartResult] = {}
    for part in parts:
        finished = _read_marker(_part_marker(out, part))
        if finished is not None:
            results[part] = finished
        else:
            _clear_unfinished(out, part)
    resumed = len(results)
    todo = [part for part in parts if part not in results]

    def report() -> None:
        if on_part is not None:
            done = sum(len(r.labels) + len(r.skipped) for r in results.values())
            on_part(done, len(source))

    report()
    global _JOB
    _JOB = _PackJob(source, order, out, max_side, quality)
    try:
        if _use_processes(workers) and len(todo) > 1:
            with mp.get_context("fork").Pool(min(workers, len(todo))) as pool:
                for result in pool.imap_unordered(_pack_part, todo):
                    results[result.part] = result
                    report()
        else:
            for part in todo:
                results[part] = _pack_part(part)
                report()
    finally:
        _JOB = None
    return _merge_parts(source, out, [results[part] for part in parts], max_side, quality, seed, resumed)


def _merge_parts(
    source: PackSource,
    out: Path,
    results: list[_PartResult],
    max_side: int,
    quality: int,
    seed: int,
    resumed: int,
) -> PackSummary:
    """Merge the parts' chunk indexes into litdata's ``index.json`` and write the sidecar files."""
    labels = [label for result in results for label in result.labels]
    if not labels:
        raise UserError(f"no image of {source.description} could be decoded; nothing was packed")
    written = sum(1 for result in results if result.labels)
    BinaryWriter(str(out), chunk_bytes=CHUNK_BYTES).merge(num_workers=written)  # as rank 0 of 1 process
    skipped = list(source.listing_skipped) + [item for result in results for item in result.skipped]
    with atomic_write(out / SKIPPED_FILE) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "reason"])
        writer.writerows(skipped)
    with atomic_write(out / LABELS_FILE) as tmp, open(tmp, "wb") as handle:
        np.save(handle, np.asarray(labels, dtype=np.int64))
    info = PackedSplitInfo(
        source=source.description,
        class_names=list(source.class_names),
        images=len(labels),
        skipped=len(skipped),
        bytes=sum(result.bytes for result in results),
        max_side=max_side,
        quality=quality,
        median_shorter_side=int(statistics.median(s for result in results for s in result.shorter_sides)),
        seed=seed,
    )
    # written last: its presence means the pack is complete
    write_text_atomic(out / INFO_FILE, json.dumps(asdict(info), indent=2) + "\n")
    shutil.rmtree(out / _PARTS_DIR, ignore_errors=True)
    return PackSummary(out, info.images, len(info.class_names), skipped, info.bytes, resumed)


def _read_skipped(out: Path) -> list[tuple[str, str]]:
    path = out / SKIPPED_FILE
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return [(row["path"], row["reason"]) for row in csv.DictReader(handle)]


# -- what a SRC names ------------------------------------------------------------------------------
def pack_sources(
    src: str, data_dir: Path | None = None, download: bool = False, workers: int = 2, follow_links: bool = False
) -> dict[str, PackSource]:
    """The splits ``simclr data pack SRC`` packs: an image folder (``train/`` and ``test/``/``val/`` when it has
    them, else the whole folder as ``train``) or a dataset name (its files are read with ``data_dir``)."""
    path = Path(src).expanduser()
    if path.is_dir():
        splits = {"train": find_split_folder(path, "train"), "test": find_split_folder(path, "test")}
        if not has_split_layout(path):
            splits = {"train": path}
        sources: dict[str, PackSource] = {}
        class_names: list[str] | None = None
        for split, folder in splits.items():
            if folder is None:
                continue
            listing = scan_image_folder(folder, class_names, follow_external_links=follow_links, data_root=path)
            class_names = class_names or listing.class_names
            reader = _file_reader(folder, listing.paths)
            sources[split] = PackSource(
                listing.paths, listing.labels.tolist(), listing.class_names, reader, str(folder), listing.skipped
            )
        return sources
    if src in IMAGENET_SUBSETS:  # listed from its files, never decoded into memory
        if data_dir is None:
            raise UserError(f"packing {src} needs its folder; pass --data-dir /path/to/ILSVRC2012")
        sources = {}
        for split in PACK_SPLITS:
            files, classes, _ = list_imagenet(split, data_dir, subset=IMAGENET_SUBSETS[src])
            names = [str(path.relative_to(data_dir)) for path, _ in files]
            sources[split] = PackSource(
                names, [label for _, label in files], classes, _file_reader(Path(data_dir), names), f"{src} {split}"
            )
        return sources
    if src in DATASET_NAMES and src not in _NOT_PACKED_BY_NAME:
        sources = {}
        for split in PACK_SPLITS:
            store = load_dataset(src, split, data_dir, download=download, workers=workers)
            if store is None:
                continue
            names = store.file_names or [f"{split}/{i:07d}.png" for i in range(len(store))]
            sources[split] = PackSource(
                names, store.labels.tolist(), store.class_names, _array_reader(store.images), f"{src} {split}"
            )
        return sources
    raise UserError(
        f"cannot pack {src!r}: not a folder, nor one of the datasets "
        f"{', '.join(n for n in DATASET_NAMES if n not in _NOT_PACKED_BY_NAME)}"
    )


def _file_reader(folder: Path, names: Sequence[str]) -> Callable[[int], Path | np.ndarray]:
    return lambda i: folder / names[i]


def _array_reader(images: object) -> Callable[[int], Path | np.ndarray]:
    return lambda i: images[i].permute(1, 2, 0).numpy()  # type: ignore[index]


def pack_dataset(
    src: str, out: Path, settings: PackConfig | None = None, on_part: Callable[[str, int, int], None] | None = None
) -> dict[str, PackSummary]:
    """Pack every split of ``src`` into ``out/<split>``; ``on_part(split, done, total)`` reports progress."""
    settings = settings or PackConfig()
    data_dir = Path(settings.data_dir) if settings.data_dir is not None else None
    sources = pack_sources(src, data_dir, settings.download, settings.workers, settings.follow_links)
    summaries = {}
    for split, source in sources.items():
        report = (lambda done, total, split=split: on_part(split, done, total)) if on_part else None
        summaries[split] = pack_split(source, Path(out) / split, settings, report)
    return summaries
