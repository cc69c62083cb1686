"""Where simclr caches what it can make again (automatic packs, streamed chunks, remote descriptions)."""

from __future__ import annotations

import os
from pathlib import Path

from simclr.errors import UserError
from simclr.paths import nearest_existing

CACHE_ENV = "SIMCLR_CACHE"  # the folder simclr caches in (default ~/.cache/simclr)


def cache_folder() -> Path:
    """``$SIMCLR_CACHE``, else ``~/.cache/simclr``. A cache folder that is a file, or lies under one, is a
    one-line UserError naming the variable: every cache below it would otherwise fail deep in its writer."""
    folder = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "simclr").expanduser()
    existing = nearest_existing(folder)
    if not existing.is_dir():
        where = "is a file" if existing == Path(os.path.abspath(folder)) else f"lies under the file {existing}"
        raise UserError(
            f"the cache folder {folder} ({CACHE_ENV}) {where}, not a folder; set {CACHE_ENV} to a folder, or unset "
            "it to cache in ~/.cache/simclr"
        )
    return folder
