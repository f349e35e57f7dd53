"""Write the report and the plan together: both appear, or neither changes."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from .._atomic import atomic_path, atomic_paths
from ._excel import write_workbook
from ._plan_json import plan_json_text

__all__ = ["write_reports"]

_STDOUT = "-"


def write_reports(out: str | Path, plan_path: str | Path, doc: dict[str, Any], hiqm: Any) -> None:
    """Write the Excel report to ``out`` and the plan JSON to ``plan_path`` as a pair.

    Both are written to temporary files first; only when both are complete are they renamed
    into place, with SIGINT/SIGTERM held off between the two renames, so a stopped run leaves
    both new files or neither and no temporary behind. ``-`` for one of them writes it to
    stdout (after the other file is in place).
    """
    text = plan_json_text(doc)
    if str(plan_path) == _STDOUT:
        with atomic_path(out) as xlsx_tmp:
            write_workbook(xlsx_tmp, doc, hiqm)
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    if str(out) == _STDOUT:
        with tempfile.TemporaryDirectory() as folder, atomic_path(plan_path) as json_tmp:
            xlsx_tmp = Path(folder) / "report.xlsx"
            write_workbook(xlsx_tmp, doc, hiqm)
            data = xlsx_tmp.read_bytes()
            json_tmp.write_text(text, encoding="utf-8")
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    with atomic_paths(out, plan_path) as (xlsx_tmp, json_tmp):
        write_workbook(xlsx_tmp, doc, hiqm)
        json_tmp.write_text(text, encoding="utf-8")
