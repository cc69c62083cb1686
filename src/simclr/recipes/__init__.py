"""The named recipes: one YAML per reproduced experiment (``*.yaml``) and per sweep (``sweeps/*.yaml``).

They ship inside the package, so ``simclr pretrain --config lightly-cifar10-resnet18-200ep`` and
``simclr sweep simclr-ae`` work from any folder once simclr is installed; a path to a file of one's own
works as before. docs/REPRODUCING.md says which published figure each recipe reproduces.
"""

from __future__ import annotations

import logging
from pathlib import Path

from simclr.errors import UserError

RECIPES_DIR = Path(__file__).resolve().parent
SWEEPS_DIR = RECIPES_DIR / "sweeps"

log = logging.getLogger("simclr")

# The names the recipes had before they were named by the project they reproduce. They keep working for
# one release, with a deprecation line naming the new one (docs/SOURCES.md lists the same table).
RENAMED_RECIPES = {
    "seed000-cifar10-resnet34-ae-head": "simclr-ae-cifar10-resnet34",
    "seed001-cifar10-resnet18": "sthalles-cifar10-resnet18",
    "seed001-ff-devices-one-shot-resnet18": "sthalles-ff-devices-one-shot-resnet18",
    "seed001-ff-devices-unlabeled-resnet18": "sthalles-ff-devices-unlabeled-resnet18",
    "seed001-stl10-resnet18": "sthalles-stl10-resnet18",
    "seed001-stl10-resnet50": "sthalles-stl10-resnet50",
    "seed003-cifar10-resnet50-gp": "invclr-cifar10-resnet50-gp",
    "seed003-cifar10-resnet50-simclr": "invclr-cifar10-resnet50-simclr",
    "seed003-spirograph-resnet18-gp": "invclr-spirograph-resnet18-gp",
    "seed003-spirograph-resnet18-simclr": "invclr-spirograph-resnet18-simclr",
    "seed004-cifar10-resnet18-adam": "rittik9-cifar10-resnet18-adam",
    "seed004-cifar10-resnet18-nesterov": "rittik9-cifar10-resnet18-nesterov",
    "anchor-dkobak-cifar10-resnet18": "dkobak-cifar10-resnet18",
    "anchor-google-simclr-cifar10-resnet18": "google-simclr-cifar10-resnet18",
    "anchor-lightly-cifar10-resnet18-200ep": "lightly-cifar10-resnet18-200ep",
    "anchor-lightly-cifar10-resnet18-800ep": "lightly-cifar10-resnet18-800ep",
    "anchor-solo-learn-cifar10-resnet18": "solo-learn-cifar10-resnet18",
}


def recipe_names(sweeps: bool = False) -> list[str]:
    """The names of the shipped recipes (or sweeps), without ``.yaml``."""
    return sorted(path.stem for path in (SWEEPS_DIR if sweeps else RECIPES_DIR).glob("*.yaml"))


def find_recipe(value: str | Path, sweeps: bool = False) -> Path:
    """``value`` when it is an existing file, else the shipped recipe (or sweep) of that name.

    >>> find_recipe("lightly-cifar10-resnet18-200ep").name
    'lightly-cifar10-resnet18-200ep.yaml'
    """
    path = Path(value).expanduser()
    if path.is_file():
        return path
    folder = SWEEPS_DIR if sweeps else RECIPES_DIR
    name = path.name[: -len(".yaml")] if path.name.endswith(".yaml") else path.name
    if not sweeps and path.parent == Path(".") and name in RENAMED_RECIPES:
        log.warning("recipe %s is now called %s; the old name goes in the next release", name, RENAMED_RECIPES[name])
        name = RENAMED_RECIPES[name]
    if path.parent == Path(".") and (folder / f"{name}.yaml").is_file():
        return folder / f"{name}.yaml"
    kind = "sweep" if sweeps else "recipe"
    raise UserError(
        f"{value} is neither a file nor a shipped {kind}; pass a YAML file or one of: {', '.join(recipe_names(sweeps))}"
    )
