"""Progress of long work: a callback ``progress(task, done, total)`` that the work calls, and the ways the command
line shows it on stderr (a bar per task on a terminal, else a line per tenth; the ``simclr`` logger's lines).

Work that takes long (feature extraction, packing, an evaluation's stages) takes an optional :data:`Progress`
and tells it how far it is; a command decides how that is shown (:func:`progress_bar`), a library caller may
pass its own callback or none. This module imports no torch and nothing of simclr's domain, so data,
evaluation and the commands can all report progress through it.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger("simclr")

Progress = Callable[[str, int, int], None]
"""``progress(task, done, total)``: how far a long task is (``simclr evaluate`` passes the ``advance`` of
:func:`progress_bar`)."""


def batch_counter(progress: Progress | None, task: str, total: int) -> Callable[[int], None] | None:
    """An ``on_batch(rows)`` that adds up the rows of each batch done and reports ``task: done/total`` to
    ``progress``; None when there is no ``progress`` to tell (so the caller skips counting altogether)."""
    if progress is None:
        return None
    done = 0

    def on_batch(rows: int) -> None:
        nonlocal done
        done += rows
        progress(task, done, total)

    return on_batch


@contextmanager
def stage(progress: Progress | None, name: str, *, owner: str) -> Iterator[None]:
    """One stage of a longer job (a probe, a study, the plots): ``name: 0/1`` as it starts and ``1/1`` when it
    is done, or, when there is no ``progress`` to tell, a log line ``owner: name ...`` as it starts."""
    if progress is None:
        log.info("%s: %s ...", owner, name)
        yield
        return
    progress(name, 0, 1)
    yield
    progress(name, 1, 1)


def with_task_prefix(progress: Progress | None, prefix: str) -> Progress | None:
    """``progress`` with every task named ``prefix: task``, so the parts of a repeated job (each kept backbone
    of a checkpoint scan) get their own bars."""
    if progress is None:
        return None
    told = progress
    return lambda task, done, total: told(f"{prefix}: {task}", done, total)


def per_tenth(show: Progress) -> Progress:
    """``show`` called once per tenth of each task (at 0/10, 1/10, ... 10/10 of its total), not at every step."""
    shown: dict[str, int] = {}

    def tenth(task: str, done: int, total: int) -> None:
        reached = done * 10 // max(total, 1)
        if shown.get(task) != reached:
            shown[task] = reached
            show(task, done, total)

    return tenth


def logged_progress(what: str, *, silent_for: float = 2.0) -> Progress:
    """Progress said by the ``simclr`` logger, ``what task: done/total``, once per tenth of each task from
    ``silent_for`` seconds on: work done within a few seconds adds no lines, longer work never runs silent.

    For work whose command shows the logger's lines as its output (a run's data packed or decoded before
    training): the lines reach the run's log too, and they do not interleave with a bar.
    """
    start = time.monotonic()

    def say(task: str, done: int, total: int) -> None:
        if time.monotonic() - start >= silent_for:
            log.info("%s %s: %d/%d", what, task, done, total)

    return per_tenth(say)


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of the message (it may be replaced later)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def show_progress() -> None:
    """Progress and warning lines of the ``simclr`` logger on stderr, unless something already handles them."""
    if not log.handlers:
        handler = StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


@contextmanager
def progress_bar(what: str) -> Iterator[Progress]:
    """``advance(task, done, total)`` draws a progress bar per task on a terminal, else a line per tenth."""
    if not sys.stderr.isatty():
        yield per_tenth(lambda task, done, total: print(f"{what} {task}: {done}/{total}", file=sys.stderr))
        return
    # imported here, only for a terminal: rich is not needed to build 'simclr --help' nor for redirected output
    from rich.console import Console
    from rich.progress import Progress as RichProgress

    # on stderr, like the lines: stdout stays the command's result, which may be redirected to a file
    with RichProgress(console=Console(stderr=True), transient=False) as bars:
        tasks: dict[str, Any] = {}

        def advance(task: str, done: int, total: int) -> None:
            if task not in tasks:
                tasks[task] = bars.add_task(f"{what} {task}", total=total)
            bars.update(tasks[task], completed=done, total=total)

        yield advance
