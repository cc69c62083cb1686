"""Sweeps: one pretraining run (and its evaluation) per cell of a grid of config values, plus a results table.

SimCLR-AE's code (Schliebitz et al. 2024, arXiv:2408.14514) reaches its 720 runs with nested shell loops, hard-coded
checkpoint ids and per-dataset batch sizes patched in by hand; a crash half-way means re-running by
hand. Here the grid is data (a YAML file), every cell is validated before anything runs, each cell
owns one run directory, and a re-run skips what is finished, so a sweep can be interrupted and
continued at any time.

A sweep file::

    name: simclr-ae                  # default: the file's stem
    base:                            # pretrain config values shared by every cell
      config: recipe.yaml            # optional recipe, a file or a shipped recipe's name (base keys win)
      backbone: resnet34
    grid:                            # config key -> values; the cells are the cartesian product
      dataset: [cifar10, stl10]
      head: [mlp, ae]
    exclude:                         # optional: cells matching any of these are dropped
      - {head: mlp, head_activation: tanh}
    cell_overrides:                  # optional, applied in order to the cells that match 'when'
      - when: {dataset: stl10}
        set: {batch_size: 500}
    autoencoders:                    # optional: 'simclr train-ae' runs chained before the cells that use them
      when: {head: ae}
      set: {dataset: "{dataset}", latent_dim: "{head_hidden_dim}", epochs: 100}
    evaluate: true                   # run 'simclr evaluate RUN --no-plots' after pretraining

String values may name other values of the cell in braces (``ae-{dataset}-{head_hidden_dim}``); they
are filled with :meth:`str.format` once the cell's values are known, and a value that is only ``{key}``
takes the cell's value with its type.

An ``autoencoders`` entry trains, for every cell matching ``when``, the autoencoder its ``ae_checkpoint``
names (the ``train-ae`` settings are ``set``, filled from the cell's values) before the cell pretrains;
cells sharing an autoencoder wait for one run of it, a finished one (``autoencoder.safetensors``) is
kept, and an unfinished one is trained again from the start.

Each cell runs as subprocesses (``python -m simclr pretrain`` then ``python -m simclr evaluate``), so a
crash or an out-of-memory cell cannot take the sweep down, and each can be pinned to one GPU with
``CUDA_VISIBLE_DEVICES``. A cell is finished when its run directory has ``backbone.safetensors`` and
``sweep-cell.json`` (written last, atomically). An unfinished cell is continued, not redone: with
``backbone.safetensors`` only its evaluation runs, with ``checkpoints/last.ckpt`` pretraining resumes
from it, and otherwise its run directory is cleared and it starts over.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from queue import Empty, Queue
from typing import Any

from simclr.errors import UserError
from simclr.rundir import RunDir, read_backbone_metadata

RESULTS_CSV = "results.csv"
RESULTS_MD = "results.md"
_SWEEP_KEYS = ("name", "base", "grid", "exclude", "cell_overrides", "autoencoders", "evaluate")
_RESERVED = ("out", "resume")  # the sweep decides where each cell runs
_UNSAFE = re.compile(r"[^A-Za-z0-9._=,+-]+")


@dataclass(frozen=True)
class Override:
    """``set`` these values in every cell whose values include all of ``when``."""

    when: dict[str, Any]
    values: dict[str, Any]


@dataclass(frozen=True)
class SweepSpec:
    """A parsed sweep file; see the module docstring for its YAML form."""

    name: str
    base: dict[str, Any]
    grid: dict[str, list[Any]]
    exclude: tuple[dict[str, Any], ...] = ()
    overrides: tuple[Override, ...] = ()
    evaluate: bool = True
    autoencoders: Override | None = None  # train-ae settings for the cells that match ``when``


@dataclass(frozen=True)
class AutoencoderJob:
    """A ``simclr train-ae`` run a cell needs first: where it goes (the cell's ``ae_checkpoint``) and its settings."""

    out: Path
    values: dict[str, Any]


@dataclass(frozen=True)
class Cell:
    """One run of the sweep: its grid values (which name it) and its full pretrain config values."""

    cell_id: str
    grid_values: dict[str, Any]
    config_values: dict[str, Any]
    autoencoder: AutoencoderJob | None = None


@dataclass
class CellOutcome:
    """What a cell ended as; ``error`` is None for a finished cell."""

    cell: Cell
    status: str
    error: str | None = None
    results: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- parsing


def _mapping(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UserError(f"{what} must be a mapping of config keys to values, got {type(value).__name__}")
    return {str(key).replace("-", "_"): item for key, item in value.items()}


def _resolve_recipe(path_text: str, sweep_dir: Path) -> Path:
    """A recipe path as written, relative to the working directory, else relative to the sweep file, else a
    shipped recipe's name."""
    from simclr.recipes import find_recipe

    path = Path(path_text)
    if path.is_absolute() or path.is_file():
        return path
    beside = sweep_dir / path
    return beside if beside.is_file() else find_recipe(path)


def parse_sweep(doc: Mapping[str, Any], *, default_name: str, sweep_dir: Path = Path(".")) -> SweepSpec:
    """Check the shape of a sweep document and turn it into a :class:`SweepSpec` (values are checked later)."""
    from simclr.settings import read_yaml

    unknown = [key for key in doc if key not in _SWEEP_KEYS]
    if unknown:
        raise UserError(f"unknown sweep key {unknown[0]!r}; a sweep file has: {', '.join(_SWEEP_KEYS)}")
    base = _mapping(doc.get("base"), "'base'")
    recipe = base.pop("config", None)
    if recipe is not None:
        base = {
            **_mapping(read_yaml(_resolve_recipe(str(recipe), sweep_dir)), f"recipe {recipe}"),
            **base,
        }
    grid = _mapping(doc.get("grid"), "'grid'")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise UserError(f"grid key {key!r} must list at least one value, e.g. {key}: [a, b]")
    exclude = doc.get("exclude") or []
    if not isinstance(exclude, list):
        raise UserError("'exclude' must be a list of mappings such as {head: mlp, head_activation: tanh}")
    overrides_doc = doc.get("cell_overrides") or []
    if not isinstance(overrides_doc, list):
        raise UserError("'cell_overrides' must be a list of {when: {...}, set: {...}} entries")
    overrides = [_when_set(entry, f"cell_overrides entry {number}") for number, entry in enumerate(overrides_doc, 1)]
    autoencoders = _when_set(doc["autoencoders"], "'autoencoders'") if doc.get("autoencoders") else None
    evaluate = doc.get("evaluate", True)
    if not isinstance(evaluate, bool):
        raise UserError(f"'evaluate' must be true or false, got {evaluate!r}")
    name = str(doc.get("name") or default_name)
    if _UNSAFE.search(name) or name.startswith("."):
        raise UserError(f"sweep name {name!r} is not a plain directory name; use letters, digits, '.', '_' or '-'")
    for key in _RESERVED:
        if key in base or key in grid or any(key in item.values for item in overrides):
            raise UserError(f"remove {key!r} from the sweep: each cell runs in OUT/<name>/<cell-id>, set with --out")
    return SweepSpec(
        name=name,
        base=base,
        grid=grid,
        exclude=tuple(_mapping(item, "'exclude' entry") for item in exclude),
        overrides=tuple(overrides),
        evaluate=evaluate,
        autoencoders=autoencoders,
    )


def _when_set(entry: Any, what: str) -> Override:
    if not isinstance(entry, dict) or set(entry) - {"when", "set"} or "set" not in entry:
        raise UserError(f"{what} must be {{when: {{key: value}}, set: {{key: value}}}}")
    return Override(_mapping(entry.get("when"), f"{what} 'when'"), _mapping(entry["set"], f"{what} 'set'"))


def load_sweep(path: Path) -> SweepSpec:
    """Read a sweep YAML file (see the module docstring); its name defaults to the file's stem."""
    from simclr.settings import read_yaml

    return parse_sweep(read_yaml(path), default_name=path.stem, sweep_dir=path.parent)


# ----------------------------------------------------------------------------- cells


def cell_id(grid_values: Mapping[str, Any]) -> str:
    """A readable, stable directory name: ``key=value`` pairs in grid order, unsafe characters as ``_``.

    >>> cell_id({"dataset": "cifar10", "head": "mlp", "head_out_dim": 128})
    'dataset=cifar10,head=mlp,head_out_dim=128'
    """
    if not grid_values:
        return "base"
    text = ",".join(f"{key}={_format_value(value)}" for key, value in grid_values.items())
    return _UNSAFE.sub("_", text).strip("._") or "cell"


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _matches(values: Mapping[str, Any], condition: Mapping[str, Any]) -> bool:
    return all(key in values and values[key] == wanted for key, wanted in condition.items())


_WHOLE_TEMPLATE = re.compile(r"\{(\w+)\}")


def _fill_templates(values: dict[str, Any], where: str, source: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Replace ``{key}`` in string values by the values of ``source`` (default: ``values`` themselves; one pass,
    no templates inside templates). A value that is exactly ``{key}`` takes that value with its type."""
    source = values if source is None else source
    filled = dict(values)
    for key, value in values.items():
        if isinstance(value, str) and "{" in value:
            whole = _WHOLE_TEMPLATE.fullmatch(value)
            if whole is not None and whole.group(1) in source:
                filled[key] = source[whole.group(1)]
                continue
            try:
                filled[key] = value.format_map(source)
            except KeyError as exc:
                raise UserError(
                    f"sweep cell {where}: {key}: {value!r} names {exc}, which is not a config value of the cell"
                ) from None
            except (ValueError, IndexError, AttributeError) as exc:
                raise UserError(
                    f"sweep cell {where}: {key}: {value!r} is not a valid template ({exc}); write {{key}}"
                ) from None
    return filled


def expand_cells(spec: SweepSpec) -> list[Cell]:
    """The cartesian product of the grid in file order, minus excluded cells, with overrides and templates applied."""
    keys = list(spec.grid)
    cells: list[Cell] = []
    seen: dict[str, dict[str, Any]] = {}
    for combo in itertools.product(*(spec.grid[key] for key in keys)):
        grid_values = dict(zip(keys, combo, strict=True))
        values = {**spec.base, **grid_values}
        if any(_matches(values, condition) for condition in spec.exclude):
            continue
        name = cell_id(grid_values)
        for override in spec.overrides:
            if _matches(values, override.when):
                values.update(override.values)
        if name in seen:
            raise UserError(
                f"grid values {seen[name]} and {grid_values} give the same cell id {name!r}; make them differ"
            )
        seen[name] = grid_values
        values = _fill_templates(values, name)
        cells.append(Cell(name, grid_values, values, _autoencoder_job(spec.autoencoders, values, name)))
    return cells


def _autoencoder_job(entry: Override | None, values: dict[str, Any], where: str) -> AutoencoderJob | None:
    if entry is None or not _matches(values, entry.when):
        return None
    if not values.get("ae_checkpoint"):
        raise UserError(f"sweep cell {where}: 'autoencoders' needs the cell's ae_checkpoint (where to train it)")
    return AutoencoderJob(Path(str(values["ae_checkpoint"])), _fill_templates(entry.values, where, values))


def cell_run_dir(sweep_dir: Path, cell: Cell) -> Path:
    return sweep_dir / cell.cell_id


def validate_cells(cells: Sequence[Cell], sweep_dir: Path) -> list[Any]:
    """Build every cell's :class:`PretrainConfig` (``out`` = its run directory); nothing is run or written.

    Validation reads no data, so a sweep over datasets that are not downloaded yet can still be checked.
    """
    from simclr.config import AutoencoderConfig, build_config
    from simclr.settings import build_settings

    configs = []
    for cell in cells:
        try:
            configs.append(build_config(cell.config_values, {"out": str(cell_run_dir(sweep_dir, cell))}))
            if cell.autoencoder is not None:
                build_settings(AutoencoderConfig, cell.autoencoder.values, {"out": str(cell.autoencoder.out)})
        except UserError as exc:
            raise UserError(f"sweep cell {cell.cell_id}: {exc}") from None
    return configs


# ----------------------------------------------------------------------------- state of a cell


def is_finished(run_dir: Path) -> bool:
    return RunDir(run_dir).backbone.is_file() and RunDir(run_dir).sweep_marker.is_file()


def read_marker(run_dir: Path) -> dict[str, Any] | None:
    path = RunDir(run_dir).sweep_marker
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _backbone_step(path: Path) -> int | None:
    """The backbone's ``global_step``, read from its metadata without loading torch; None when unreadable."""
    try:
        return read_backbone_metadata(path).global_step
    except UserError:
        return None


def _final_loss(metrics_csv: Path) -> float | None:
    try:
        with metrics_csv.open() as handle:
            losses = [row["train_loss"] for row in csv.DictReader(handle) if row.get("train_loss")]
    except (OSError, KeyError):
        return None
    return float(losses[-1]) if losses else None


def cell_results(run_dir: Path) -> dict[str, Any]:
    """The numbers of the results table: step, final loss and the headline evaluation metrics present."""
    from simclr.evaluation.results import read_metrics

    results: dict[str, Any] = {
        "global_step": _backbone_step(RunDir(run_dir).backbone),
        "final_loss": _final_loss(RunDir(run_dir).metrics),
    }
    try:
        doc = read_metrics(RunDir(run_dir).eval)
    except UserError:
        doc = None
    entries = doc["results"] if doc else {}
    picks = {
        "linear_top1": ("linear", "top1"),
        "knn_k200_top1": ("knn", "k200", "top1"),
        "regression_mse": ("regression", "mse"),
        "regression_r2": ("regression", "r2"),
    }
    for column, (method, *path) in picks.items():
        value: Any = entries.get(method, {}).get("metrics")
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None:
            results[column] = value
    return results


def write_marker(run_dir: Path, cell: Cell, results: Mapping[str, Any]) -> None:
    doc = {
        "cell_id": cell.cell_id,
        "grid_values": cell.grid_values,
        "results": dict(results),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    _write_atomic(RunDir(run_dir).sweep_marker, json.dumps(doc, indent=2, default=str) + "\n")


# ----------------------------------------------------------------------------- results table


_NUMBER_COLUMNS = (
    "global_step",
    "final_loss",
    "linear_top1",
    "knn_k200_top1",
    "regression_mse",
    "regression_r2",
)


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.3e}"
    return _format_value(value)


def write_tables(sweep_dir: Path, grid_keys: Sequence[str], outcomes: Iterable[CellOutcome]) -> None:
    """``results.csv`` and ``results.md``: one row per cell, the metric columns that any cell has."""
    outcomes = list(outcomes)
    present = [name for name in _NUMBER_COLUMNS if any(name in item.results for item in outcomes)]
    columns = ["cell_id", *grid_keys, "status", *present]
    rows = [
        [
            item.cell.cell_id,
            *(item.cell.grid_values.get(key) for key in grid_keys),
            item.status,
            *(item.results.get(name) for name in present),
        ]
        for item in outcomes
    ]
    sweep_dir.mkdir(parents=True, exist_ok=True)
    tmp = sweep_dir / f".{RESULTS_CSV}.tmp"
    with tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows([["" if value is None else _format_value(value) for value in row] for row in rows])
    os.replace(tmp, sweep_dir / RESULTS_CSV)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell_text(value) for value in row) + " |" for row in rows]
    _write_atomic(sweep_dir / RESULTS_MD, "\n".join(lines) + "\n")


# ----------------------------------------------------------------------------- running


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
        holder = RunDir(run_dir).live_holder()
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
        from simclr.config import AutoencoderConfig
        from simclr.settings import build_settings, config_to_yaml

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
            config_path = self.sweep_dir / "autoencoders" / f"{_UNSAFE.sub('_', str(job.out)).strip('._')}.yaml"
            config_path.parent.mkdir(parents=True, exist_ok=True)
            config = build_settings(AutoencoderConfig, job.values, {"out": str(job.out)})
            _write_atomic(config_path, config_to_yaml(config))
            self._say(f"[{cell.cell_id}] train-ae {job.out}")
            code = self._step(["train-ae", "--config", str(config_path), "--quiet"], log, device)
            if code != 0 or not run.autoencoder.is_file():
                return f"train-ae for {job.out} exited with {code}; see {log}"
            return None

    def run_cell(self, cell: Cell, device: str | None) -> CellOutcome:
        """Pretrain (resumed or from scratch) and evaluate one cell; any failure is returned, not raised."""
        from simclr.config import build_config
        from simclr.settings import config_to_yaml

        run_dir = cell_run_dir(self.sweep_dir, cell)
        log_dir = self.sweep_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        log = log_dir / f"{cell.cell_id}.log"
        config_path = self.sweep_dir / "cells" / f"{cell.cell_id}.yaml"
        config_path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(config_path, config_to_yaml(build_config(cell.config_values, {"out": str(run_dir)})))
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
        """Run every unfinished cell; finished ones are skipped and only reported. Returns one outcome per cell."""
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

        def worker(device: str | None) -> None:
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

        threads = [threading.Thread(target=worker, args=(device,), daemon=True) for device in self.devices]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return [self._outcomes[cell.cell_id] for cell in cells if cell.cell_id in self._outcomes]


def parse_devices(text: str | None) -> list[str | None]:
    """``"0,1"`` -> ``["0", "1"]``; None -> ``[None]`` (one cell at a time, devices left as they are)."""
    if text is None:
        return [None]
    devices = [part.strip() for part in text.split(",") if part.strip()]
    if not devices or any(not part.isdigit() for part in devices) or len(set(devices)) != len(devices):
        raise UserError(f"--devices {text!r}: give distinct GPU indices separated by commas, e.g. --devices 0,1")
    return list(devices)
