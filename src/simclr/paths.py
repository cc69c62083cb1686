"""Paths a user hands over, checked before any work: names the file system can hold, a file a command is about
to write, and a folder a command is about to write into.

The operating system says what is wrong with a path only when it is used, as an ``OSError`` deep in a run
(``[Errno 36] File name too long``, ``IsADirectoryError`` from the final rename of an atomic write,
``FileExistsError`` when a parent is a file, ``PermissionError``). These checks say it first, in one line
naming the setting and the fix: :func:`check_path_names` for every path setting
(:func:`simclr.settings.check_values` runs it), :func:`check_output_file` for the file a command writes, and
:func:`check_writable_folder` for the folder a run, an evaluation or a pack is written into. They import
nothing heavy: the CLI runs them before torch is loaded.
"""

from __future__ import annotations

import os
from pathlib import Path

from simclr.errors import UserError

__all__ = [
    "ROOM_FOR_TEMPORARIES",
    "check_output_file",
    "check_path_names",
    "check_writable_folder",
    "name_limits",
    "nearest_existing",
]

# What a written file's name needs beyond itself: simclr.atomic writes through ".NAME.tmp-PID" beside it, and
# some outputs have sidecars (NAME.index.csv beside embeddings).
ROOM_FOR_TEMPORARIES = 32
_FALLBACK_NAME_MAX, _FALLBACK_PATH_MAX = 255, 4096  # Linux's, where the file system does not say


def nearest_existing(path: Path) -> Path:
    """``path`` itself when it exists, else its closest ancestor that does (the folder a new path goes into)."""
    path = Path(os.path.abspath(path))
    while not os.path.lexists(path) and path.parent != path:
        path = path.parent
    return path


def name_limits(path: Path) -> tuple[int, int]:
    """``(longest file name, longest path)`` in bytes on the file system that holds (or would hold) ``path``."""
    where = nearest_existing(path)
    where = where if where.is_dir() else where.parent
    try:
        return int(os.pathconf(where, "PC_NAME_MAX")), int(os.pathconf(where, "PC_PATH_MAX"))
    except (OSError, ValueError, AttributeError):  # no pathconf here, or a name it does not know
        return _FALLBACK_NAME_MAX, _FALLBACK_PATH_MAX


def _byte_length(text: str) -> int:
    return len(os.fsencode(text))


def _shown(text: str) -> str:
    return repr(text if len(text) <= 24 else text[:12] + "..." + text[-9:])


def check_path_names(text: str, name: str, fix: str, *, room: int = 0) -> None:
    """Refuse path ``text`` (setting ``name``; ``fix`` says how) when a part of it is longer than a file name may
    be on its file system, or the whole longer than a path may be; ``room`` bytes are kept free in the last
    part (the temporary an atomic write goes through). URLs (``s3://...``) are the object store's to judge."""
    if "://" in text or not text:
        return
    path = Path(os.path.expanduser(text))
    name_max, path_max = name_limits(path)
    parts = path.parts
    for index, part in enumerate(parts):
        limit = name_max - (room if index == len(parts) - 1 else 0)
        if _byte_length(part) > limit:
            why = f" (the file system allows {name_max}, less room for the temporary it is written through)"
            raise UserError(
                f"{name} has a name of {_byte_length(part)} bytes ({_shown(part)}), more than the {limit} a file "
                f"name may have{why if limit < name_max else ' on this file system'}; {fix} with a shorter name"
            )
    if _byte_length(os.path.abspath(path)) > path_max - room:
        raise UserError(
            f"{name} is a path of {_byte_length(os.path.abspath(path))} bytes, more than the {path_max - room} "
            f"this file system allows; {fix} with a shorter path"
        )


def check_writable_folder(path: Path, flag: str) -> None:
    """Refuse a folder a command is about to create or write into (``flag`` chose it) when it is a file, lies
    under a file, or this user may not write there; before any work, so nothing is computed for nothing."""
    path = Path(path).expanduser()
    existing = nearest_existing(path)
    if existing == Path(os.path.abspath(path)) and not existing.is_dir():
        raise UserError(f"{path} is a file, not a folder; choose another {flag}")
    if not existing.is_dir():
        raise UserError(f"cannot create {path}: {existing} is a file, not a folder; choose another {flag}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(
            f"cannot write into {existing}: permission denied; choose a folder you may write to with {flag}"
        )


def check_output_file(
    path: Path, *, overwrite: bool | None, flag: str = "--out", parent_must_exist: bool = True
) -> None:
    """Refuse the file a command is about to write (``flag`` names it) before any work: a name the file system
    cannot hold (with room for the temporary it is written through), a folder (``--overwrite`` replaces files,
    never folders), a path under a file, a folder this user may not write into, a missing parent folder
    (unless the command creates it: ``parent_must_exist=False``), and an existing file unless ``overwrite``
    (None: the command always replaces its output, as a report does)."""
    path = Path(path).expanduser()
    check_path_names(str(path), flag.lstrip("-").replace("-", "_"), f"fix {flag}", room=ROOM_FOR_TEMPORARIES)
    if path.is_dir():
        note = " (--overwrite replaces files only)" if overwrite is not None else ""
        raise UserError(f"cannot write {path}: it is a folder{note}; choose another {flag}")
    existing = nearest_existing(path.parent)
    if not existing.is_dir():
        raise UserError(f"cannot write {path}: {existing} is a file, not a folder; choose another {flag}")
    if parent_must_exist and not path.parent.is_dir():
        raise UserError(f"cannot write {path}: folder {path.parent} does not exist; create it first")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"cannot write {path}: permission denied in {existing}; choose another {flag}")
    if overwrite is False and path.exists():
        raise UserError(f"{path} already exists; pass --overwrite to replace it or choose another {flag}")
