"""The processes that pack (:mod:`simclr.data.packed`): parts handed one at a time to forked workers, and the
pack's stop on SIGINT / SIGTERM.

A signal sent to the whole process group (Ctrl-C in a terminal, SLURM's ``--signal`` or a preemption, ``kill
-TERM -PGID``) reaches the workers as well as their parent. The workers ignore it; the parent stops them
(SIGKILL: the part a worker was writing has no marker yet, so it is redone when the pack is run again) and
raises :class:`~simclr.errors.Interrupted`, which the command line turns into one line and exit code 130
(SIGINT) or 143 (SIGTERM). Each worker talks to its parent through a pipe of its own: no queue is shared
between workers, so a killed worker cannot leave a lock of a shared queue taken (``multiprocessing.Pool`` can
then hang its parent for ever).
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

from simclr.errors import Interrupted, UserError

__all__ = ["STOP_SIGNALS", "can_fork_workers", "interrupted_on_signals", "run_parts"]

Result = TypeVar("Result")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def can_fork_workers() -> bool:
    """Whether this process may fork worker processes (Linux with fork, and not a daemonic process such as a
    DataLoader worker, which may have no children)."""
    return sys.platform.startswith("linux") and "fork" in mp.get_all_start_methods() and not mp.current_process().daemon


@contextmanager
def interrupted_on_signals(what: str) -> Iterator[None]:
    """While the block runs, SIGINT and SIGTERM raise :class:`~simclr.errors.Interrupted` saying that ``what``
    stopped and that the same command finishes it. Outside the main thread (where Python cannot catch
    signals) the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        raise Interrupted(f"{what} stopped by {name}; run the same command again to finish it", 128 + signum)

    previous = {signum: signal.signal(signum, stop) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _serve(conn: Connection, work: Callable[[int], Any]) -> None:
    """A worker: ``work(part)`` for every part the parent sends, until it sends None."""
    for signum in STOP_SIGNALS:  # the parent decides when a signal ends the pack, and stops this process
        signal.signal(signum, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    while (part := conn.recv()) is not None:
        try:
            conn.send(("done", work(part)))
        except Exception as exc:  # handed to the parent, which raises it
            try:
                conn.send(("error", exc))
            except Exception:  # an exception that cannot be pickled: its traceback, as text
                conn.send(("error", RuntimeError(traceback.format_exc())))
            return


def run_parts(
    parts: Sequence[int], workers: int, work: Callable[[int], Result], on_result: Callable[[Result], None]
) -> None:
    """``work(part)`` for every part, ``on_result`` called with each result as it comes: in ``workers`` forked
    processes (each is given its next part when it hands in one), or in this process when there is one
    worker, one part, or no fork. An exception of ``work`` is raised here; workers left are stopped."""
    if workers <= 1 or len(parts) <= 1 or not can_fork_workers():
        for part in parts:
            on_result(work(part))
        return
    context = mp.get_context("fork")
    todo = list(parts)
    busy: dict[Connection, BaseProcess] = {}
    started: list[BaseProcess] = []
    try:
        # blocked while forking: a signal arriving then is ignored by the worker and handled here once unblocked
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            for _ in range(min(workers, len(todo))):
                mine, theirs = context.Pipe()
                started.append(context.Process(target=_serve, args=(theirs, work), name="simclr-pack"))
                started[-1].start()
                theirs.close()
                busy[mine] = started[-1]
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        for conn in busy:
            conn.send(todo.pop(0))
        while busy:
            for ready in wait(list(busy)):
                worker = _ready_worker(busy, ready)
                on_result(_received(worker))
                if todo:
                    worker.send(todo.pop(0))
                else:  # nothing left for it: it ends
                    worker.send(None)
                    busy.pop(worker).join()
    finally:
        for process in started:
            if process.is_alive():
                process.kill()
            process.join()


def _ready_worker(busy: dict[Connection, BaseProcess], ready: object) -> Connection:
    """The worker connection that ``wait`` found ready (it returns them untyped)."""
    assert isinstance(ready, Connection) and ready in busy
    return ready


def _received(conn: Connection) -> Any:
    """A worker's result, or what went wrong in it, raised."""
    try:
        kind, value = conn.recv()
    except EOFError:
        raise UserError(
            "a packing process ended unexpectedly (killed, or out of memory?); run the same command again to "
            "finish the pack, with fewer --workers if memory is short"
        ) from None
    if kind == "error":
        raise value
    return value
