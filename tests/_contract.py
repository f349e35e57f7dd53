"""The bad-input contract, for tests of each format: a subcommand given a malformed file exits 2
with one line ``his-opt: error: ...``, prints no traceback, and leaves every file in the folder
byte for byte (none created either)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from his_opt.cli import main
from his_opt.resources import example_path

SIMILARITY = "users_small_similarity.csv"
"""The small example's precomputed similarities: a solve that loads no MiniLM."""


def solve_folder(folder: Path) -> list[str]:
    """Copy the small example into ``folder`` beside an old report/plan pair; returns the
    ``solve`` arguments that would overwrite that pair."""
    for name in ("users_small.csv", SIMILARITY):
        shutil.copyfile(example_path(name), folder / name)
    (folder / "old").mkdir()
    (folder / "old" / "report.xlsx").write_bytes(b"old report, not a workbook")
    (folder / "old" / "plan.json").write_text('{"old": true}')
    return ["solve", "users_small.csv", "--similarity", SIMILARITY, "--out", "old/report.xlsx",
            "--plan", "old/plan.json"]  # fmt: skip


def _snapshot(root: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(root)): p.read_bytes() if p.is_file() else None
        for p in sorted(root.rglob("*"))
        if not p.name.endswith(".pyc")
    }


def refused(argv: list[str], folder: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``his-opt ARGV --quiet`` in ``folder`` and assert the contract; returns the line."""
    before = _snapshot(folder)
    capsys.readouterr()
    code = main([*argv, "--quiet"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("his-opt: error: "), err
    assert "Traceback" not in err
    assert _snapshot(folder) == before
    return lines[0]
