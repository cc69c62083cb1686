"""simclr evaluate in an install without the optional map packages (scikit-learn, umap-learn): the default run
writes its numbers and its report without the t-SNE map and says in one line which extra adds it; a map asked
for by name (--method umap) is refused before anything is written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import simclr

# sitecustomize runs at interpreter start: a None in sys.modules makes every import of the name fail, as in an
# environment where the package was never installed
BLOCK_MAP_PACKAGES = 'import sys\nfor name in ("sklearn", "umap"):\n    sys.modules[name] = None\n'


def evaluate_without_map_packages(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``simclr evaluate ARGS`` in a fresh interpreter where scikit-learn and umap-learn cannot be imported."""
    shim = tmp_path / "no-map-packages"
    shim.mkdir(exist_ok=True)
    (shim / "sitecustomize.py").write_text(BLOCK_MAP_PACKAGES)
    source = Path(simclr.__file__).resolve().parents[1]  # the sources under test, not an installed copy
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(shim), str(source)]), OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-m", "simclr", "evaluate", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_evaluate_without_scikit_learn_writes_the_report_and_names_the_extra(make_run, tmp_path: Path) -> None:
    run = make_run("spirograph", train_size=200, test_size=60)
    done = evaluate_without_map_packages(tmp_path, str(run))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    notes = [line for line in done.stderr.splitlines() if "simclr-kit[" in line]
    assert len(notes) == 1 and "scikit-learn" in notes[0] and "pip install 'simclr-kit[viz]'" in notes[0], notes
    doc = json.loads((run / "eval" / "metrics.json").read_text())
    assert set(doc["results"]) == {"regression"}
    assert {p.name for p in (run / "eval" / "plots").iterdir()} == {"training_curves.png", "augmented_views.png"}
    report = run / "eval" / "report.html"
    assert f"report: {report.resolve()}" in done.stdout
    html = report.read_text()
    assert html.count("data:image/png;base64,") == 2 and "t-SNE" not in html


def test_evaluate_method_umap_without_umap_is_refused_before_any_work(make_run, tmp_path: Path) -> None:
    run = make_run("spirograph", train_size=200, test_size=60)
    done = evaluate_without_map_packages(tmp_path, str(run), "--method", "umap")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "simclr: error: --method umap needs umap-learn; pip install 'simclr-kit[umap]' adds it"
    ), done.stderr[-2000:]
    assert not (run / "eval").exists()
