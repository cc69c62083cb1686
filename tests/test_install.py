"""The no-extras install: the wheel, installed without extras into a fresh venv (torch given), pretrains and
evaluates a toy Spirograph run to its report, and none of the extras' packages comes with it.

Minutes, so it is marked ``install`` and left out of the default run (pyproject's addopts, ``make test``);
``pytest -m install tests/test_install.py`` or ``make test-install`` runs it, and CI does after the suite."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.install


def test_a_core_install_pretrains_and_evaluates_to_its_report() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, str(REPO / "tools" / "check_install.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert "metrics.json and report.html written" in done.stdout
    assert "extra-only packages is importable" in done.stdout  # the last step ran
    assert done.stdout.rstrip().endswith("check_install: OK")
