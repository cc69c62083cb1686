"""Packing an image dataset into litdata shards, for training on data bigger than memory.

``simclr data pack SRC OUT`` turns an image folder (class sub-folders or flat, nested), a folder with
``train/`` and ``test/`` (or ``val/``) splits, or a torchvision dataset (listed by
:mod:`simclr.data.pack_sources`) into one litdata dataset per split:
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
- The work is cut into parts of :data:`PART_SIZE` images, written by forked worker processes
  (:mod:`simclr.data.pack_workers`); each part leaves a marker when its chunks are complete, so an
  interrupted pack (SIGINT, SIGTERM, SIGKILL) re-run redoes only the parts without one, then merges the parts'
  indexes. litdata is shown this process alone while it writes and merges (:func:`_litdata_sees`): under
  torchrun or SLURM it would otherwise wait for the index files of ranks that never pack.
- What a split holds is fingerprinted (:func:`~simclr.data.pack_sources.split_fingerprint`: every file's
  name, label, size and modification time, the settings, the format): a finished or unfinished pack of the
  same fingerprint is kept or finished, one of other content is refused (or, for the automatic pack, replaced).
  A finished pack of the same fingerprint whose chunk files are not the sizes its index says
  (:func:`~simclr.data.pack_format.chunk_problem`) is packed again, saying so.
- One process packs an OUT folder at a time (:func:`pack_splits`): it holds ``OUT/.simclr-pack.lock``
  (:mod:`simclr.process_lock`: taken over when its holder is gone), the others wait with a progress line
  and then find the pack made.

Beside litdata's files each split holds ``simclr-pack.json`` (source, class names, counts, the settings, the
fingerprint)
and ``labels.npy`` (every sample's label in stored order), which stratified subsets and the kNN monitor
read without touching the images.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import shutil
import statistics
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, redirect_stdout
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from litdata.streaming.writer import BinaryWriter
from PIL import Image

from simclr.atomic import atomic_write, remove_leftover_temporaries, write_text_atomic
from simclr.data.decode import ImageDecodeError, load_image
from simclr.data.pack_format import (
    INDEX_FILE,
    INFO_FILE,
    LABELS_FILE,
    PACK_LOCK,
    PACK_SPLITS,
    SKIPPED_FILE,
    PackedSplitInfo,
    chunk_problem,
    read_pack_info,
    waiting_for_packer,
)
from simclr.data.pack_settings import PackConfig
from simclr.data.pack_sources import PackSource, pack_sources, split_fingerprint
from simclr.data.pack_workers import interrupted_on_signals, run_parts
from simclr.disk_full import DiskFull, disk_full_message, failed_path, no_room_errno
from simclr.errors import UserError
from simclr.paths import check_writable_folder
from simclr.process_lock import hold_lock
from simclr.progress import Progress
from simclr.settings import format_size

log = logging.getLogger("simclr")

__all__ = [
    "PART_SIZE",
    "PackSummary",
    "pack_dataset",
    "pack_is_current",
    "pack_split",
    "pack_splits",
]

PART_SIZE = 2048
CHUNK_BYTES = "64MB"
_PARTS_DIR = ".parts"
_PARTS_SOURCE = "source.json"  # in .parts: the fingerprint of what an unfinished pack is packing
# what litdata's writer reads to learn its rank and the processes whose index files a merge waits for
_LITDATA_DISTRIBUTED_ENV = (
    "WORLD_SIZE",
    "GLOBAL_RANK",
    "NNODES",
    "DATA_OPTIMIZER_GLOBAL_RANK",
    "DATA_OPTIMIZER_NUM_WORKERS",
    "DATA_OPTIMIZER_NUM_NODES",
)
_KEPT_FORMATS = {"JPEG", "PNG"}
_KEPT_MODES = {"RGB", "L"}
_EXIF_ORIENTATION = 0x0112
# how skipped.csv is read and written: UTF-8, and a file name that is not (bytes a Linux file system allows) as
# its bytes, through the surrogate escapes os.listdir gave it
_FILE_NAME_ERRORS = "surrogateescape"


@dataclass
class PackSummary:
    """What one split's packing produced."""

    out: Path
    images: int
    classes: int
    skipped: list[tuple[str, str]] = field(default_factory=list)
    bytes: int = 0
    resumed_parts: int = 0
    kept: bool = False  # packed earlier from the same files, left as it was

    def line(self) -> str:
        size = f"{self.bytes / 2**30:.2f} GB" if self.bytes >= 2**30 else f"{self.bytes / 2**20:.1f} MB"
        resumed = f", {self.resumed_parts} part(s) kept from an earlier run" if self.resumed_parts else ""
        kept = " (packed earlier from the same files: kept)" if self.kept else ""
        return (
            f"{self.out}: {self.images} images, {self.classes} classes, {len(self.skipped)} skipped, {size}"
            f"{resumed}{kept}"
        )


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
def _litdata_sees(**values: str) -> Iterator[None]:
    """litdata's writer reads who it is from the environment (:data:`_LITDATA_DISTRIBUTED_ENV`): inside the
    block it sees ``values`` and none of the other variables, whatever torchrun, SLURM or Lightning set in this
    process; they are restored afterwards."""
    previous = {name: os.environ.pop(name) for name in _LITDATA_DISTRIBUTED_ENV if name in os.environ}
    os.environ.update(values)
    try:
        yield
    finally:
        for name in _LITDATA_DISTRIBUTED_ENV:
            os.environ.pop(name, None)
        os.environ.update(previous)


