"""Atomic file writes: a reader sees the old file or the new one whole, never half of either.

Every file simclr writes goes through :func:`atomic_write`: the content is written to a temporary file in the
same folder (``.NAME.tmp-PID``), flushed to the disk, and renamed over the target in one step. A process killed
mid-write leaves only that temporary behind; :func:`remove_leftover_temporaries` (called when a run-like
directory is opened) clears the ones whose writer is gone. A write that finds no room on the disk (whatever
library made it) removes the temporary, keeps the previous file, and raises :class:`~simclr.disk_full.DiskFull`
naming the file, the room it needs and the fix. This module imports nothing of simclr's domain and no torch,
so every layer can use it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from simclr.disk_full import DiskFull, disk_full_message, no_room_errno

TEMPORARY_MARK = ".tmp-"
_TEMPORARY_NAME = re.compile(r"^\..+\.tmp-(\d+)$")


def temporary_path(path: Path) -> Path:
    """Where :func:`atomic_write` writes ``path`` before renaming it: ``.NAME.tmp-PID`` beside it. The pid
    keeps two processes writing the same file from sharing a temporary."""
    return path.with_name(f".{path.name}{TEMPORARY_MARK}{os.getpid()}")


@contextmanager
def atomic_write(
    path: Path, *, durable: bool = True, what: str = "file", fix: str = "or choose another --out"
) -> Iterator[Path]:
    """Yields the temporary path to write ``path``'s new content to (with any library); when the block ends
    without an error the temporary is flushed to the disk (unless not ``durable``), given the mode of a file
    the process creates, and renamed over ``path``. On an error the temporary is removed and ``path`` is left
    as it was. When the disk has no room for it, the error is :class:`~simclr.disk_full.DiskFull`, one line
    naming ``path`` as a ``what`` (``"checkpoint"``), the previous version's size (what the new one will about
    need), and the fix: free space, then ``fix``.

    ``durable=False`` skips the flush, for many small files that a rerun re-makes anyway (cropped images):
    the rename is still atomic for a reader, but a power cut may leave the file empty.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> with atomic_write(folder / "note.txt") as tmp:
    ...     _ = tmp.write_text("written whole or not at all")
    >>> (folder / "note.txt").read_text(), sorted(path.name for path in folder.iterdir())
    ('written whole or not at all', ['note.txt'])
    """
    path = Path(path)
    tmp = temporary_path(path)
    try:
        yield tmp
        # some writers (safetensors) create their file with mode 0600; a run's files are meant to be shared
        os.chmod(tmp, 0o666 & ~_umask())
        if durable:
            _flush_to_disk(tmp)
        os.replace(tmp, path)
    except Exception as exc:
        code = no_room_errno(exc, written_to=tmp)
        if code is None:
            raise
        written = _size_or_none(tmp)
        tmp.unlink(missing_ok=True)  # before the message, so that the free space it reports counts this file's room
        previous = _size_or_none(path)
        kept = f"the previous {what} was kept" if previous is not None else "nothing half-written was left"
        message = disk_full_message(code, path, written=written, needed=previous, kept=kept, fix=fix)
        raise DiskFull(message) from None
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(
    path: Path, text: str, *, durable: bool = True, what: str = "file", fix: str = "or choose another --out"
) -> None:
    """Write ``text`` (UTF-8) to ``path`` through :func:`atomic_write` (``what`` and ``fix`` word a full disk)."""
    with atomic_write(path, durable=durable, what=what, fix=fix) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes_atomic(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` through :func:`atomic_write`."""
    with atomic_write(path, durable=durable) as tmp:
        tmp.write_bytes(data)


def is_temporary(path: Path) -> bool:
    """True for a name :func:`temporary_path` makes."""
    return _TEMPORARY_NAME.match(path.name) is not None


def leftover_temporaries(folder: Path, *, recursive: bool = False) -> list[Path]:
    """Temporaries of writers that are no longer running (a killed process's half-written files), in
    ``folder`` (and its sub-folders when ``recursive``). A live writer's temporary is not listed."""
    if not folder.is_dir():
        return []
    candidates = folder.rglob(".*") if recursive else folder.glob(".*")
    found = []
    for candidate in candidates:
        match = _TEMPORARY_NAME.match(candidate.name)
        if match and candidate.is_file() and not _is_running(int(match.group(1))):
            found.append(candidate)
    return sorted(found)


def remove_leftover_temporaries(folder: Path, *, recursive: bool = False) -> list[Path]:
    """Delete :func:`leftover_temporaries`; returns what was removed."""
    removed = leftover_temporaries(folder, recursive=recursive)
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def _size_or_none(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _flush_to_disk(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _is_running(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (the writer of a temporary; this process counts)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OverflowError:
        return False
    return True


def _umask() -> int:
    """The process umask: from /proc on Linux (reading it elsewhere means setting it, then restoring it,
    which another thread creating a file in between would see)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
