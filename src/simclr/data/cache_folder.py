"""Where simclr caches what it can make again (automatic packs, streamed chunks, remote descriptions)."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "SIMCLR_CACHE"  # the folder simclr caches in (default ~/.cache/simclr)


def cache_folder() -> Path:
    """``$SIMCLR_CACHE``, else ``~/.cache/simclr``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "simclr").expanduser()