def _part_marker(out: Path, part: int) -> Path:
    return out / _PARTS_DIR / f"{part}.json"


def _pack_part(part: int) -> _PartResult:
    job = _JOB
    assert job is not None
    indices = job.order[part * PART_SIZE : (part + 1) * PART_SIZE]
    result = _PartResult(part, [], [], 0, [])
    # litdata names a writer's chunk files after its rank: a part's rank is its number; and it prints the types
    # it infers
    with _litdata_sees(DATA_OPTIMIZER_GLOBAL_RANK=str(part)), redirect_stdout(io.StringIO()):
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
            writer.add_item(len(result.labels), {"image": encoded.data, "label": label, "path": os.fsencode(name)})
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


def _existing_pack(out: Path) -> tuple[str, str] | None:
    """``(fingerprint, what it holds)`` of the pack in ``out``, finished or not; None where there is none. A
    pack whose fingerprint cannot be read (damaged, or made before fingerprints were kept) has ``""``."""
    if (out / INFO_FILE).is_file():
        try:
            info = read_pack_info(out)
        except UserError:
            return "", "a damaged pack"
        held = f"a pack of {info.images} images of {info.source}"
        return info.fingerprint, held if info.fingerprint else f"{held} made before packs recorded their files"
    if (out / _PARTS_DIR).is_dir():
        try:
            values = json.loads((out / _PARTS_DIR / _PARTS_SOURCE).read_text())
            return str(values["fingerprint"]), f"an unfinished pack of {values['source']}"
        except (OSError, ValueError, KeyError, TypeError):
            if not any(out.glob("chunk-*")) and not any((out / _PARTS_DIR).glob("[0-9]*.json")):
                return None  # stopped before it wrote anything
            return "", "an unfinished pack of unknown content"
    return None


def _other_content(out: Path, held: str, source: PackSource, replace: bool) -> None:
    """``out`` holds a pack of something else than ``source`` now holds: a one-line refusal, or (``replace``)
    its removal, said in the log."""
    if not replace:
        raise UserError(
            f"{out} holds {held}, not what {source.description} holds now; choose another OUT, or delete {out} "
            "to pack it there"
        )
    log.warning("%s holds %s, not what %s holds now: packing it again", out, held, source.description)
    shutil.rmtree(out)


