"""The no-extras install check: ``pip install simclr-kit`` alone must pretrain and evaluate a run to its report.

It builds the wheel from this checkout, creates a fresh virtual environment in a temporary folder (no system or
user site-packages), installs the wheel there with NO extras, then, in that environment, pretrains a toy
Spirograph run (nothing to download) and evaluates it. It passes when both commands exit 0, ``metrics.json``
and ``report.html`` are written, evaluate named the extra of the one picture it left out (the t-SNE map:
``viz``), and no package that only an extra installs is importable there.

Torch is given, not installed: a fresh torch with its CUDA libraries is 5.5 GB and minutes to fetch, so by default
the torch, torchvision, triton and nvidia-*/cuda-* distributions of the interpreter running this script are
symlinked into the fresh environment (their package folders and their ``*.dist-info``), and pip, seeing them
installed, fetches only the rest. The check therefore proves simclr's own declared dependencies, with torch
given. A constraint file pins torch and torchvision to the versions given, so pip can never replace them with
a download of its own. ``--full`` links nothing and installs torch from the index too (the constraint then
pins the public version).

Usage: python tools/check_install.py [--full]   (``make test-install``; ~2 min with torch given)
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TORCH = ("torch", "torchvision")
# the accelerator runtime that torch's wheels require (CUDA libraries and the Triton compiler), given with torch
GIVEN_WITH_TORCH = ("nvidia-", "cuda-", "triton")
# import name -> the extra that installs it; none may be importable after a core install (boto3 is not listed:
# litdata, a core dependency, requires it)
EXTRA_ONLY = {
    "sklearn": "viz",
    "umap": "umap",
    "timm": "timm",
    "scipy": "imagenet",
    "mlflow": "mlflow",
    "wandb": "wandb",
    "tensorboard": "tensorboard",
    "pyarrow": "parquet",
    "onnx": "onnx",
    "onnxruntime": "dev",
    "pandas": "bench",
    "google.cloud.storage": "gcs",
    "azure.storage.blob": "azure",
}
TOY_RUN = [
    "--dataset", "spirograph", "--train-size", "64", "--test-size", "32", "--batch-size", "16", "--epochs", "1",
    "--image-size", "16", "--precision", "32", "--accelerator", "cpu", "--knn-every-epochs", "0", "--workers", "1",
]  # fmt: skip
MAP_NOTE = "pip install 'simclr-kit[viz]'"  # evaluate's one line about the t-SNE map it left out


class CheckFailed(Exception):
    """A step of the check failed; the message says which and shows the end of its output."""


def run(command: list[str], env: dict[str, str], cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """``command``; a non-zero exit fails the check with the end of its output."""
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        shown = " ".join(command[:4] + (["..."] if len(command) > 4 else []))
        raise CheckFailed(f"{shown} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def clean_env(bin_dir: Path | None = None) -> dict[str, str]:
    """This process's environment without what would let another Python's packages in (the pip settings stay)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PYTHONNOUSERSITE"] = "1"
    env["OMP_NUM_THREADS"] = "1"
    if bin_dir is not None:
        env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(bin_dir.parent)
    return env


def build_wheel(work: Path) -> Path:
    """The wheel of this checkout, built with the installed setuptools (no build isolation: works offline) from
    a copy, so that the build leaves no build/ or *.egg-info in the checkout."""
    source, out = work / "source", work / "wheel"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), "."]
    run(command, clean_env(), source)
    (wheel,) = out.glob("simclr_kit-*.whl")
    return wheel


def create_venv(work: Path) -> Path:
    """A fresh virtual environment with pip and nothing else; returns its python."""
    root = work / "venv"
    venv.EnvBuilder(with_pip=True, symlinks=True).create(root)
    return root / "bin" / "python"


def site_packages(python: Path) -> Path:
    done = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['platlib'])"], clean_env(), REPO)
    return Path(done.stdout.strip())


def distributions_given_with_torch() -> list[importlib.metadata.Distribution]:
    """torch, torchvision and, through their requirements, every installed triton, nvidia-* and cuda-*
    distribution they reach (markers and extras are not evaluated: whatever is installed and named goes)."""
    found: dict[str, importlib.metadata.Distribution] = {}
    todo = list(TORCH)
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if name in found:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        found[name] = dist
        for requirement in dist.requires or []:
            required = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
            if required and required.group(0).lower().startswith(GIVEN_WITH_TORCH):
                todo.append(required.group(0))
    return list(found.values())


