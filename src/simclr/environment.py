"""What a run resolved and where it ran, for ``RUN_DIR/environment.yaml``.

config.yaml keeps the settings as asked for (``precision: auto``, ``lr: null``: what ``--config`` reruns);
this record keeps what they became on the machine (``bf16-mixed``, the scaled learning rate) and the
software and hardware that produced the numbers, so a result can be traced without the original machine.
"""

from __future__ import annotations

import os
import platform
import shlex
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from simclr.version import __version__

_PACKAGES = ("torch", "torchvision", "lightning", "litdata", "safetensors", "numpy")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux, where platform.processor() is often empty)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit(folder: Path) -> dict[str, Any] | None:
    """The commit checked out in ``folder`` (and whether the working tree has changes), when it is a git
    working tree and git is installed; None otherwise."""
    try:
        head = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return None
        status = subprocess.run(
            ["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip())}


def environment_record() -> dict[str, Any]:
    """Versions (simclr, Python, torch, Lightning, ...; CUDA and cuDNN), CPU and GPU models, the git commit of
    the working directory, host, command line and time."""
    import torch  # only when a run records its versions: importing this module stays light

    gpus = (
        [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    )
    return {
        "simclr": __version__,
        "python": platform.python_version(),
        # torch's own version string keeps the build's local tag (+cu130, +cpu) that the metadata drops
        "packages": {name: _version(name) for name in _PACKAGES} | {"torch": str(torch.__version__)},
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "gpus": gpus,
        "git": git_commit(Path.cwd()),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv and sys.argv[0] else None,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
