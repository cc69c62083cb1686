"""User-facing text speaks of methods, papers and machines users know, not of the project's internal history:
no "seed 00N" labels, "session N" or "this machine" in src/ (help, errors, shipped recipes), README.md, docs/
or BENCHMARKS.md. docs/SOURCES.md (the one page that maps the original projects) and the table of renamed
recipes are the exceptions."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# whitespace, not a space, so that a label broken over two lines is found too
INTERNAL = re.compile(r"seeds?\s?00[0-4]|session\s+[0-9]|this\s+machine", re.IGNORECASE)
ALIAS_TABLE = re.compile(r"^RENAMED_RECIPES = \{$.*?^\}$", re.MULTILINE | re.DOTALL)


def _scanned() -> list[Path]:
    files = [REPO / "README.md", REPO / "BENCHMARKS.md", *sorted((REPO / "docs").rglob("*.md"))]
    files += [
        path
        for path in sorted((REPO / "src").rglob("*"))
        if path.is_file() and path.suffix != ".pyc" and not any(part.endswith(".egg-info") for part in path.parts)
    ]  # what an editable install writes beside the sources is not shipped text
    return [path for path in files if path != REPO / "docs" / "SOURCES.md"]


def internal_names(text: str) -> list[str]:
    """Every internal label in ``text``, the renamed-recipes table left out, with its line number."""
    text = ALIAS_TABLE.sub(lambda table: "\n" * table.group().count("\n"), text)
    return [f"line {text.count(chr(10), 0, hit.start()) + 1}: {hit.group()!r}" for hit in INTERNAL.finditer(text)]


def test_no_internal_names_in_user_facing_text() -> None:
    found = {}
    for path in _scanned():
        hits = internal_names(path.read_text(errors="replace"))
        if hits:
            found[str(path.relative_to(REPO))] = hits
    assert found == {}, f"name the method, paper or CPU model instead: {found}"


def test_the_check_finds_what_it_looks_for() -> None:
    assert internal_names("as seed 003 did\nrun on this\nmachine (Session 4); seed001-x") == [
        "line 1: 'seed 003'",
        "line 2: 'this\\nmachine'",
        "line 3: 'Session 4'",
        "line 3: 'seed001'",
    ]
    table = 'RENAMED_RECIPES = {\n    "seed001-a": "sthalles-a",\n}\nafter seed 002'
    assert internal_names(table) == ["line 4: 'seed 002'"]
    assert internal_names("--seed 0 and the seed's 42; this machine-learning") == ["line 1: 'this machine'"]
