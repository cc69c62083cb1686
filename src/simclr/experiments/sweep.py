"""Running a sweep: one pretraining run (and its evaluation) per cell, resumable, one cell per device.

SimCLR-AE's code (Schliebitz et al. 2024, arXiv:2408.14514) reaches its 720 runs with nested shell loops,
hard-coded checkpoint ids and per-dataset batch sizes patched in by hand; a crash half-way means re-running by
hand. Here the grid is data (the sweep file: :mod:`simclr.experiments.sweep_grid`), every cell is validated
before anything runs, each cell owns one run directory, and a re-run skips what is finished
(:mod:`simclr.experiments.sweep_results`), so a sweep can be interrupted and continued at any time. The
sweep's folder is opened as every run-like directory is (:func:`simclr.runs.open_run`): one sweep writes in
it at a time.

Each cell runs as subprocesses (``python -m simclr pretrain`` then ``python -m simclr evaluate``), so a
crash or an out-of-memory cell cannot take the sweep down, and each can be pinned to one GPU with
``CUDA_VISIBLE_DEVICES``. A cell is finished when its run directory has ``backbone.safetensors`` and
``sweep-cell.json`` (written last, atomically). An unfinished cell is continued, not redone: with
``backbone.safetensors`` only its evaluation runs, with ``checkpoints/last.ckpt`` pretraining resumes
from it, and otherwise its run directory is cleared and it starts over.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty, Queue

from simclr.atomic import write_text_atomic
from simclr.autoencoder_config import AutoencoderConfig
from simclr.config import build_config
from simclr.errors import UserError
from simclr.experiments.sweep_grid import AutoencoderJob, Cell, SweepSpec, cell_run_dir, safe_name
from simclr.experiments.sweep_results import (
    CellOutcome,
    cell_results,
    is_finished,
    read_marker,
    write_marker,
    write_tables,
)
from simclr.rundir import RunDir
from simclr.runs import live_holder, open_run
from simclr.settings import build_settings, config_to_yaml

Launcher = Callable[[list[str], Path, dict[str, str]], int]


def launch_subprocess(command: list[str], log_path: Path, env: dict[str, str]) -> int:
    """Run ``command`` with its output appended to ``log_path``; returns the exit code."""
    with log_path.open("a") as log:
        log.write(f"$ {' '.join(command)}\n")
        log.flush()
        return subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, check=False).returncode


@dataclass
class SweepRunner:
    """Runs the cells of one sweep, at most one at a time per device, and keeps the results table current."""

    spec: SweepSpec
    sweep_dir: Path
    devices: Sequence[str | None] = (None,)
    quiet: bool = False
    launch: Launcher | None = None  # default: launch_subprocess; tests pass a fake
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _outcomes: dict[str, CellOutcome] = field(default_factory=dict)
    _autoencoder_locks: dict[Path, threading.Lock] = field(default_factory=dict)

    def _say(self, text: str) -> None:
        if not self.quiet:
            with self._lock:
                print(text, flush=True)

    def _record(self, outcome: CellOutcome, order: Sequence[Cell]) -> None:
        with self._lock:
            self._outcomes[outcome.cell.cell_id] = outcome
            rows = [self._outcomes[cell.cell_id] for cell in order if cell.cell_id in self._outcomes]
            write_tables(self.sweep_dir, list(self.spec.grid), rows)

    def _step(self, args: list[str], log: Path, device: str | None) -> int:
        env = dict(os.environ)
        if device is not None:
            env["CUDA_VISIBLE_DEVICES"] = device
        launch = self.launch or launch_subprocess
        return launch([sys.executable, "-m", "simclr", *args], log, env)

    def _pretrain(self, cell: Cell, config_path: Path, run_dir: Path, log: Path, device: str | None) -> str | None:
        """Resume from ``last.ckpt`` when there is one, else start over; returns an error or None.

        A resume that ends without ``backbone.safetensors`` (the checkpoint was already at the last
        step, so Lightning has nothing to train and nothing to export) falls back to a fresh start.
        """
        where = f" on device {device}" if device is not None else ""
        base = ["pretrain", "--config", str(config_path), "--quiet"]
        holder = live_holder(run_dir)
        if holder is not None:  # another sweep (or a user) trains this cell now: never touch its directory
            return f"the cell is being trained by process {holder.get('pid')} on {holder.get('host')}; left alone"
        if RunDir(run_dir).last_checkpoint.is_file():
            self._say(f"[{cell.cell_id}] resume{where}")
            code = self._step([*base, "--resume", str(run_dir)], log, device)
            if code != 0:
                return f"pretrain --resume exited with {code}; see {log}"
            if RunDir(run_dir).backbone.is_file():
                return None
        self._say(f"[{cell.cell_id}] run{where}")
        shutil.rmtree(run_dir, ignore_errors=True)  # only this cell's own directory, never finished
        code = self._step(base, log, device)
        if code != 0 or not RunDir(run_dir).backbone.is_file():
            return f"pretrain exited with {code}; see {log}"
        return None

    def _train_autoencoder(self, cell: Cell, job: AutoencoderJob, log: Path, device: str | None) -> str | None:
        """Train the autoencoder ``job`` once (cells sharing it wait); returns an error or None."""
        with self._lock:
            lock = self._autoencoder_locks.setdefault(job.out.resolve(), threading.Lock())
        with lock:
            run = RunDir(job.out)
            if run.autoencoder.is_file():
                return None
            if run.path.exists() and any(run.path.iterdir()):
                if not run.config.is_file():  # never clear a folder that is not an unfinished train-ae run
                    return f"{run.path} exists and is not a train-ae run; remove it or change ae_checkpoint"
                shutil.rmtree(run.path)
            config_path = self.sweep_dir / "autoencoders" / f"{safe_name(str(job.out))}.yaml"
            config_path.parent.mkdir(parents=True, exist_ok=True)
            config = build_settings(AutoencoderConfig, job.values, {"out": str(job.out)})
            write_text_atomic(config_path, config_to_yaml(config))
            self._say(f"[{cell.cell_id}] train-ae {job.out}")
            code = self._step(["train-ae", "--config", str(config_path), "--quiet"], log, device)
            if code != 0 or not run.autoencoder.is_file():
                return f"train-ae for {job.out} exited with {code}; see {log}"
            return None

    def run_cell(self, cell: Cell, device: str | None) -> CellOutcome:
        """Pretrain (resumed or from scratch) and evaluate one cell; any failure is returned, not raised."""
        run_dir = cell_run_dir(self.sweep_dir, cell)
        log_dir = self.sweep_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        log = log_dir / f"{cell.cell_id}.log"
        config_path = self.sweep_dir / "cells" / f"{cell.cell_id}.yaml"
        config_path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(config_path, config_to_yaml(build_config(cell.config_values, {"out": str(run_dir)})))
        if not RunDir(run_dir).backbone.is_file():
            error = None
            if cell.autoencoder is not None:
                error = self._train_autoencoder(cell, cell.autoencoder, log, device)
            error = error or self._pretrain(cell, config_path, run_dir, log, device)
            if error:
                return CellOutcome(cell, "failed", error, cell_results(run_dir))
        if self.spec.evaluate:
            code = self._step(["evaluate", str(run_dir), "--no-plots"], log, device)
            if code != 0:
                return CellOutcome(cell, "failed", f"evaluate exited with {code}; see {log}", cell_results(run_dir))
        results = cell_results(run_dir)
        write_marker(run_dir, cell, results)
        return CellOutcome(cell, "finished", None, results)

    def run(self, cells: Sequence[Cell]) -> list[CellOutcome]:
        """Run every unfinished cell, one thread per device; finished ones are skipped and only reported.
        The sweep's folder is held by this process meanwhile. Returns one outcome per cell."""
        with open_run(self.sweep_dir):
            todo = self._unfinished(cells)
            threads = [
                threading.Thread(target=self._work, args=(todo, cells, device), daemon=True) for device in self.devices
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        return [self._outcomes[cell.cell_id] for cell in cells if cell.cell_id in self._outcomes]

    def _unfinished(self, cells: Sequence[Cell]) -> Queue[Cell]:
        """The cells left to run; the finished ones go into the results table as they are."""
        todo: Queue[Cell] = Queue()
        for cell in cells:
            run_dir = cell_run_dir(self.sweep_dir, cell)
            if is_finished(run_dir):
                self._say(f"[{cell.cell_id}] skip (finished)")
                marker = read_marker(run_dir) or {}
                self._record(
                    CellOutcome(cell, "finished", None, marker.get("results") or cell_results(run_dir)),
                    cells,
                )
            else:
                todo.put(cell)
        return todo

    def _work(self, todo: Queue[Cell], cells: Sequence[Cell], device: str | None) -> None:
        """Run cells from ``todo`` on ``device`` until none is left."""
        while True:
            try:
                cell = todo.get_nowait()
            except Empty:  # nothing left for this device
                return
            try:
                outcome = self.run_cell(cell, device)
            # a bug or an OS error in one cell must not stop the others
            except Exception as exc:
                outcome = CellOutcome(cell, "failed", f"{type(exc).__name__}: {exc}")
            self._record(outcome, cells)
            if outcome.error:
                self._say(f"[{cell.cell_id}] FAILED: {outcome.error}")
            else:
                self._say(f"[{cell.cell_id}] done")


def parse_devices(text: str | None) -> list[str | None]:
    """``"0,1"`` -> ``["0", "1"]``; None -> ``[None]`` (one cell at a time, devices left as they are)."""
    if text is None:
        return [None]
    devices = [part.strip() for part in text.split(",") if part.strip()]
    if not devices or any(not part.isdigit() for part in devices) or len(set(devices)) != len(devices):
        raise UserError(f"--devices {text!r}: give distinct GPU indices separated by commas, e.g. --devices 0,1")
    return list(devices)
