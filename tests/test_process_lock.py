"""Lock files that name their holder (simclr.process_lock): one holder at a time, waiters told who it is and how
far it is, and a holder that is gone (ended here, or silent on another machine) taken over by one waiter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from simclr.process_lock import hold_lock, read_lock, this_process, try_create


def dead_pid() -> int:
    """The pid of a process that has exited (pids are not reused this fast)."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_the_lock_names_its_holder_and_what_it_tells_and_is_removed_after(tmp_path: Path) -> None:
    lock = tmp_path / "work" / "x.lock"
    with hold_lock(lock, heartbeat=0.05) as held:
        assert read_lock(lock)["pid"] == os.getpid() and held.took_over is None
        held.tell(task="train", done=3, total=10)
        deadline = time.time() + 5
        while read_lock(lock).get("done") != 3 and time.time() < deadline:
            time.sleep(0.01)
        record = read_lock(lock)
        assert (record["task"], record["done"], record["total"]) == ("train", 3, 10)
        assert record["token"] == held.record["token"] and int(record["beat"]) >= 1  # type: ignore[call-overload]
    assert not lock.exists()


def test_a_waiter_is_told_who_holds_the_lock_and_gets_it_when_released(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from simclr.process_lock import hold_lock\n"
         f"with hold_lock(Path({str(lock)!r})):\n    print('held', flush=True); time.sleep(1.0)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        waited: list[object] = []
        with hold_lock(lock, on_wait=lambda record: waited.append(record.get("pid")), poll=0.05) as held:
            assert held.took_over is None  # released, not taken over
            assert holder.wait(timeout=30) == 0  # it got the lock only once the holder was done with it
        assert waited and set(waited) == {holder.pid}
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_of_a_process_that_ended_here_is_taken_over_at_once(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    gone = {**this_process(), "pid": dead_pid()}
    assert try_create(lock, gone)
    start = time.monotonic()
    with hold_lock(lock, stale_after=60) as held:
        assert held.took_over == gone
        assert read_lock(lock)["pid"] == os.getpid()
    assert time.monotonic() - start < 5


def test_a_silent_holder_on_another_machine_is_taken_over_and_a_refreshing_one_is_not(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    elsewhere = {"pid": 1234, "host": "another-node", "start": "1", "since": "then", "token": "a", "beat": 0}
    lock.write_text(json.dumps(elsewhere))
    stop = threading.Event()

    def refresh() -> None:  # what a live holder's heartbeat does, from "another node"
        beat = 0
        while not stop.wait(0.05):
            beat += 1
            lock.write_text(json.dumps({**elsewhere, "beat": beat}))

    beating = threading.Thread(target=refresh)
    beating.start()
    waited = []
    try:
        start = time.monotonic()
        while time.monotonic() - start < 0.8:  # many times stale_after: still alive, so still waited for
            assert not try_create(lock, this_process())
            time.sleep(0.05)
        stop.set()
        beating.join()
        with hold_lock(lock, stale_after=0.3, poll=0.05, on_wait=lambda record: waited.append(record)) as held:
            assert held.took_over is not None and held.took_over["host"] == "another-node"
    finally:
        stop.set()
        beating.join()
    assert waited, "the silent holder was waited for before being taken over"


def test_many_waiters_finding_one_dead_holder_take_the_lock_one_at_a_time(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    assert try_create(lock, {**this_process(), "pid": dead_pid()})
    inside, most = [0], [0]
    guard = threading.Lock()

    def work() -> None:
        with hold_lock(lock, poll=0.01):
            with guard:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            time.sleep(0.05)
            with guard:
                inside[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most[0] == 1 and not lock.exists()
