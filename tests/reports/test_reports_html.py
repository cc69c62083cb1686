"""``simclr report``: one self-contained HTML file with every number beside its protocol, checked as
text and, when Chromium is installed, rendered in a real headless browser."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from simclr.cli import main
from simclr.reports.html import write_report
from simclr.reports.html_tables import format_metric

from .conftest import MakeRun


def images(page: str) -> list[str]:
    return re.findall(r"<img\b[^>]*\bsrc=\"([^\"]*)\"", page)


def assert_self_contained(page: str) -> None:
    assert "http://" not in page and "https://" not in page
    assert 'src="file' not in page and "url(" not in page
    assert "<link" not in page
    assert re.findall(r"\bsrc=\"([^\"]*)\"", page) == images(page), "only <img> may have a src"
    for src in images(page):
        assert src.startswith("data:image/png;base64,")


def test_one_run_report(make_run: MakeRun, tmp_path: Path) -> None:
    run = make_run("cifar-run")
    out = write_report([run], tmp_path / "report.html")
    page = out.read_text()
    assert_self_contained(page)
    assert len(images(page)) == 4  # every PNG in eval/plots, inlined
    assert "cifar-run" in page and "<h2>Comparison" not in page
    for text in (
        "61.00%",
        "95.12%",
        "60.34%",  # linear top-1, top-5, macro F1
        "55.00%",
        "53.11%",
        "k200",
        "k20",  # kNN at both k
        "airplane",
        "50.0%",  # per-class accuracy
        "L-BFGS",
        "chosen_l2",
        "0.0001",
        "ab" * 32,
        "temperature",
    ):  # protocols
        assert text in page, text
    assert "4321" not in page, "the confusion matrix is a picture, not a dump of numbers"
    assert "truck&lt;script&gt;" in page and "truck<script>" not in page
    assert "resnet18" in page and "lars" in page  # summary and config.yaml
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_two_runs_comparison(make_run: MakeRun, tmp_path: Path) -> None:
    better = make_run("run-a", linear_top1=0.7, knn_top1=0.66)
    worse = make_run("run-b", linear_top1=0.6, knn_top1=0.5)
    regression = make_run("spiro", kind="spirograph", with_plots=False)
    page = write_report([better, worse, regression], tmp_path / "cmp.html").read_text()
    assert_self_contained(page)
    comparison = page[page.index("<h2>Comparison") : page.index('id="run-1"')]
    for text in (
        "run-a",
        "run-b",
        "spiro",
        "cifar10",
        "spirograph",
        "linear probe top-1",
        "kNN top-1 (k=200)",
        "linear regression MSE",
        "linear regression R²",
        "0.01234",
        "0.7654",
        "585",
        "120",
    ):
        assert text in comparison, text
    assert '<b><span class="num">70.00%</span></b>' in comparison  # best of the column is bold
    assert '<b><span class="num">60.00%</span></b>' not in comparison
    assert '<b><span class="num">66.00%</span></b>' in comparison
    assert page.index('id="run-1"') < page.index('id="run-2"') < page.index('id="run-3"')
    # regression's per-factor table
    assert all(f"<td>{name}</td>" in page for name in ("m", "b", "sigma", "rfore"))


def test_unevaluated_run(make_run: MakeRun, tmp_path: Path) -> None:
    evaluated = make_run("done")
    pending = make_run("pending", kind=None)
    page = write_report([evaluated, pending], tmp_path / "r.html").read_text()
    section = page[page.index('id="run-2"') :]
    assert "not evaluated yet" in section and f"simclr evaluate {pending}" in section
    assert len(images(section)) == 1  # training curves drawn from metrics.csv by the report itself
    assert not (pending / "eval").exists(), "the report never writes into a run it reports on"


def test_format_metric() -> None:
    assert format_metric("top1", 0.61234) == "61.23%"
    assert format_metric("macro_f1", 1) == "100.00%"
    assert format_metric("mse", 0.012345) == "0.01235"
    assert format_metric("r2", 0.8) == "0.8"
    assert format_metric("n_test", 10000) == "10,000"
    assert format_metric("top1", None) == "—"


def test_cli_default_paths(
    make_run: MakeRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run_a, run_b = make_run("a"), make_run("b")
    assert main(["report", str(run_a)]) == 0
    assert capsys.readouterr().out.strip() == str(run_a / "eval" / "report.html")
    assert (run_a / "eval" / "report.html").is_file()
    monkeypatch.chdir(tmp_path)
    assert main(["report", str(run_a), str(run_b)]) == 0
    assert (tmp_path / "simclr-report.html").is_file()
    assert main(["report", str(run_b), "--out", "sub/x.html"]) == 0
    assert "run-1" in (tmp_path / "sub" / "x.html").read_text()


def snapshot(root: Path) -> set[Path]:
    return {path for path in root.rglob("*")}


@pytest.mark.parametrize("problem", ["missing", "file", "no-config", "bad-metrics"])
def test_cli_bad_input_writes_nothing(
    make_run: MakeRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], problem: str
) -> None:
    run = make_run("good")
    target = {
        "missing": tmp_path / "nope",
        "file": tmp_path / "file.txt",
        "no-config": tmp_path / "empty",
        "bad-metrics": run,
    }[problem]
    if problem == "file":
        target.write_text("x")
    if problem == "no-config":
        target.mkdir()
    if problem == "bad-metrics":
        (run / "eval" / "metrics.json").write_text("{not json")
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    assert main(["report", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("simclr: error: ") and err.count("\n") == 1
    assert {
        "missing": "not a directory",
        "file": "not a directory",
        "no-config": "no config.yaml",
        "bad-metrics": "not valid JSON",
    }[problem] in err
    assert main(["report", str(run), str(target), "--out", "r.html"]) == 2
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------------------------------------------
# A real browser

CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (CI installs Debian's chromium)")


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    profile = tmp_path / "chromium-profile"
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--hide-scrollbars",
        "--window-size=1280,2400",
        *args,
    ]
    env = {**os.environ, "HOME": str(tmp_path)}
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, check=False)


@pytest.fixture
def report_file(make_run: MakeRun, tmp_path: Path) -> Path:
    return write_report(
        [make_run("run-a"), make_run("spiro", kind="spirograph"), make_run("pending", kind=None)],
        tmp_path / "report.html",
    )


@pytest.mark.slow
@needs_chromium
def test_chromium_screenshot_is_not_blank(report_file: Path, tmp_path: Path) -> None:
    shot = tmp_path / "shot.png"
    result = chromium(tmp_path, f"--screenshot={shot}", report_file.as_uri())
    assert shot.is_file(), f"no screenshot (exit {result.returncode}): {result.stderr[-2000:]}"
    with Image.open(shot) as image:
        assert image.size == (1280, 2400)
        pixels = np.asarray(image.convert("RGB"), dtype=float)
    assert pixels.std() > 20
    assert (pixels.min(axis=2) < 200).mean() > 0.03, "screenshot is almost all white"


@pytest.mark.slow
@needs_chromium
def test_chromium_loads_every_image(report_file: Path, tmp_path: Path) -> None:
    result = chromium(tmp_path, "--dump-dom", "--virtual-time-budget=5000", report_file.as_uri())
    body = re.search(r"<body\b[^>]*>", result.stdout)
    assert body, f"no DOM dumped (exit {result.returncode}): {result.stderr[-2000:]}"
    total = re.search(r'data-images-total="(\d+)"', body.group(0))
    loaded = re.search(r'data-images-loaded="(\d+)"', body.group(0))
    assert total and loaded, f"the load script did not run: {body.group(0)}"
    assert int(total.group(1)) == len(images(report_file.read_text())) == 9
    assert int(loaded.group(1)) == int(total.group(1))


def test_unknown_and_missing_keys(make_run: MakeRun, tmp_path: Path) -> None:
    import json

    from simclr.evaluation.results import validate_metrics

    run = make_run("odd", with_plots=False)
    doc = json.loads((run / "eval" / "metrics.json").read_text())
    doc["extra_top_level"] = {"anything": [1, 2]}
    del doc["results"]["linear"]["seconds"]
    doc["results"]["finetune"] = {
        "method": "finetune",
        "created": "2026-11-23T12:00:00+00:00",
        "protocol": {"backbone_sha256": "cd", "seed": 1, "labels": "10%"},
        "metrics": {"top1": 0.7777, "top5": None, "curve": [0.1, 0.2]},
    }
    doc["results"]["custom"] = {
        "method": "custom",
        "created": "2026-11-23T12:00:00+00:00",
        "protocol": {"backbone_sha256": "cd", "seed": 1},
        "metrics": {"balanced_accuracy": 0.5, "note": "hi", "deep": {"a": {"b": {"c": 1}}}, "empty": {}},
    }
    validate_metrics(doc)
    (run / "eval" / "metrics.json").write_text(json.dumps(doc))
    page = write_report([run, make_run("plain")], tmp_path / "odd.html").read_text()
    comparison = page[page.index("<h2>Comparison") : page.index('id="run-1"')]
    assert "fine-tune top-1" in comparison and "77.77%" in comparison
    assert "50.00%" in page and "hi" in page and "10%" in page
    assert (
        page.index("<h3>linear probe") < page.index("<h3>kNN") < page.index("<h3>fine-tune") < page.index("<h3>custom")
    )
