"""simclr evaluate reports how far it is on stderr: feature extraction of each split (images done / total) and
each stage of the protocol, as a line per tenth when stderr is not a terminal, as rich bars when it is."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from simclr.cli import main

LINE = re.compile(r"^evaluate (?P<task>.+): (?P<done>\d+)/(?P<total>\d+)$")
LIMITS = ["--limit-train-images", "60", "--limit-test-images", "30", "--batch-size", "16", "--no-plots"]


def progress_lines(err: str) -> list[tuple[str, int, int]]:
    return [
        (match["task"], int(match["done"]), int(match["total"]))
        for match in map(LINE.match, err.splitlines())
        if match is not None
    ]


def counts(lines: list[tuple[str, int, int]], task: str) -> list[tuple[int, int]]:
    return [(done, total) for name, done, total in lines if name == task]


def test_progress_lines_reach_their_totals_in_order(make_run, cifar_small: Path, capsys) -> None:
    run = make_run("cifar10", cifar_small)
    assert main(["evaluate", str(run), *LIMITS, "--robustness"]) == 0
    captured = capsys.readouterr()
    lines = progress_lines(captured.err)
    assert not progress_lines(captured.out)  # progress never mixes with the results on stdout
    # 60 images in batches of 16: a line per tenth crossed, the last at the total
    assert counts(lines, "train") == [(16, 60), (32, 60), (48, 60), (60, 60)]
    assert counts(lines, "test")[-1] == (30, 30) and len(counts(lines, "test")) == 2
    shifted = counts(lines, "test (shifted)")
    assert shifted[-1][0] == shifted[-1][1] == 30 * 8 and [done for done, _ in shifted] == sorted(
        done for done, _ in shifted
    )
    order = [(task, done) for task, done, _ in lines]
    expected = [
        ("linear", 0),
        ("train", 60),
        ("test", 30),
        ("linear", 1),
        ("knn", 0),  # the features are cached by now: nothing to extract again
        ("knn", 1),
        ("robustness", 0),
        ("test (shifted)", 240),
        ("robustness", 1),
    ]
    assert [step for step in order if step in expected] == expected
    assert order.index(("train", 16)) < order.index(("train", 60)) < order.index(("test", 30))


def test_spirograph_reports_its_re_rendered_splits(make_run, capsys) -> None:
    run = make_run("spirograph", train_size=48, test_size=24)
    assert main(["evaluate", str(run), "--no-plots", "--batch-size", "16"]) == 0
    lines = progress_lines(capsys.readouterr().err)
    assert counts(lines, "train (re-rendered, 1 per image)")[-1] == (48, 48)
    assert counts(lines, "test (re-rendered, 1 per image)")[-1] == (24, 24)
    assert [task for task, done, _ in lines if done == 0] == ["regression"]


def test_a_terminal_gets_rich_bars_not_lines(make_run, cifar_small: Path, capsys, monkeypatch) -> None:
    run = make_run("cifar10", cifar_small)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(["evaluate", str(run), *LIMITS]) == 0
    captured = capsys.readouterr()
    assert not progress_lines(captured.err) and "100%" in captured.err
    for task in ("evaluate train", "evaluate test", "evaluate linear", "evaluate knn"):
        assert task in captured.err
    assert "evaluate" not in captured.out.replace("simclr evaluate", "")


def test_library_callers_get_no_progress(make_run, cifar_small: Path, capsys) -> None:
    """An EvalSession made in Python reports nothing unless given a progress callback."""
    from simclr.evaluation.loading import resolve_run
    from simclr.evaluation.options import EvalSessionOptions
    from simclr.evaluation.protocols.knn import run_knn
    from simclr.evaluation.session import EvalSession

    options = EvalSessionOptions(limit_train_images=40, limit_test_images=20, batch_size=16, use_cache=False)
    run = resolve_run(make_run("cifar10", cifar_small))
    run_knn(EvalSession(run, options))
    assert not re.search(r"\d+/\d+", capsys.readouterr().err)
    seen: list[tuple[str, int, int]] = []
    run_knn(EvalSession(run, options, progress=lambda task, done, total: seen.append((task, done, total))))
    assert seen[-1] == ("test", 20, 20) and ("train", 40, 40) in seen


@pytest.fixture(autouse=True)
def _plain_terminal(monkeypatch) -> None:
    """Rich reads these to decide how to draw; keep the test's own environment out of it."""
    for name in ("FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)
