"""The packed dataset's format on disk, read by the streaming side and written by the packer.

``simclr data pack SRC OUT`` writes one litdata dataset per split, ``OUT/train`` and ``OUT/test``: litdata's
chunk files and :data:`INDEX_FILE`, and beside them :data:`INFO_FILE` (:class:`PackedSplitInfo`: source,
class names, counts, the settings, the fingerprint of what was packed; written last, so its presence means the
pack is complete),
:data:`LABELS_FILE` (every sample's label in stored order) and :data:`SKIPPED_FILE` (the files left out).
:mod:`simclr.data.packed` writes them and :mod:`simclr.data.streaming` reads them; both import the names
from here. Reading a split's description also checks litdata's index (:func:`check_pack_index`): a pack is
a file anyone may hand over, and litdata would unpickle samples whose index says they are pickles.
Opening a local split checks its chunk files against the sizes the index records (:func:`chunk_problem`, a
``stat`` per chunk): a chunk truncated by a crash, two writers or a bad copy is refused in one line instead of
litdata waiting for the rest of it and ending in ``ChunkWaitTimeoutError``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from simclr.errors import UserError
from simclr.process_lock import Holder, wait_while_held
from simclr.progress import per_tenth

log = logging.getLogger("simclr")

__all__ = [
    "INDEX_FILE",
    "INFO_FILE",
    "LABELS_FILE",
    "PACK_LOCK",
    "PACK_FORMAT",
    "PACK_SPLITS",
    "READABLE_DATA_FORMATS",
    "SKIPPED_FILE",
    "SPLIT_FOLDERS",
    "PackedSplitInfo",
    "check_chunk_files",
    "check_pack_index",
    "chunk_problem",
    "find_packed_split",
    "is_packed",
    "read_pack_info",
    "wait_for_packer",
    "waiting_for_packer",
]

INDEX_FILE = "index.json"  # litdata's index of the chunks
INFO_FILE = "simclr-pack.json"
LABELS_FILE = "labels.npy"
SKIPPED_FILE = "skipped.csv"
PACK_LOCK = ".simclr-pack.lock"  # in OUT: held by the one process packing it (simclr.data.packed.pack_splits)
PACK_SPLITS = ("train", "test")  # OUT/train and OUT/test
PACK_FORMAT = "simclr-pack/1"
# the folder names a split is found under (a pack made elsewhere may name its test split val/)
SPLIT_FOLDERS = {"train": ("train",), "test": ("test", "val", "valid", "validation")}


@dataclass(frozen=True)
class PackedSplitInfo:
    """The ``simclr-pack.json`` of a packed split."""

    source: str
    class_names: list[str]
    images: int
    skipped: int
    bytes: int
    max_side: int
    quality: int
    median_shorter_side: int
    seed: int
    format: str = PACK_FORMAT
    fingerprint: str = ""  # of what was packed (pack_sources.split_fingerprint); "" in packs made before it was kept


def read_pack_info(split_dir: Path) -> PackedSplitInfo:
    """The pack description of ``split_dir``; a folder that is not a complete pack is a UserError."""
    path = Path(split_dir) / INFO_FILE
    if not (Path(split_dir) / INDEX_FILE).is_file() or not path.is_file():
        raise UserError(
            f"{split_dir} is not a packed dataset (no {INDEX_FILE} and {INFO_FILE}); "
            "create it with 'simclr data pack SRC OUT' (an interrupted pack finishes when re-run)"
        )
    try:
        values = json.loads(path.read_text())
        info = PackedSplitInfo(**values)
    except (ValueError, TypeError, RecursionError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise UserError(f"{path} is damaged ({reason}); pack the dataset again") from None
    if info.format != PACK_FORMAT:
        raise UserError(
            f"{path} was written by another simclr version ({str(info.format)[:40]}); pack the dataset again"
        )
    check_pack_index(Path(split_dir))
    return info


# How litdata may store a sample's fields, of those simclr reads: the packer writes bytes and ints. litdata also
# offers "pickle" (and serializers that build other Python objects), which would run code from a pack anyone
# handed over as it is streamed.
READABLE_DATA_FORMATS = frozenset({"bytes", "int", "str"})


def check_pack_index(split_dir: Path) -> None:
    """Refuse a packed split whose litdata ``index.json`` is not a JSON description of chunks, or stores its
    samples in a form simclr does not read (a pickle): checked before litdata opens it."""
    path = split_dir / INDEX_FILE
    try:
        index = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise UserError(f"{path} is damaged ({reason}); pack the dataset again") from None
    config = index.get("config") if isinstance(index, dict) else None
    formats = config.get("data_format") if isinstance(config, dict) else None
    if not isinstance(formats, list) or not isinstance(index.get("chunks"), list):
        raise UserError(f"{path} is not litdata's index of a packed split; pack the dataset again")
    unread = [str(kind)[:40] for kind in formats if kind not in READABLE_DATA_FORMATS]
    if unread:
        readable = ", ".join(sorted(READABLE_DATA_FORMATS))
        raise UserError(
            f"{path} stores samples as {unread[0]!r}, which simclr does not read (only {readable}: a pickled "
            "sample would run code when read); pack the dataset again with 'simclr data pack'"
        )


def chunk_problem(split_dir: Path) -> str | None:
    """What is wrong with the chunk files of the local packed split ``split_dir``, or None: a chunk its
    ``index.json`` lists that is missing, or whose size is not the ``chunk_bytes`` the index records for it
    (litdata writes that size, the file's, for chunks it does not compress; compressed chunks, which simclr never
    writes, are not checked). Only ``stat`` calls: the bytes themselves are checked as they are decoded
    (:mod:`simclr.data.streaming`). The index itself is :func:`check_pack_index`'s to judge."""
    try:
        index = json.loads((Path(split_dir) / INDEX_FILE).read_text())
        chunks, compression = index["chunks"], index["config"].get("compression")
    except (OSError, ValueError, RecursionError, KeyError, TypeError, AttributeError):
        return f"its {INDEX_FILE} cannot be read"
    if compression:
        return None
    for chunk in chunks:
        name, expected = (chunk.get("filename"), chunk.get("chunk_bytes")) if isinstance(chunk, dict) else (None, None)
        if not isinstance(name, str) or not isinstance(expected, int) or os.path.basename(name) != name:
            return f"its {INDEX_FILE} lists a chunk without a plain file name and size"
        try:
            size = (Path(split_dir) / name).stat().st_size
        except FileNotFoundError:
            return f"chunk {name} is missing"
        except OSError as exc:
            return f"chunk {name} cannot be read ({exc.strerror or exc})"
        if size != expected:
            return f"chunk {name} is {size} bytes, its {INDEX_FILE} says {expected}"
    return None


