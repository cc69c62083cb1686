"""SIGINT and SIGTERM, the signals that stop a command: how the main process and its helper processes take them.

A terminal's Ctrl-C and SLURM's ``--signal``/preemption send the signal to a whole process group: the main
process, its DataLoader workers, its decoding processes. Only the main process decides what stopping means
(pretraining saves its checkpoint first, :class:`simclr.training.callbacks.StopOnSignal`); a helper process
that died of the signal first would turn the stop into a crash ("DataLoader worker ... killed by signal").
So helpers ignore both signals (:func:`ignore_stop_signals`, their ``worker_init_fn`` or pool initializer)
and end when their parent shuts them down, and the main process turns the signal into :class:`StopSignal`
(:func:`raise_on_stop_signals`), which unwinds it like an error: locks are released, atomic writes remove
their temporaries, and the CLI exits 130 (SIGINT) or 143 (SIGTERM) with one line.

Helpers are started within :func:`starting_helpers`: a signal that arrives while they start neither kills one
before it ignores signals (torch's workers die of a SIGTERM at birth) nor is lost in the parent (Python drops
an exception raised in its at-fork callbacks); it is raised once they have started.

This module imports nothing of simclr's and no torch, so every layer can use it.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignal(BaseException):
    """A SIGINT or SIGTERM reached the main process outside the training loop.

    A BaseException, as KeyboardInterrupt is, so that no ``except Exception`` turns a stop into an error
    message; the CLI exits with :attr:`exit_code` (128 + the signal's number).
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal_name(signum))
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def signal_name(signum: int) -> str:
    """``SIGTERM`` for 15."""
    return signal.Signals(signum).name


def ignore_stop_signals(*_: object) -> None:
    """Make this process ignore SIGINT and SIGTERM: for helper processes (DataLoader workers, decoding pools),
    which their parent stops. Takes and ignores any arguments, so it serves as a ``worker_init_fn`` (which is
    given the worker's id) and as a pool ``initializer`` alike."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


_handler_owner: int | None = None  # the process that installed the raising handler
_deferred: list[int] | None = None  # within starting_helpers: the stop signals received, raised at its end


def _raise_stop_signal(signum: int, _frame: FrameType | None) -> None:
    if os.getpid() != _handler_owner:
        return  # a helper forked from the process, before its worker_init_fn: its parent stops it
    if _deferred is not None:
        _deferred.append(signum)
        return
    raise StopSignal(signum)


@contextmanager
def raise_on_stop_signals() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise :class:`StopSignal` in the main thread (SIGTERM would
    otherwise end the process without unwinding it); the previous handlers are back afterwards. Outside the
    main thread, where Python cannot set handlers, it changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    global _handler_owner
    _handler_owner = os.getpid()
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    for signum in STOP_SIGNALS:
        signal.signal(signum, _raise_stop_signal)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            if handler is not None:  # None: a handler set outside Python, which cannot be put back from here
                signal.signal(signum, handler)


@contextmanager
def starting_helpers() -> Iterator[None]:
    """Start helper processes (DataLoader workers, a process pool) within this block.

    SIGINT and SIGTERM are blocked in this thread meanwhile, so a forked helper starts with them blocked and
    ignores them from its ``worker_init_fn`` (or initializer) on, where torch's workers would die of a SIGTERM
    that reached them earlier; and a stop signal that reaches this process meanwhile (through another of its
    threads) is raised as :class:`StopSignal` when the block ends, not inside the fork, where Python drops an
    exception raised in its at-fork callbacks and the stop would be lost. Outside the main thread, or without
    ``pthread_sigmask``, it changes nothing."""
    global _deferred
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    outer = _deferred
    received: list[int] = [] if outer is None else outer
    _deferred = received
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # one that waited runs the handler now: into `received`
        _deferred = outer
    if received and outer is None:  # an enclosing block raises it at its own end
        raise StopSignal(received[0])