# -- one split -------------------------------------------------------------------------------------
def pack_split(
    source: PackSource,
    out: Path,
    settings: PackConfig | None = None,
    on_part: Callable[[int, int], None] | None = None,
    *,
    replace_other: bool = False,
) -> PackSummary:
    """Pack ``source`` into the litdata dataset ``out`` (created, or finished when an earlier run stopped).

    ``on_part(images_done, images_total)`` is called as parts finish (the CLI draws its progress bar
    from it). A finished pack of the same source (:func:`split_fingerprint`) is left as it is; a pack of
    other content, finished or not, is refused in one line, or removed and made again with ``replace_other``.
    """
    settings = settings or PackConfig()
    settings.validate()
    if len(source) == 0:
        raise UserError(f"{source.description} holds no image files; nothing to pack")
    out = Path(out)
    fingerprint = split_fingerprint(source, settings)
    existing = _existing_pack(out)
    if existing is not None and existing[0] != fingerprint:
        _other_content(out, existing[1], source, replace_other)
    elif (out / INFO_FILE).is_file():
        damage = chunk_problem(out)
        if damage is None:
            info = read_pack_info(out)
            shutil.rmtree(out / _PARTS_DIR, ignore_errors=True)  # left when the last run stopped after the info
            return PackSummary(out, info.images, len(info.class_names), _read_skipped(out), info.bytes, kept=True)
        # the same files, but a chunk lost or cut short since (a bad copy, a disk error): worthless as it is
        log.warning("%s is damaged (%s): packing it again", out, damage)
        shutil.rmtree(out)
    if out.exists() and any(out.iterdir()) and not (out / _PARTS_DIR).is_dir():
        raise UserError(f"{out} exists and is not an unfinished pack; choose an empty or new OUT folder")
    (out / _PARTS_DIR).mkdir(parents=True, exist_ok=True)
    if not (out / _PARTS_DIR / _PARTS_SOURCE).is_file():  # a new pack: a later run finishes it for the same files
        what = {"fingerprint": fingerprint, "source": source.description, "images": len(source)}
        write_text_atomic(out / _PARTS_DIR / _PARTS_SOURCE, json.dumps(what))

    parts = range((len(source) + PART_SIZE - 1) // PART_SIZE)
    results: dict[int, _PartResult] = {}
    for part in parts:
        finished = _read_marker(_part_marker(out, part))
        if finished is not None:
            results[part] = finished
        else:
            _clear_unfinished(out, part)
    resumed = len(results)

    def add(result: _PartResult | None) -> None:
        if result is not None:
            results[result.part] = result
        if on_part is not None:
            on_part(sum(len(r.labels) + len(r.skipped) for r in results.values()), len(source))

    add(None)  # how far an earlier run got
    global _JOB
    order = np.random.default_rng(settings.seed).permutation(len(source))
    _JOB = _PackJob(source, order, out, settings.max_side, settings.quality)
    try:
        run_parts([part for part in parts if part not in results], settings.workers, _pack_part, add)
    except Exception as exc:
        if (code := no_room_errno(exc)) is None:
            raise
        raise _no_room_for_pack(code, exc, out, [part for part in parts if part not in results]) from None
    finally:
        _JOB = None
    return _merge_parts(source, out, [results[part] for part in parts], settings, fingerprint, resumed)


def _no_room_for_pack(code: int, exc: BaseException, out: Path, unfinished: list[int]) -> DiskFull:
    """The one line of a pack that filled the disk, once the chunks of the parts it cut short are removed (their
    room given back, no truncated chunk left); finished parts are kept for the same command to go on from."""
    for part in unfinished:
        _clear_unfinished(out, part)
    packed = sum(chunk.stat().st_size for chunk in out.glob("chunk-*.bin"))
    kept = f"the parts packed so far ({format_size(packed)}) were kept" if packed else "nothing half-written was left"
    fix = "then run the same command again to finish the pack, or choose another OUT"
    return DiskFull(disk_full_message(code, failed_path(exc) or out, kept=kept, fix=fix))


def _merge_parts(
    source: PackSource, out: Path, results: list[_PartResult], settings: PackConfig, fingerprint: str, resumed: int
) -> PackSummary:
    """Merge the parts' chunk indexes into litdata's ``index.json`` and write the sidecar files."""
    labels = [label for result in results for label in result.labels]
    if not labels:
        raise UserError(f"no image of {source.description} could be decoded; nothing was packed")
    written = sum(1 for result in results if result.labels)
    with _litdata_sees(WORLD_SIZE="1", GLOBAL_RANK="0", NNODES="1"):  # rank 0 of 1 process: it waits for no one
        BinaryWriter(str(out), chunk_bytes=CHUNK_BYTES).merge(num_workers=written)
    skipped = list(source.listing_skipped) + [item for result in results for item in result.skipped]
    # names that are not UTF-8 (any bytes on Linux) are written as the bytes the file system holds
    with (
        atomic_write(out / SKIPPED_FILE) as tmp,
        open(tmp, "w", newline="", encoding="utf-8", errors=_FILE_NAME_ERRORS) as handle,
    ):
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
        max_side=settings.max_side,
        quality=settings.quality,
        median_shorter_side=int(statistics.median(s for result in results for s in result.shorter_sides)),
        seed=settings.seed,
        fingerprint=fingerprint,
    )
    # written last: its presence means the pack is complete
    write_text_atomic(out / INFO_FILE, json.dumps(asdict(info), indent=2) + "\n")
    shutil.rmtree(out / _PARTS_DIR, ignore_errors=True)
    return PackSummary(out, info.images, len(info.class_names), skipped, info.bytes, resumed)


