"""The automatic pack: data over the memory budget (an image folder, ImageNet) is packed once, then streamed.

Where it goes: ``--pack-dir`` when given (that folder itself), else an entry of the cache folder,
``$SIMCLR_CACHE/packed`` (``~/.cache/simclr/packed`` without the variable). An entry is named after the folder
and keyed by what it holds, ``NAME-PLACE-CONTENT``: PLACE from the folder's path, CONTENT from the
fingerprints of its splits (:func:`~simclr.data.pack_sources.split_fingerprint`: the file list with sizes and
modification times, the class names, the pack settings, the format). A folder that changed (files added or
edited, a class renamed) has other fingerprints, so it is packed into a new entry, and the log names the
entries of its earlier content, left for runs that may still stream from them. With ``--pack-dir``, a pack of
other content in that folder is replaced, saying so.

Several processes needing the same pack at once (the ranks of torchrun or SLURM, on one machine or on nodes
sharing the file system; two runs) go through :func:`~simclr.data.packed.pack_splits`: one packs, the others
wait, saying for whom and how far it is, and a packer that is gone has its lock taken over and its pack
finished. A current pack is found without waiting for the lock, so many ranks start together.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
from collections.abc import Mapping
from functools import partial
from pathlib import Path

from simclr.data.cache_folder import CACHE_ENV, cache_folder
from simclr.data.pack_format import INFO_FILE, PACK_SPLITS, read_pack_info
from simclr.data.pack_settings import PackConfig
from simclr.data.pack_sources import pack_sources, split_fingerprint
from simclr.data.packed import pack_is_current, pack_splits
from simclr.errors import UserError
from simclr.paths import check_writable_folder
from simclr.progress import logged_progress
from simclr.settings import format_size

__all__ = ["automatic_pack"]

log = logging.getLogger("simclr")

_NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS)  # the cache folder cannot take the pack


def automatic_pack(src: str, root: Path, pack_dir: Path | None, settings: PackConfig) -> Path:
    """The pack of ``src`` (a folder, or a dataset whose files are under ``root``) to stream: found current, or
    made now (by this process or another one it waits for) in ``pack_dir`` or the cache entry of its content."""
    data_dir = Path(settings.data_dir) if settings.data_dir is not None else None
    sources = pack_sources(src, data_dir, settings.download, settings.workers, settings.follow_links)
    checking = logged_progress("checking the files of")  # said when it takes more than a few seconds
    fingerprints = {
        split: split_fingerprint(source, settings, partial(checking, f"{root} {split}"))
        for split, source in sources.items()
    }
    place = _place(src, root)
    target = pack_dir.expanduser() if pack_dir is not None else _entry(place, root, fingerprints)
    if pack_is_current(target, fingerprints):
        log.info("streaming %s from %s, packed earlier from the same files", root, target)
        return target
    if pack_dir is None:
        _say_earlier_packs(root, place, target)
    if pack_dir is not None:  # a file there would end in NotADirectoryError deep in the packer
        check_writable_folder(target, "--pack-dir")
    log.info("packing %s into %s (once: later runs on the same files stream from it)", root, target)
    try:
        summaries = pack_splits(sources, target, settings, logged_progress("packing"), replace_other=True)
    except OSError as exc:
        if exc.errno not in _NO_ROOM:
            raise
        raise UserError(
            f"cannot pack {root} into {target} ({exc.strerror or exc}); set --pack-dir or {CACHE_ENV} to a folder "
            "with room for it"
        ) from None
    for summary in summaries.values():
        log.info("packed %s", summary.line())
    return target


def _place(src: str, root: Path) -> str:
    """What names the source's place: its folder's path (and the dataset, for a dataset read from a folder)."""
    resolved = str(root.resolve())
    named = resolved if src == resolved else f"{src}:{resolved}"
    return hashlib.sha1(named.encode()).hexdigest()[:8]


def _entry(place: str, root: Path, fingerprints: Mapping[str, str]) -> Path:
    """The cache entry of the folder at ``place`` holding content ``fingerprints``."""
    content = hashlib.sha256(json.dumps(dict(fingerprints), sort_keys=True).encode()).hexdigest()[:12]
    return cache_folder() / "packed" / f"{root.resolve().name}-{place}-{content}"


def _say_earlier_packs(root: Path, place: str, target: Path) -> None:
    """Name the cache entries of the folder's earlier content: it changed since they were made."""
    for earlier in sorted(target.parent.glob(f"{root.resolve().name}-{place}-*")):
        if earlier == target or not earlier.is_dir():
            continue
        try:
            splits = [earlier / split for split in PACK_SPLITS if (earlier / split / INFO_FILE).is_file()]
            infos = [read_pack_info(split) for split in splits]
        except UserError:  # damaged: named all the same
            infos = []
        held = f"{sum(info.images for info in infos)} images, {format_size(sum(info.bytes for info in infos))}"
        log.warning(
            "%s changed since it was packed into %s (%s): packing it again; the earlier pack is left for runs that "
            "may stream from it (delete it to free the space)",
            root,
            earlier,
            held if infos else "unfinished",
        )
