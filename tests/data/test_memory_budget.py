"""One memory decision per machine: every process of the machine holds its own copy of data held in memory, so
the decision counts them all, and it rests on numbers that do not change while the machine runs (its memory,
the processes it runs), so every process reaches the same verdict whenever it starts."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from simclr.data import memory_budget
from simclr.data.cache_folder import CACHE_ENV
from simclr.data.memory_budget import (
    MEMORY_FRACTION,
    decide_memory,
    default_memory_budget,
    local_processes,
    machine_memory,
)
from simclr.data.source import DataSource

from ..conftest import noise_pngs


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """20 images of 16 x 16 px: 15.0 KB decoded."""
    return noise_pngs(tmp_path / "folder", 20, size=16)


def test_the_processes_of_the_machine_each_count_their_copy() -> None:
    one = decide_memory(15 * 2**10, 20 * 2**10, processes=1)
    two = decide_memory(15 * 2**10, 20 * 2**10, processes=2)
    assert one.fits and not two.fits and two.needed == 30 * 2**10
    assert one.summary() == "take 15.0 KB decoded; memory budget 20.0 KB"
    assert two.summary() == "take 15.0 KB decoded, 30.0 KB for the 2 processes of the machine; memory budget 20.0 KB"


def test_the_default_budget_is_part_of_the_machines_memory_not_of_what_is_free_now(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert 0 < machine_memory() <= total
    budget = default_memory_budget()
    assert budget == int(machine_memory() * MEMORY_FRACTION)
    free = memory_budget._meminfo

    monkeypatch.setattr(memory_budget, "_meminfo", lambda field: 1 if field == "MemAvailable" else free(field))
    assert default_memory_budget() == budget  # a process starting while others decode decides the same
    decision = decide_memory(10, None)
    assert decision.fits and decision.budget == budget and not decision.given
    assert f"({MEMORY_FRACTION:.0%} of the machine's" in decision.summary()


def test_the_processes_of_the_machine_are_torchruns_local_world_size_or_the_devices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert local_processes(4) == 4 and local_processes(0) == 1
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    assert local_processes(1) == 8


def test_a_folder_held_by_one_process_is_streamed_by_two_and_only_the_first_says_so(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    source = DataSource("imagefolder", folder, workers=1)
    budget = 20 * 2**10
    with caplog.at_level(logging.INFO, logger="simclr"):
        assert source.streamed(None, budget, local_processes=1) is None  # held in memory
        assert "15.0 KB decoded; memory budget 20.0 KB: held in memory" in caplog.text
        caplog.clear()
        streamed = source.streamed(None, budget, local_processes=2)
    assert streamed is not None and streamed.train.info.images == 20
    assert "30.0 KB for the 2 processes of the machine; memory budget 20.0 KB: packed once and streamed" in caplog.text

    monkeypatch.setenv("LOCAL_RANK", "1")  # the second process of the machine: the same verdict, said once
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="simclr"):
        again = source.streamed(None, budget, local_processes=2)
    assert again is not None and again.train.path == streamed.train.path
    assert "memory budget" not in caplog.text