def _read_skipped(out: Path) -> list[tuple[str, str]]:
    path = out / SKIPPED_FILE
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8", errors=_FILE_NAME_ERRORS) as handle:
        return [(row["path"], row["reason"]) for row in csv.DictReader(handle)]


def pack_dataset(
    src: str, out: Path, settings: PackConfig | None = None, on_part: Progress | None = None
) -> dict[str, PackSummary]:
    """Pack every split of ``src`` into ``out/<split>`` (:func:`pack_splits`); ``on_part(split, done, total)``
    reports progress."""
    settings = settings or PackConfig()
    check_writable_folder(Path(out), "OUT")  # before listing: a file there would end in NotADirectoryError
    data_dir = Path(settings.data_dir) if settings.data_dir is not None else None
    sources = pack_sources(src, data_dir, settings.download, settings.workers, settings.follow_links)
    return pack_splits(sources, out, settings, on_part)


# -- one OUT folder, one packer --------------------------------------------------------------------
def pack_splits(
    sources: Mapping[str, PackSource],
    out: Path,
    settings: PackConfig | None = None,
    on_part: Progress | None = None,
    *,
    replace_other: bool = False,
) -> dict[str, PackSummary]:
    """Pack every split of ``sources`` into ``out/<split>`` (:func:`pack_split`) as the one process that packs
    ``out``: it holds :data:`PACK_LOCK` meanwhile, while other processes wait (saying whom for, and how far it
    is), then find the pack made. A holder that is gone has its lock taken over and its pack finished. SIGINT
    and SIGTERM stop the pack with :class:`~simclr.errors.Interrupted` (its finished parts kept).

    ``replace_other``: a pack of other content in ``out`` is made again, and a split the sources no longer
    have is removed (the automatic pack of a folder that changed); without it they are refused.
    """
    out = Path(out)
    created = not out.exists()
    try:
        with interrupted_on_signals("packing"), hold_lock(out / PACK_LOCK, on_wait=waiting_for_packer(out)) as lock:
            if lock.took_over is not None:
                log.warning(
                    "%s: process %s on %s, which was packing it, ended before finishing; taking over "
                    "(the parts it finished are kept)",
                    out,
                    lock.took_over.get("pid"),
                    lock.took_over.get("host"),
                )
            remove_leftover_temporaries(out, recursive=True)  # of killed packers
            summaries = {}
            for split, source in sources.items():

                def report(done: int, total: int, split: str = split) -> None:
                    lock.tell(task=split, done=done, total=total)
                    if on_part is not None:
                        on_part(split, done, total)

                summaries[split] = pack_split(source, out / split, settings, report, replace_other=replace_other)
            if replace_other:
                for split in PACK_SPLITS:
                    if split not in sources and _existing_pack(out / split) is not None:
                        log.warning("%s: no %s split in the source any more; removing its pack", out, split)
                        shutil.rmtree(out / split)
            return summaries
    finally:
        if created and out.is_dir() and not any(out.iterdir()):  # refused before anything was written
            out.rmdir()


def pack_is_current(out: Path, fingerprints: Mapping[str, str]) -> bool:
    """True when ``out`` holds a finished pack of every split in ``fingerprints`` (split -> fingerprint) with
    that fingerprint, whole (every chunk of the size its index says), and no other split: what
    :func:`pack_splits` would leave as it is."""
    for split in PACK_SPLITS:
        existing = _existing_pack(Path(out) / split)
        if split not in fingerprints:
            if existing is not None:
                return False
            continue
        if existing is None or existing[0] != fingerprints[split] or not (Path(out) / split / INFO_FILE).is_file():
            return False
        if chunk_problem(Path(out) / split) is not None:  # damaged since: packed again
            return False
    return True