def check_chunk_files(split_dir: Path) -> None:
    """Refuse the local packed split ``split_dir`` in one line when a chunk file is missing or not the size its
    index records (:func:`chunk_problem`)."""
    problem = chunk_problem(split_dir)
    if problem is not None:
        raise UserError(
            f"packed split {split_dir} is damaged: {problem} (a crash, two writers or a bad copy); pack it again "
            "with 'simclr data pack' (or copy it again whole)"
        )


def waiting_for_packer(out: Path) -> Callable[[Holder], None]:
    """What a process waiting for another to pack ``out`` says: who packs it (once per holder), then how far
    it is, once per tenth of each split (from what the holder publishes in the lock)."""
    told: set[tuple[object, object]] = set()
    tenths = per_tenth(lambda split, done, total: log.info("waiting for %s %s: %d/%d", out, split, done, total))

    def on_wait(holder: Holder) -> None:
        who = (holder.get("pid"), holder.get("host"))
        if holder and who not in told:
            told.add(who)
            log.info("waiting for process %s on %s to finish packing %s (since %s)", *who, out, holder.get("since"))
        split, done, total = holder.get("task"), holder.get("done"), holder.get("total")
        if isinstance(split, str) and isinstance(done, int) and isinstance(total, int):
            tenths(split, done, total)

    return on_wait


def wait_for_packer(out: Path) -> None:
    """Before reading the packed dataset ``out``: wait, saying for whom, while a process packs it (it holds
    :data:`PACK_LOCK`), so a reader never streams chunks still being written (litdata would wait for them and
    end in ``ChunkWaitTimeoutError``). A packer that is gone is not waited for: its unfinished pack is then
    refused in one line by :func:`read_pack_info`. The lock is only read: a reader may have no right to write."""
    wait_while_held(Path(out).expanduser() / PACK_LOCK, on_wait=waiting_for_packer(out))


def find_packed_split(root: Path, split: str) -> Path | None:
    """``root/train`` or ``root/test`` (also ``val``) when packed; ``root`` itself for ``train`` when it is
    one packed split; None when the split is absent."""
    root = Path(root).expanduser()
    for name in SPLIT_FOLDERS.get(split, (split,)):
        if (root / name / INDEX_FILE).is_file():
            return root / name
    if split == "train" and (root / INDEX_FILE).is_file():
        return root
    return None


def is_packed(root: Path) -> bool:
    """True for the output of ``simclr data pack`` (its ``train/`` split, or a split folder itself)."""
    return find_packed_split(Path(root), "train") is not None
