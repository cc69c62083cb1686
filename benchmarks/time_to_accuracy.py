"""Time to accuracy (issue 30): simclr against lightly's own SimCLR pipeline at equal wall-clock time, one run.

Rows, trained one after the other on the same machine for the same budget (``--budget``), then evaluated by
the same code:
  lightly         lightly's CIFAR-10 SimCLR pipeline (``benchmarks/lightly_simclr.py``, whose docstring cites
                  the file it follows), run in a virtual environment with lightly installed from the package
                  index (created once under ``--lightly-venv``, reused after);
  simclr-default  ``python -m simclr pretrain --dataset cifar10 --batch-size 128 --backbone resnet18`` with the
                  default recipe;
  simclr-budget   the same with ``--budget-recipe``'s flags (a shipped recipe's name or a flag string); until the
                  search that chooses a recipe for short budgets exists, it defaults to the default recipe;
  random          the same ResNet-18 with the CIFAR stem, random weights (torchvision's init, seed 0), untrained.
Evaluation, the same for every row: frozen backbone features of un-augmented images, each model with its own
normalisation (lightly's ImageNet statistics, simclr's CIFAR-10 ones); the bank is the first ``--bank-size``
training images (the first files by name of each class, as many per class) and the queries are the 10,000
official test images. Weighted kNN (k=200, T=0.1, cosine: simclr's ``knn_accuracy``) and a linear probe on the
bank's features (simclr's ``linear_probe``, mini-batch SGD with fixed epochs, lr and L2, no search). The lightly
model's features are computed in its own environment and handed over in a ``.npz`` (read without pickle).

Images/s is the training pace (simclr: images over the training seconds its run records, the kNN monitor
left out; lightly: images over seconds after its warm-up steps); images seen is steps x batch.
``--record BENCHMARKS.md`` replaces this benchmark's section there.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import emit_report, machine_description  # noqa: E402

from simclr.errors import UserError  # noqa: E402
from simclr.evaluation.loading import resolve_run  # noqa: E402
from simclr.evaluation.options import EvalSessionOptions  # noqa: E402
from simclr.evaluation.protocols.knn import knn_accuracy  # noqa: E402
from simclr.evaluation.protocols.linear import linear_probe  # noqa: E402
from simclr.evaluation.protocols.minibatch_linear import MinibatchSettings  # noqa: E402
from simclr.evaluation.session import EvalSession  # noqa: E402
from simclr.ranges import parse_duration  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "cifar10"
DEFAULT_VENV = Path.home() / ".cache" / "simclr-bench" / "lightly-venv"
LIGHTLY_SCRIPT = Path(__file__).resolve().parent / "lightly_simclr.py"
SECTION = "### Time to accuracy"
ROWS = ("lightly", "simclr-default", "simclr-budget", "random")
BATCH = 128
KNN_K, KNN_T = 200, 0.1
PROBE = MinibatchSettings(epochs=30, batch_size=256, lr=0.1)  # one setting for every row: no search on test
PROBE_L2 = 1e-4


@dataclasses.dataclass
class FeatureSet:
    """Frozen features of the bank (training images) and of the test images, with their labels."""

    bank: torch.Tensor
    bank_labels: torch.Tensor
    test: torch.Tensor
    test_labels: torch.Tensor

    def save(self, path: Path) -> None:
        """The ``.npz`` that ``lightly_simclr.py`` writes too."""
        arrays = {"bank_features": self.bank, "bank_labels": self.bank_labels}
        arrays |= {"test_features": self.test, "test_labels": self.test_labels}
        np.savez(path, **{name: tensor.numpy() for name, tensor in arrays.items()})

    @classmethod
    def load(cls, path: Path) -> FeatureSet:
        with np.load(path, allow_pickle=False) as saved:
            tensors = [torch.from_numpy(saved[name]) for name in ("bank_features", "bank_labels", "test_features")]
            return cls(*tensors, torch.from_numpy(saved["test_labels"]))


@dataclasses.dataclass
class Row:
    """One line of the table: training pace and amount (None for the untrained baseline), accuracies."""

    name: str
    images_per_second: float | None
    images_seen: int | None
    knn_top1: float
    probe_top1: float


def evaluate_features(features: FeatureSet) -> tuple[float, float]:
    """kNN top-1 and linear-probe top-1 (fractions) of one row's features, by simclr's evaluation code."""
    num_classes = int(max(features.bank_labels.max(), features.test_labels.max())) + 1
    bank_labels, test_labels = features.bank_labels.long(), features.test_labels.long()
    knn = knn_accuracy(
        features.bank.float(), bank_labels, features.test.float(), test_labels, num_classes, KNN_K, KNN_T
    )
    probe = linear_probe(
        features.bank.float(),
        bank_labels,
        features.test.float(),
        test_labels,
        num_classes=num_classes,
        grid=(PROBE_L2,),
        minibatch=PROBE,
    )
    return knn, float(probe.metrics["top1"])


def session_features(run: Path, data_dir: Path, eval_dir: Path, *, random_weights: bool = False) -> FeatureSet:
    """The features of a simclr run (or of its architecture with random weights) on ``data_dir``'s train/ and
    test/, computed as ``simclr knn`` computes them (an evaluation session, its normalisation, no cache)."""
    options = EvalSessionOptions(data_dir=str(data_dir), random_weights=random_weights, use_cache=False)
    with EvalSession(resolve_run(run, eval_dir=eval_dir), options) as session:
        train, test = session.features("train"), session.features("test")
    return FeatureSet(train.features, train.labels, test.features, test.labels)


def prepare_eval_data(data_dir: Path, work: Path, bank_size: int) -> Path:
    """``work/eval-data/{train,test}/<class>/``: the bank (the first files by name of each class, as many per
    class, ``bank_size`` in all) and every test image, copied so that every row reads the same files."""
    classes = sorted(path for path in (data_dir / "train").iterdir() if path.is_dir())
    if not classes or not (data_dir / "test").is_dir():
        raise SystemExit(f"{data_dir} has no train/<class>/ and test/ folders; pass --data-dir of CIFAR-10's JPEGs")
    out = work / "eval-data"
    for n, folder in enumerate(classes):
        per_class = bank_size // len(classes) + (n < bank_size % len(classes))
        target = out / "train" / folder.name
        target.mkdir(parents=True)
        for image in sorted(folder.iterdir())[:per_class]:
            shutil.copyfile(image, target / image.name)
    shutil.copytree(data_dir / "test", out / "test")
    return out


def lightly_python(venv: Path) -> Path:
    """The python of the lightly environment, created (``python -m venv``, then lightly with this machine's
    torch and torchvision versions pinned, so pip never fetches another torch) unless it is ready."""
    python, ready = venv / "bin" / "python", venv / ".ready"
    if ready.is_file() and python.exists():
        return python
    pins = [f"torch=={torch.__version__.split('+')[0]}", f"torchvision=={torchvision.__version__.split('+')[0]}"]
    print(f"creating {venv} with lightly, {', '.join(pins)} (once; 5 GB, minutes)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-cache-dir", "lightly", *pins], check=True)
    versions = "import lightly, torch; print(lightly.__version__, torch.__version__)"
    ready.write_text(subprocess.run([str(python), "-c", versions], check=True, capture_output=True, text=True).stdout)
    return python


def run_lightly(python: Path, data_dir: Path, eval_data: Path, budget_s: float, work: Path) -> tuple[Row, FeatureSet]:
    out = work / "lightly"
    command = [str(python), str(LIGHTLY_SCRIPT), "--train-dir", str(data_dir / "train"), "--eval-dir", str(eval_data)]
    command += ["--budget-seconds", str(budget_s), "--out", str(out), "--batch-size", str(BATCH)]
    subprocess.run(command, check=True)
    record = json.loads((out / "training.json").read_text())
    return Row("lightly", record["images_per_second"], record["images_seen"], math.nan, math.nan), FeatureSet.load(
        out / "features.npz"
    )


def parse_budget(text: str) -> float:
    """Seconds of ``90s``, ``10m``, ``2h``, ``1h30m`` or a plain number of seconds (as ``--time-budget``)."""
    try:
        return parse_duration(text, "--budget")
    except UserError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def recipe_flags(recipe: str) -> list[str]:
    """A recipe name becomes ``--config NAME``; anything else is a flag string."""
    recipe = recipe.strip()
    if recipe and not recipe.startswith("-"):
        return ["--config", recipe]
    return shlex.split(recipe)


def run_simclr(name: str, recipe: str, budget_s: float, data_dir: Path, work: Path) -> tuple[Row, Path, list[str]]:
    """Pretrain one simclr row for the budget; returns its row (accuracies to come), its run directory and the
    flags that kept the budget."""
    run_dir = work / name
    flags = [*recipe_flags(recipe), "--dataset", "cifar10", "--data-dir", str(data_dir), "--batch-size", str(BATCH)]
    flags += ["--backbone", "resnet18", "--out", str(run_dir), "--knn-every-epochs", "0"]  # no monitor: as lightly
    budget_flags = ["--time-budget", f"{budget_s:g}s"]  # the whole schedule fits the budget (the run plans it)
    flags += budget_flags
    print(f"{name}: python -m simclr pretrain {shlex.join(flags)}", flush=True)
    subprocess.run([sys.executable, "-m", "simclr", "pretrain", *flags, "--quiet"], check=True)
    training = yaml.safe_load((run_dir / "environment.yaml").read_text())["training"]
    steps, seconds = int(training["steps"]), float(training["training_seconds"])
    pace = steps * BATCH / seconds if seconds > 0 else math.nan  # images over training seconds, as lightly's
    return Row(name, pace, steps * BATCH, math.nan, math.nan), run_dir, budget_flags


def percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def format_report(rows: list[Row], context: dict[str, str]) -> list[str]:
    """The markdown section: what ran and where, the table, and simclr's training pace over lightly's."""
    table = ["| row | images/s (training) | images seen | kNN top-1 | probe top-1 |", "|---|---|---|---|---|"]
    paces = {  # the untrained row has none (None), a run too short to be timed neither (NaN)
        row.name: row.images_per_second
        for row in rows
        if row.images_per_second is not None and not math.isnan(row.images_per_second)
    }
    for row in rows:
        pace = f"{paces[row.name]:.1f}" if row.name in paces else "-"
        seen = f"{row.images_seen:,}" if row.images_seen is not None else "- (untrained)"
        table.append(f"| {row.name} | {pace} | {seen} | {percent(row.knn_top1)} | {percent(row.probe_top1)} |")
    lightly = paces.get("lightly")
    ratios = [
        f"{name} **{pace / lightly:.2f}**" for name, pace in paces.items() if name.startswith("simclr") and lightly
    ]
    return [
        f"{SECTION}, {context['date']}, {context['machine']}",
        "",
        f"Command: `{context['command']}` (commit {context['commit']}); budget {context['budget']} of training per "
        "row, rows trained one after the other, batch 128, ResNet-18 with the CIFAR stem, CIFAR-10 JPEGs.",
        f"Evaluation, the same for every row: weighted kNN (k={KNN_K}, T={KNN_T}, cosine) with the first "
        f"{context['bank']} training images (as many per class) as the bank and the 10,000 test images as queries; "
        f"a linear probe on the bank's frozen features ({PROBE.describe()}, L2 {PROBE_L2:g}, no search).",
        f"simclr-budget flags: `{context['budget_recipe'] or 'none'}`"
        + (
            " (the default recipe, until the search that chooses one exists: its row is the default row's run)."
            if not context["budget_recipe"]
            else "."
        ),
        f"simclr's budget: {context['simclr_budget']}.",
        "",
        *table,
        "",
        "Training pace, simclr / lightly: " + (", ".join(ratios) if ratios else "- (needs the lightly row)") + ".",
        "",
    ]


def commit() -> str:
    """The checkout's short commit, marked when the working tree has changes."""
    git = ["git", "-C", str(REPO)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True).stdout.strip()
    return f"{head or 'unknown'}{' with uncommitted changes' if dirty else ''}"


