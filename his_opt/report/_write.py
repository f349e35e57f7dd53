"""Write the report and the plan together: both appear, or neither changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .._atomic import atomic_path
from ._excel import write_workbook
from ._plan_json import plan_json_text

__all__ = ["write_reports"]


def write_reports(out: str | Path, plan_path: str | Path, doc: dict[str, Any], hiqm: Any) -> None:
    """Write the Excel report to ``out`` and the plan JSON to ``plan_path``.

    Both are written to temporary files first; only when both are complete are they renamed
    into place, one right after the other, so an interrupted run leaves no half-written file.
    """
    text = plan_json_text(doc)
    with atomic_path(out) as xlsx_tmp, atomic_path(plan_path) as json_tmp:
        write_workbook(xlsx_tmp, doc, hiqm)
        json_tmp.write_text(text, encoding="utf-8")
