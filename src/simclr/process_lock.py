"""A lock file that names the process holding it, for work that one process at a time may do in a folder that
several processes reach: a run directory (:mod:`simclr.runs`), a pack being made (:mod:`simclr.data.pack_cache`).

The lock is a small JSON file created atomically (``O_EXCL``) that holds its holder's pid, host, process start
time and a random token. Whether the holder is gone is decided without trusting clocks:

- a holder on this host is gone when its process has ended, or its pid now names a later process;
- a holder on another machine (nodes sharing a file system) cannot be asked, so :func:`hold_lock` refreshes
  its lock every :data:`HEARTBEAT_SECONDS` while it works, and a waiter that sees the lock unchanged for
  :data:`STALE_SECONDS` of its own time counts that holder gone.

A gone holder's lock is taken over by one waiter only: the takeover is itself claimed with a second lock file
(``NAME.takeover``), so two waiters that find the same dead holder never both win, and neither removes the
lock that the other has just created. This module imports nothing of simclr's domain and no torch.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from simclr.atomic import write_text_atomic

__all__ = [
    "HEARTBEAT_SECONDS",
    "STALE_SECONDS",
    "HeldLock",
    "ended_on_this_host",
    "hold_lock",
    "process_start",
    "read_lock",
    "this_process",
    "try_create",
    "wait_while_held",
]

HEARTBEAT_SECONDS = 5.0  # how often a holder refreshes its lock
STALE_SECONDS = 60.0  # a lock of another machine unchanged for this long has lost its holder
Holder = dict[str, object]


def process_start(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot), or None when it does not run: with the
    pid, it tells a live lock holder from a later process that was given the same pid."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return "unknown"


def this_process() -> Holder:
    """What a lock held by this process says about it: pid, host, process start, when, and a random token
    (two locks of the same process are told apart by it)."""
    pid = os.getpid()
    return {
        "pid": pid,
        "host": socket.gethostname(),
        "start": process_start(pid),
        "since": time.ctime(),
        "token": secrets.token_hex(8),
    }


def read_lock(lock: Path) -> Holder:
    """The content of a lock file; empty when it is missing, unreadable or being written."""
    try:
        value = json.loads(Path(lock).read_text())
        return value if isinstance(value, dict) else {}
    except (OSError, ValueError):
        return {}


def ended_on_this_host(holder: Holder) -> bool:
    """A lock taken on this host whose process has ended (or whose pid now names another process)."""
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False
    start = process_start(int(holder["pid"]))  # type: ignore[call-overload]
    return start is None or (start != "unknown" and start != holder.get("start"))


def try_create(lock: Path, record: Holder) -> bool:
    """Create ``lock`` holding ``record`` unless it exists; True when this call created it."""
    try:
        descriptor = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(descriptor, "w") as handle:
        json.dump(record, handle)
    return True


class _Refreshes:
    """Whether the holder a waiter keeps finding is gone: ended here, or (on another machine, or a lock that
    cannot be read) unchanged for ``stale_after`` seconds of the waiter's own monotonic clock."""

    def __init__(self, stale_after: float) -> None:
        self.stale_after = stale_after
        self.seen: Holder | None = None
        self.since = time.monotonic()

    def gone(self, holder: Holder) -> bool:
        if ended_on_this_host(holder):
            return True
        if holder.get("host") == socket.gethostname() and holder.get("pid") is not None:
            return False  # alive here: its pid says so, however long it works
        if holder != self.seen:
            self.seen, self.since = holder, time.monotonic()
            return False
        return time.monotonic() - self.since >= self.stale_after


def _take_over(lock: Path, gone: Holder, stale_after: float) -> bool:
    """Remove ``lock`` if it still holds ``gone``, as the one waiter that claimed the takeover; True when
    this call removed it."""
    guard = lock.with_name(lock.name + ".takeover")
    if not try_create(guard, this_process()):
        claimer = read_lock(guard)
        try:
            old = time.time() - guard.stat().st_mtime > stale_after
        except FileNotFoundError:
            return False
        if ended_on_this_host(claimer) or old:  # a waiter died within its takeover: rare, cleared here
            guard.unlink(missing_ok=True)
        return False
    try:
        if read_lock(lock) != gone:
            return False  # taken over (or released) by someone else meanwhile
        lock.unlink(missing_ok=True)
        return True
    finally:
        guard.unlink(missing_ok=True)