def machine() -> str:
    cpu = machine_description(torch.device("cpu"))
    return f"{machine_description(torch.device('cuda'))}; {cpu}" if torch.cuda.is_available() else cpu


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=parse_budget, default="10m", help="training time per row (default: 10m)")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA, help="CIFAR-10 JPEGs, {train,test}/<class>/")
    parser.add_argument("--bank-size", type=int, default=10_000, help="training images in the kNN bank and probe")
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, of {', '.join(ROWS)} (default: all)")
    parser.add_argument("--budget-recipe", default="", help="simclr-budget's recipe name or flags (default: none)")
    parser.add_argument("--lightly-venv", type=Path, default=DEFAULT_VENV, help="created once, reused after")
    parser.add_argument("--record", type=Path, default=None, help="replace this benchmark's section in this file")
    args = parser.parse_args()
    args.rows = [name.strip() for name in args.rows.split(",") if name.strip()]
    unknown = sorted(set(args.rows) - set(ROWS))
    if unknown or not args.rows:
        parser.error(f"--rows: unknown {', '.join(unknown) or 'nothing given'}; choose from {', '.join(ROWS)}")
    if "random" in args.rows and not any(name.startswith("simclr") for name in args.rows):
        parser.error("--rows random evaluates a simclr row's architecture with random weights: add a simclr row")
    if args.budget <= 0 or args.bank_size < 10:
        parser.error("--budget must be positive and --bank-size at least 10 (one image per class)")
    args.rows = [name for name in ROWS if name in args.rows]  # the table's order
    return args


