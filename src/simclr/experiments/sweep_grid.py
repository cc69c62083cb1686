"""A sweep file and the cells its grid expands to: parsed, expanded and validated before anything runs.

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

Running the cells is :mod:`simclr.experiments.sweep`'s job; a cell's state and the results table are
:mod:`simclr.experiments.sweep_results`'.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simclr.autoencoder_config import AutoencoderConfig
from simclr.config import PretrainConfig, build_config
from simclr.errors import UserError
from simclr.recipes import find_recipe
from simclr.settings import build_settings, read_yaml

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


def _mapping(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UserError(f"{what} must be a mapping of config keys to values, got {type(value).__name__}")
    return {str(key).replace("-", "_"): item for key, item in value.items()}


def _resolve_recipe(path_text: str, sweep_dir: Path) -> Path:
    """A recipe path as written, relative to the working directory, else relative to the sweep file, else a
    shipped recipe's name."""
    path = Path(path_text)
    if path.is_absolute() or path.is_file():
        return path
    beside = sweep_dir / path
    return beside if beside.is_file() else find_recipe(path)


def parse_sweep(doc: Mapping[str, Any], *, default_name: str, sweep_dir: Path = Path(".")) -> SweepSpec:
    """Check the shape of a sweep document and turn it into a :class:`SweepSpec` (values are checked later)."""
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
    return parse_sweep(read_yaml(path), default_name=path.stem, sweep_dir=path.parent)


def cell_id(grid_values: Mapping[str, Any]) -> str:
    """A readable, stable directory name: ``key=value`` pairs in grid order, unsafe characters as ``_``.

    >>> cell_id({"dataset": "cifar10", "head": "mlp", "head_out_dim": 128})
    'dataset=cifar10,head=mlp,head_out_dim=128'
    """
    if not grid_values:
        return "base"
    text = ",".join(f"{key}={format_value(value)}" for key, value in grid_values.items())
    return safe_name(text) or "cell"


def safe_name(text: str) -> str:
    """``text`` as a file or folder name: characters other than letters, digits and ``._=,+-`` become ``_``."""
    return _UNSAFE.sub("_", text).strip("._")


def format_value(value: Any) -> str:
    """A grid value as cell ids and the results table write it (``true``, not ``True``)."""
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


def validate_cells(cells: Sequence[Cell], sweep_dir: Path) -> list[PretrainConfig]:
    """Build every cell's :class:`PretrainConfig` (``out`` = its run directory); nothing is run or written.

    Validation reads no data, so a sweep over datasets that are not downloaded yet can still be checked.
    """
    configs = []
    for cell in cells:
        try:
            configs.append(build_config(cell.config_values, {"out": str(cell_run_dir(sweep_dir, cell))}))
            if cell.autoencoder is not None:
                build_settings(AutoencoderConfig, cell.autoencoder.values, {"out": str(cell.autoencoder.out)})
        except UserError as exc:
            raise UserError(f"sweep cell {cell.cell_id}: {exc}") from None
    return configs
