"""docs/CLI.md and docs/DATASETS.md are generated from the code (tools/gen_docs.py, ``make docs``): a flag,
a default, a help text or a dataset changed without regenerating them fails here, naming the fix."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_docs", REPO / "tools" / "gen_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _generator()


@pytest.mark.parametrize("name", sorted(GEN.GENERATED))
def test_the_generated_page_is_up_to_date(name: str) -> None:
    written = (REPO / "docs" / name).read_text()
    assert written == GEN.GENERATED[name](), f"docs/{name} is out of date: run make docs"


def test_every_command_and_flag_is_on_the_cli_page() -> None:
    from simclr.cli import build_parser

    page = GEN.cli_markdown()
    parser = build_parser()
    for name, sub in GEN._subcommands(parser).items():
        assert f"## `simclr {name}`" in page
        for action in sub._actions:
            for flag in action.option_strings:
                if flag not in ("-h", "--help") and action.help != "==SUPPRESS==":
                    assert f"`{flag}`" in page, f"{flag} of simclr {name} is not in docs/CLI.md"
    assert "## `simclr data pack`" in page  # sub-commands of sub-commands too
    assert "| `--epochs` | 100 |" in page  # a default as the dataclass holds it, not the parser's None


def test_a_stale_page_is_named_with_the_fix(tmp_path: Path) -> None:
    for name, make in GEN.GENERATED.items():
        (tmp_path / name).write_text(make())
    assert GEN.stale_files(tmp_path) == []
    (tmp_path / "CLI.md").write_text("# an old page\n")
    assert GEN.stale_files(tmp_path) == ["CLI.md"]
    check = subprocess.run(
        [sys.executable, str(REPO / "tools" / "gen_docs.py"), "--check"], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stderr  # the repository's own pages are current