@dataclasses.dataclass
class Trained:
    """What the training phase leaves for the evaluation: every row, lightly's features, simclr's runs."""

    rows: list[Row]
    features: dict[str, FeatureSet]
    runs: dict[str, Path]
    budget_flags: dict[str, list[str]]


def train_rows(args: argparse.Namespace, work: Path, eval_data: Path) -> Trained:
    """Train the rows asked for, one after the other. simclr-budget with the default recipe's flags is the
    default row's run, not trained twice (the same config and seed give the same network)."""
    recipes = {"simclr-default": "", "simclr-budget": args.budget_recipe}
    trained = Trained([], {}, {}, {})
    for name in args.rows:
        if name == "lightly":
            python = lightly_python(args.lightly_venv)
            row, trained.features[name] = run_lightly(python, args.data_dir, eval_data, args.budget, work)
        elif name == "simclr-budget" and "simclr-default" in trained.runs and not recipe_flags(args.budget_recipe):
            row = dataclasses.replace(next(r for r in trained.rows if r.name == "simclr-default"), name=name)
            trained.runs[name] = trained.runs["simclr-default"]
        elif name in recipes:
            row, trained.runs[name], trained.budget_flags[name] = run_simclr(
                name, recipes[name], args.budget, args.data_dir, work
            )
        else:
            row = Row(name, None, None, math.nan, math.nan)
        trained.rows.append(row)
    return trained


