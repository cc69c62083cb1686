"""The named recipes: one YAML per reproduced experiment (``*.yaml``) and per sweep (``sweeps/*.yaml``).

They ship inside the package, so ``simclr pretrain --config anchor-lightly-cifar10-resnet18-200ep`` and
``simclr sweep simclr-ae`` work from any folder once simclr is installed; a path to a file of one's own
works as before. docs/REPRODUCING.md says which published figure each recipe reproduces.
"""

from __future__ import annotations

from pathlib import Path

from simclr.errors import UserError

RECIPES_DIR = Path(__file__).resolve().parent
SWEEPS_DIR = RECIPES_DIR / "sweeps"


def recipe_names(sweeps: bool = False) -> list[str]:
    """The names of the shipped recipes (or sweeps), without ``.yaml``."""
    return sorted(path.stem for path in (SWEEPS_DIR if sweeps else RECIPES_DIR).glob("*.yaml"))


def find_recipe(value: str | Path, sweeps: bool = False) -> Path:
    """``value`` when it is an existing file, else the shipped recipe (or sweep) of that name.

    >>> find_recipe("anchor-lightly-cifar10-resnet18-200ep").name
    'anchor-lightly-cifar10-resnet18-200ep.yaml'
    """
    path = Path(value).expanduser()
    if path.is_file():
        return path
    folder = SWEEPS_DIR if sweeps else RECIPES_DIR
    name = path.name[: -len(".yaml")] if path.name.endswith(".yaml") else path.name
    if path.parent == Path(".") and (folder / f"{name}.yaml").is_file():
        return folder / f"{name}.yaml"
    kind = "sweep" if sweeps else "recipe"
    raise UserError(
        f"{value} is neither a file nor a shipped {kind}; pass a YAML file or one of: {', '.join(recipe_names(sweeps))}"
    )
