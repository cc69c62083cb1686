"""Writes that find no room on the disk: recognizing one, whatever library made it, and its one line.

A full file system (ENOSPC), a used-up quota (EDQUOT) or a file over the process's size limit (EFBIG) is a
problem the user fixes, not a bug: it becomes :class:`DiskFull`, a :class:`~simclr.errors.UserError` whose
one line names the file, how much room it needed when that is known, what was kept, and the fix. Libraries
that write outside Python say it in their own ways (torch a RuntimeError from its zip writer, safetensors an
error holding the OS's words); :func:`no_room_errno` reads them all. :func:`simclr.atomic.atomic_write` raises
DiskFull for every file simclr writes, and the CLI words any other write that found no room the same way.
"""

from __future__ import annotations

import errno
import os
import re
import resource
import shutil
from pathlib import Path

from simclr.errors import UserError
from simclr.settings import format_size

# what each errno of a write that found no room means, in the words of the one line
_NO_ROOM = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EFBIG: "the file is larger than this process may write (the file size limit, ulimit -f)",
}
# how libraries that write outside Python (safetensors' Rust, onnx's C++) spell those errnos in their messages
_NO_ROOM_WORDS = {
    errno.ENOSPC: ("No space left on device", f"os error {errno.ENOSPC})"),
    errno.EDQUOT: ("Disk quota exceeded", f"os error {errno.EDQUOT})"),
    errno.EFBIG: ("File too large", f"os error {errno.EFBIG})"),
}
# writers that lose the errno: torch's zip writer to a path (torch.save, torch.jit.save) and numpy's short write
# (``N requested and M written``, what a write that ran out of room returns before it fails)
_WRITER_FAILURES = (
    re.compile(r"unexpected pos|PytorchStreamWriter failed writing|iostream error"),
    re.compile(r"\d+ requested and \d+ written"),
)
# below this much free space a torch writer failure is taken for a full disk (a failed write leaves ~0 free)
_NEARLY_FULL = 1 << 20


class DiskFull(UserError):
    """A write that found no room (module docstring); its message is :func:`disk_full_message`'s one line."""


def no_room_errno(exc: BaseException, written_to: Path | None = None) -> int | None:
    """ENOSPC, EDQUOT or EFBIG when ``exc`` (or an exception it was raised from or while handling) is a write
    that found no room; None otherwise. ``written_to``, the file being written, lets a failure of a writer
    that lost the errno (torch's zip writer, numpy's short write) be judged by the file system: over the file
    size limit is EFBIG, a file system with (almost) nothing free is ENOSPC."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _NO_ROOM:
            return current.errno
        text = str(current)
        for code, words in _NO_ROOM_WORDS.items():
            if any(word in text for word in words):
                return code
        current = current.__cause__ or current.__context__
    if written_to is not None and any(failure.search(str(exc)) for failure in _WRITER_FAILURES):
        return _judged_by_file_system(written_to)
    return None


def failed_path(exc: BaseException) -> Path | None:
    """The file an OSError in ``exc``'s chain names (its ``filename``): what could not be written."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and isinstance(current.filename, (str, os.PathLike)):
            return Path(current.filename)
        current = current.__cause__ or current.__context__
    return None


def disk_full_message(
    code: int,
    path: Path | None,
    *,
    written: int | None = None,
    needed: int | None = None,
    kept: str = "nothing half-written was left",
    fix: str = "or choose another --out",
) -> str:
    """The one line of a write that found no room (``code`` from :func:`no_room_errno`): what could not be
    written and where, how much room it needed when that is known (``needed``, e.g. the size of the file's
    previous version; ``written``, what it had written when it failed), what was ``kept``, and the fix: room
    on the file system that holds ``path``, then ``fix``.

    >>> disk_full_message(errno.EDQUOT, None, written=2_000_000).split("; ")[0]
    'the disk quota is used up: a file could not be written (1.9 MB written when it failed)'
    """
    what = f"{path} could not be written" if path is not None else "a file could not be written"
    place = mount_point(path) if path is not None else None
    details = []
    if written:
        details.append(f"{format_size(written)} written when it failed")
    if needed:
        details.append(f"it needs about {format_size(needed)}")
    if place is not None:
        details.append(f"{format_size(shutil.disk_usage(place).free)} free on {place}")
    detail = f" ({', '.join(details)})" if details else ""
    if code == errno.EFBIG:
        remedy = f"raise the file size limit (ulimit -f), {fix}"
    else:
        remedy = f"free space on {place if place is not None else 'that file system'}, {fix}"
    return f"{_NO_ROOM[code]}: {what}{detail}; {kept}; {remedy}"


def mount_point(path: Path) -> Path | None:
    """The mount point of the file system that holds ``path`` (or would hold it: its nearest existing folder)."""
    place = Path(os.path.abspath(path))
    try:
        while not place.exists() and place != place.parent:
            place = place.parent
        while not os.path.ismount(place):
            place = place.parent
    except OSError:
        return None
    return place


def _judged_by_file_system(path: Path) -> int | None:
    """EFBIG when ``path`` reached the process's file size limit, ENOSPC when its file system has (almost)
    nothing free, else None: what a writer that lost the errno most likely met."""
    try:
        size = path.stat().st_size if path.exists() else 0
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if limit != resource.RLIM_INFINITY and size >= limit:
            return errno.EFBIG
        place = mount_point(path)
        if place is not None and shutil.disk_usage(place).free < _NEARLY_FULL:
            return errno.ENOSPC
    except OSError:
        return None
    return None