def evaluate_rows(trained: Trained, eval_data: Path, work: Path) -> None:
    """Fill in every row's accuracies, after all training, so that no evaluation shares the machine with a row."""
    by_run: dict[tuple[Path, bool], FeatureSet] = {}
    for row in trained.rows:
        features = trained.features.get(row.name)
        if features is None:
            random_weights = row.name == "random"
            run = next(iter(trained.runs.values())) if random_weights else trained.runs[row.name]
            if (run, random_weights) not in by_run:
                eval_dir = work / f"eval-{row.name}"
                by_run[run, random_weights] = session_features(run, eval_data, eval_dir, random_weights=random_weights)
            features = by_run[run, random_weights]
        row.knn_top1, row.probe_top1 = evaluate_features(features)
        print(f"{row.name}: kNN {percent(row.knn_top1)}, probe {percent(row.probe_top1)}", flush=True)


def main() -> int:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="time-to-accuracy-") as tmp:
        work = Path(tmp)
        eval_data = prepare_eval_data(args.data_dir, work, args.bank_size)
        trained = train_rows(args, work, eval_data)
        evaluate_rows(trained, eval_data, work)
    budget_flags = "; ".join(f"{name} `{shlex.join(flags)}`" for name, flags in trained.budget_flags.items())
    context = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "command": shlex.join(["python", "benchmarks/time_to_accuracy.py", *sys.argv[1:]]),
        "commit": commit(),
        "budget": f"{args.budget:g} s",
        "bank": f"{args.bank_size:,}",
        "budget_recipe": shlex.join(recipe_flags(args.budget_recipe)),
        "simclr_budget": "`--time-budget`: the run measures its speed and plans its whole schedule (warmup and "
        "cosine) to end within the budget (" + (budget_flags or "no simclr row") + ")",
    }
    emit_report(format_report(rows=trained.rows, context=context), args.record, replace=SECTION)
    return 0


if __name__ == "__main__":
    sys.exit(main())