class HeldLock:
    """A lock this process holds: :meth:`tell` adds what waiters may read (how far the work is); a thread
    writes it with a refresh counter every :data:`HEARTBEAT_SECONDS`, so waiters on other machines see the
    holder alive. ``took_over`` is the record of a gone holder whose lock this process took over."""

    def __init__(self, lock: Path, heartbeat: float = HEARTBEAT_SECONDS) -> None:
        self.lock = lock
        self.record = this_process()
        self.took_over: Holder | None = None
        self._heartbeat = heartbeat
        self._notes: Holder = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._refresh, name="simclr-lock-heartbeat", daemon=True)

    def tell(self, **notes: object) -> None:
        """Publish ``notes`` in the lock (with the next refresh, or now when the refresh is idle)."""
        self._notes = {**self._notes, **notes}  # a new dict: the refreshing thread may be reading the old one
        self._wake.set()

    def start(self) -> None:
        self._thread.start()

    def release(self) -> None:
        """Stop refreshing and remove the lock, if it is still this process's."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)
        if read_lock(self.lock).get("token") == self.record["token"]:
            self.lock.unlink(missing_ok=True)

    def _refresh(self) -> None:
        beat = 0
        while not self._stop.is_set():
            self._wake.wait(self._heartbeat)
            self._wake.clear()
            if self._stop.is_set() or read_lock(self.lock).get("token") != self.record["token"]:
                return  # released, or no longer ours: never write over another holder's lock
            beat += 1
            try:
                write_text_atomic(self.lock, json.dumps({**self.record, **self._notes, "beat": beat}), durable=False)
            except OSError:  # a full or vanished disk: the work itself will say so
                return


@contextmanager
def hold_lock(
    lock: Path,
    *,
    on_wait: Callable[[Holder], None] | None = None,
    poll: float = 0.5,
    stale_after: float = STALE_SECONDS,
    heartbeat: float = HEARTBEAT_SECONDS,
) -> Iterator[HeldLock]:
    """Wait until this process holds ``lock``, then yield it (refreshed while the block runs, removed when it
    ends, however it ends).

    While another process holds it, ``on_wait(holder)`` is called every ``poll`` seconds with the holder's
    record (what it :meth:`~HeldLock.tell`-s included). A holder that is gone (see the module docstring) has
    its lock taken over; ``took_over`` of the yielded lock then names it.
    """
    lock = Path(lock)
    lock.parent.mkdir(parents=True, exist_ok=True)
    held = HeldLock(lock, heartbeat)
    refreshes = _Refreshes(stale_after)
    gone: Holder | None = None
    while not try_create(lock, held.record):
        holder = read_lock(lock)
        if refreshes.gone(holder):
            if _take_over(lock, holder, stale_after):
                gone = holder
            continue
        gone = None  # another process took it over first: this one waits for it like any holder
        if on_wait is not None:
            on_wait(holder)
        time.sleep(poll)
    held.took_over = gone
    held.start()
    try:
        yield held
    finally:
        held.release()


def wait_while_held(
    lock: Path,
    *,
    on_wait: Callable[[Holder], None] | None = None,
    poll: float = 0.5,
    stale_after: float = STALE_SECONDS,
) -> None:
    """Return once no live process holds ``lock`` (released, or its holder gone: see the module docstring),
    without taking it: for a reader of what the holder is writing, which may have no right to write there.
    ``on_wait(holder)`` is called every ``poll`` seconds meanwhile."""
    refreshes = _Refreshes(stale_after)
    while Path(lock).exists():
        holder = read_lock(lock)
        if refreshes.gone(holder):
            return
        if on_wait is not None:
            on_wait(holder)
        time.sleep(poll)
