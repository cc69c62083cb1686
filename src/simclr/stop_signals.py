"""SIGINT and SIGTERM, the signals that stop a command: how the main process and its helper processes take them.

A terminal's Ctrl-C and SLURM's ``--signal``/preemption send the signal to a whole process group: the main
process, its DataLoader workers, its decoding processes. Only the main process decides what stopping means
(pretraining saves its checkpoint first, :class:`simclr.training.callbacks.StopOnSignal`); a helper process
that died of the signal first would turn the stop into a crash ("DataLoader worker ... killed by signal").
So helpers ignore both signals (:func:`ignore_stop_signals`, their ``worker_init_fn`` or pool initializer)
and end when their parent shuts them down, and the main process turns the signal into :class:`StopSignal`
(:func:`raise_on_stop_signals`), which unwinds it like an error: locks are released, atomic writes remove
their temporaries, and the CLI exits 130 (SIGINT) or 143 (SIGTERM) with one line.

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


def _raise_stop_signal(signum: int, _frame: FrameType | None) -> None:
    # A helper forked from the process inherits this handler until its worker_init_fn (or initializer) runs:
    # there the signal is ignored too, for its parent stops it.
    if os.getpid() == _handler_owner:
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