def link_torch(target: Path) -> list[str]:
    """Symlink the top-level folders and files (packages and ``*.dist-info``) of the distributions given with
    torch into ``target``; returns the distributions linked."""
    linked = []
    for dist in distributions_given_with_torch():
        source = Path(str(dist.locate_file("")))
        tops = {Path(str(file)).parts[0] for file in dist.files or []}
        for top in sorted(tops - {"..", "__pycache__"}):
            if not (target / top).exists():
                (target / top).symlink_to(source / top)
        linked.append(f"{dist.metadata['Name']} {dist.version}")
    return linked


def torch_constraints(work: Path, full: bool) -> Path:
    """Pins of torch and torchvision to the versions installed here: pip keeps the given ones (or, with
    ``--full``, installs those public versions), and never picks a torch of its own."""
    pins = []
    for name in TORCH:
        version = importlib.metadata.version(name)
        pins.append(f"{name}=={version.split('+')[0] if full else version}")
    path = work / "constraints.txt"
    path.write_text("\n".join(pins) + "\n")
    return path


def importable_extras(python: Path) -> list[str]:
    """The extra-only modules that the fresh environment can import."""
    code = (
        "import importlib.util, json, sys\n"
        "def found(name):\n"
        "    try:\n"
        "        return importlib.util.find_spec(name) is not None\n"
        "    except ImportError:  # a dotted name whose parent package is not installed\n"
        "        return False\n"
        "print(json.dumps([name for name in sys.argv[1:] if found(name)]))\n"
    )
    done = run([str(python), "-c", code, *EXTRA_ONLY], clean_env(python.parent), REPO)
    return [f"{name} (extra {EXTRA_ONLY[name]})" for name in json.loads(done.stdout)]


def pretrain_and_evaluate(python: Path, work: Path) -> str:
    """A toy Spirograph run, pretrained and evaluated by the installed ``simclr`` command, checked for its files;
    returns what evaluate wrote to stderr."""
    env = clean_env(python.parent)
    simclr = str(python.parent / "simclr")
    out = work / "run"
    run([simclr, "pretrain", *TOY_RUN, "--out", str(out)], env, work)
    evaluate = run([simclr, "evaluate", str(out)], env, work)
    for path in (out / "eval" / "metrics.json", out / "eval" / "report.html"):
        if not path.is_file():
            raise CheckFailed(f"simclr evaluate exited 0 but wrote no {path.name}:\n{evaluate.stderr[-3000:]}")
    return evaluate.stderr


def check(work: Path, full: bool) -> None:
    """Every step, timed; raises :class:`CheckFailed` at the first that fails."""
    started = time.monotonic()

    def step(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f} s] {message}", flush=True)

    wheel = build_wheel(work)
    step(f"built {wheel.name}")
    python = create_venv(work)
    target = site_packages(python)
    if not full:
        step(f"fresh venv; torch given: {', '.join(link_torch(target))}")
    command = [str(python), "-m", "pip", "install", "--no-cache-dir", "-q"]
    run([*command, "--constraint", str(torch_constraints(work, full)), str(wheel)], clean_env(python.parent), work)
    if not full and not (target / "torch").is_symlink():
        raise CheckFailed("pip replaced the torch given to the fresh venv; the constraint should have kept it")
    step("installed the wheel without extras")
    notes = pretrain_and_evaluate(python, work)
    if MAP_NOTE not in notes:
        raise CheckFailed(f"evaluate did not name the extra of the map it left out ({MAP_NOTE}):\n{notes[-3000:]}")
    step("pretrained and evaluated a toy Spirograph run: metrics.json and report.html written")
    leaked = importable_extras(python)
    if leaked:
        raise CheckFailed(f"a core install can import what only extras should install: {', '.join(leaked)}")
    step(f"none of {len(EXTRA_ONLY)} extra-only packages is importable")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="install torch from the index too (5.5 GB, minutes)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="simclr-check-install-") as folder:
        try:
            check(Path(folder), args.full)
        except CheckFailed as exc:
            print(f"check_install: FAILED: {exc}", file=sys.stderr)
            return 1
    print("check_install: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
