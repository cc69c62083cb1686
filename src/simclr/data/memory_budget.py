"""Whether a split is held in memory or streamed: one decision per machine, the same in all its processes.

Every process of a run on one machine (the ranks torchrun, SLURM or Lightning's launcher start there) holds
its own decoded copy of an in-memory split, so the memory the run needs is the decoded size times the
processes of the machine. The default budget is a fixed part of the machine's memory (its physical memory, or
the container's limit when lower), not of the memory free at the moment a process asks: every process of the
machine then reaches the same verdict from the same numbers, whenever it starts, and none decodes while the
others stream. The memory free at that moment only adds a warning.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from simclr.settings import format_size

__all__ = [
    "MEMORY_FRACTION",
    "MemoryDecision",
    "decide_memory",
    "default_memory_budget",
    "is_first_local_process",
    "local_processes",
    "machine_memory",
]

log = logging.getLogger("simclr")

MEMORY_FRACTION = 0.5  # of the machine's memory, the default budget for holding decoded images
# the memory limit of the container (cgroup v2, then v1), when it runs in one
_CGROUP_LIMITS = (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))


def _meminfo(field: str) -> int | None:
    """A ``/proc/meminfo`` field in bytes, or None where there is none (not Linux)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def machine_memory() -> int:
    """The memory the machine's processes may use together: the physical memory, or the container's limit
    when it is lower. It does not change while the machine runs, so every process reads the same number."""
    total = _meminfo("MemTotal") or os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in _CGROUP_LIMITS:
        try:
            limit = int(path.read_text().split()[0])  # "max" (no limit) is not a number
        except (OSError, ValueError, IndexError):
            continue
        total = min(total, limit)
    return total


def default_memory_budget() -> int:
    """:data:`MEMORY_FRACTION` of :func:`machine_memory`, for all the processes of the machine together."""
    return int(machine_memory() * MEMORY_FRACTION)


def local_processes(configured: int = 1) -> int:
    """How many processes of the run share the machine: ``LOCAL_WORLD_SIZE`` where torchrun set it, else the
    ``configured`` count (a run's ``--devices``, which Lightning's launcher and SLURM start per machine)."""
    value = os.environ.get("LOCAL_WORLD_SIZE", "")
    return int(value) if value.isdigit() and int(value) > 0 else max(1, configured)


def is_first_local_process() -> bool:
    """True in the process that speaks for the machine: local rank 0 (torchrun's and Lightning's ``LOCAL_RANK``,
    SLURM's ``SLURM_LOCALID``), or a process that is not one of several."""
    return os.environ.get("LOCAL_RANK", os.environ.get("SLURM_LOCALID", "0")) == "0"


@dataclass(frozen=True)
class MemoryDecision:
    """The verdict for one split: its decoded size in one process, the processes of the machine that each hold
    a copy, and the budget they share (``given``: set by ``--memory-budget``, else the default)."""

    decoded_bytes: int
    processes: int
    budget: int
    given: bool

    @property
    def needed(self) -> int:
        return self.decoded_bytes * self.processes

    @property
    def fits(self) -> bool:
        return self.needed <= self.budget

    def summary(self) -> str:
        """``take X decoded[, Y for the N processes of the machine]; memory budget Z[ (why)]``."""
        copies = f", {format_size(self.needed)} for the {self.processes} processes of the machine"
        default = f" ({MEMORY_FRACTION:.0%} of the machine's {format_size(machine_memory())})"
        return (
            f"take {format_size(self.decoded_bytes)} decoded{copies if self.processes > 1 else ''}; memory budget "
            f"{format_size(self.budget)}{'' if self.given else default}"
        )


def decide_memory(decoded_bytes: int, budget: int | None, processes: int = 1) -> MemoryDecision:
    """Hold a split of ``decoded_bytes`` per process in memory, or not, for ``processes`` processes of the
    machine sharing ``budget`` bytes (None: :func:`default_memory_budget`). The first process of the machine
    warns when the memory free now is below what holding the split needs (the verdict stays the same in every
    process: it depends on fixed numbers only)."""
    given = budget is not None
    shared = budget if budget is not None else default_memory_budget()
    decision = MemoryDecision(decoded_bytes, max(1, processes), shared, given)
    free = _meminfo("MemAvailable")
    if decision.fits and free is not None and decision.needed > free and is_first_local_process():
        log.warning(
            "holding the data needs %s and only %s of memory is free now; the run may run out of memory "
            "(free some, or pass a smaller --memory-budget to stream it)",
            format_size(decision.needed),
            format_size(free),
        )
    return decision
