"""The Excel report, built from the plan document, for an operator to read and print.

Sheets: Overview (the plan in words and its key figures), Charts, Groups, Users, Servers,
Baselines, Model (quality model, GPU profiles, scenario) and Chart data. Every figure is read
from the plan document that is also written as JSON, so the two cannot disagree. Cells are
written one by one through :func:`his_opt.report._cells.put`, so text is never a formula.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from .._atomic import atomic_path
from ._cells import FONT, LINE_PT, Column, line_count, print_setup, put, write_table
from ._charts import add_charts, quality_curves
from ._sheets import (
    BASELINE_COLUMNS,
    GROUP_COLUMNS,
    MODEL_COLUMNS,
    OPTIONAL_USER_KEYS,
    SERVER_COLUMNS,
    USER_COLUMNS,
    baseline_rows,
    group_rows,
    model_rows,
    overview_lines,
    server_rows,
    used_columns,
    user_rows,
)

__all__ = [
    "SHEETS",
    "SHEET_COLUMNS",
    "key_figures",
    "read_report_table",
    "quality_curves",
    "report_tables",
    "write_excel_report",
    "write_workbook",
]

SHEETS: tuple[str, ...] = (
    "Overview", "Charts", "Groups", "Users", "Servers", "Baselines", "Model", "Chart data",
)
_TABLE_SHEETS = ("Groups", "Users", "Servers", "Baselines", "Model")
SHEET_COLUMNS: dict[str, tuple[Column, ...]] = {
    "Groups": GROUP_COLUMNS,
    "Users": USER_COLUMNS,
    "Servers": SERVER_COLUMNS,
    "Baselines": BASELINE_COLUMNS,
    "Model": MODEL_COLUMNS,
}


def key_figures(plan: dict[str, Any]) -> list[tuple[str, Any, str | None]]:
    """(label with unit, value, number format) rows of the Overview's key figures."""
    t, st = plan.get("totals", {}), plan.get("status", {})
    prov = plan.get("provenance", {})
    users = plan["users"]
    on_edge = sum(1 for u in users if u["device_steps"] == 0)
    pts, sec = "#,##0.000", "#,##0.00"
    return [
        ("Status", st.get("status"), None),
        ("Objective (points, higher is better)", t.get("objective"), pts),
        ("Bound: no plan scores above (points)", st.get("bound"), pts),
        ("Gap to the bound (%)", st.get("gap"), "0.000%"),
        ("What the bound covers", st.get("bound_scope"), None),
        ("Solve time (s)", st.get("solve_time_s"), "0.0"),
        ("Quality term (points)", t.get("quality_term"), pts),
        ("Delay term (points)", t.get("delay_term"), pts),
        ("Energy term (points)", t.get("energy_term"), pts),
        ("Users", len(users), "0"),
        ("Shared groups", t.get("shared_groups"), "0"),
        ("Users running alone", t.get("solo_users"), "0"),
        ("Users finishing on the edge (z = 0)", on_edge, "0"),
        ("Users finishing on their devices (z > 0)", len(users) - on_edge, "0"),
        ("Mean predicted quality (CLIP score)", t.get("mean_quality"), "0.0000"),
        ("Lowest predicted quality (CLIP score)", t.get("min_quality"), "0.0000"),
        ("Mean delay (s)", t.get("mean_delay_s"), sec),
        ("Longest delay (s)", t.get("max_delay_s"), sec),
        ("Energy, all users (J)", t.get("energy_j"), "#,##0"),
        ("GPU time used, all servers (s)", t.get("gpu_time_s"), sec),
        ("GPU time, simulated schedule (s)", t.get("gpu_time_simulated_s"), sec),
        ("GPU budget, all servers (s)", t.get("gpu_budget_s"), sec),
        ("GPU time of the same steps unshared (s)", t.get("gpu_time_unshared_s"), sec),
        ("GPU time saved by sharing (s)", t.get("gpu_time_saved_by_sharing_s"), sec),
        ("GPU time saved by sharing (%)", t.get("gpu_time_saved_by_sharing_fraction"), "0.0%"),
        ("GPU time of the IIS baseline (s)", t.get("gpu_time_iis_s"), sec),
        ("Seed", prov.get("seed"), "0"),
        ("his-opt version", prov.get("his_opt_version"), None),
        ("Created (UTC)", prov.get("created_utc"), None),
    ]


def report_tables(plan: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """The rows of each table sheet as DataFrames whose columns are plan field names (the
    workbook shows them under their labels): ``groups``, ``users``, ``servers``, ``baselines``,
    ``model`` and ``key_figures`` (label, value)."""
    frames = {
        "groups": (GROUP_COLUMNS, group_rows(plan)),
        "users": (USER_COLUMNS, user_rows(plan)),
        "servers": (SERVER_COLUMNS, server_rows(plan)),
        "baselines": (BASELINE_COLUMNS, baseline_rows(plan)),
        "model": (MODEL_COLUMNS, model_rows(plan)),
    }
    out = {k: pd.DataFrame(rows, columns=[c.key for c in cols]) for k, (cols, rows) in
           frames.items()}
    out["key_figures"] = pd.DataFrame([(a, b) for a, b, _ in key_figures(plan)],
                                      columns=["label", "value"])
    return out


def read_report_table(path: str | Path, sheet: str) -> pd.DataFrame:
    """A table sheet of a written report, its columns renamed from labels back to plan fields
    (``"Delay (s)"`` -> ``delay_s``); text cells stay text."""
    keys = {c.label: c.key for c in SHEET_COLUMNS[sheet]}
    frame = pd.read_excel(path, sheet_name=sheet, engine="openpyxl", dtype=object)
    return frame.rename(columns=keys)


def write_excel_report(path: str | Path, plan: dict[str, Any], hiqm: Any) -> None:
    """Write the report workbook for ``plan`` (the plan document) atomically to ``path``."""
    with atomic_path(path) as tmp:
        write_workbook(tmp, plan, hiqm)


def write_workbook(path: str | Path, plan: dict[str, Any], hiqm: Any) -> None:
    """Write the workbook to ``path`` directly (callers provide atomicity)."""
    from openpyxl import Workbook

    book = Workbook()
    sheets = {name: book.create_sheet(name) for name in SHEETS}
    book.remove(book.worksheets[0])
    _write_overview(sheets["Overview"], plan)
    users = user_rows(plan)
    tables: dict[str, tuple[list[Column], list[dict[str, Any]], dict[int, str]]] = {
        "Groups": (list(GROUP_COLUMNS), group_rows(plan), {}),
        "Users": (used_columns(USER_COLUMNS, users, OPTIONAL_USER_KEYS), users, {}),
        "Servers": (list(SERVER_COLUMNS), server_rows(plan), {}),
        "Model": (list(MODEL_COLUMNS), model_rows(plan), {}),
    }
    base = baseline_rows(plan)
    no_plan = {i: "no plan" for i, r in enumerate(base) if r.get("objective") is None}
    tables["Baselines"] = (list(BASELINE_COLUMNS), base, no_plan)
    for name in _TABLE_SHEETS:
        columns, rows, missing = tables[name]
        ws = sheets[name]
        last_row, last_col = write_table(ws, columns, rows, missing=missing)
        ws.freeze_panes = "B2"
        ws.auto_filter.ref = f"A1:{_col(last_col)}{max(last_row, 1)}"
        print_setup(ws)
    add_charts(sheets["Charts"], sheets["Chart data"], plan, hiqm)
    print_setup(sheets["Charts"], title_rows=None)
    print_setup(sheets["Chart data"], title_rows=None)
    for col in "ABCDEFGHIJK":
        sheets["Chart data"].column_dimensions[col].width = 22
    book.active = 0
    book.save(path)


def _write_overview(ws: Any, plan: dict[str, Any]) -> None:
    """The plan in words (topic, sentence), then the key figures in two columns of
    (label with unit, value) pairs, sized to print on one landscape page."""
    from openpyxl.styles import Alignment, Font, PatternFill

    t = plan.get("totals", {})
    n_srv = len(plan.get("servers", []))
    title = (f"his-opt plan: {len(plan['users'])} users, {t.get('shared_groups', 0)} shared "
             f"groups, {n_srv} edge server{'s' if n_srv != 1 else ''}")
    put(ws, 1, 1, title).font = Font(name=FONT, bold=True, size=14)
    widths = {"A": 38, "B": 26, "C": 40, "D": 26}
    for col, width in widths.items():
        ws.column_dimensions[col].width = width
    text_width = widths["B"] + widths["C"] + widths["D"]
    wrap, bold = Alignment(wrap_text=True, vertical="top"), Font(name=FONT, bold=True)
    fill = PatternFill("solid", fgColor="DDEBF7")
    row = 3
    for a, b in (("The plan in words", None), *overview_lines(plan)):
        ca, cb = put(ws, row, 1, a), put(ws, row, 2, b)
        ca.font, ca.alignment, cb.alignment = bold, wrap, wrap
        ws.merge_cells(start_row=row, start_column=2, end_row=row, end_column=4)
        ws.row_dimensions[row].height = LINE_PT * max(line_count(b, text_width),
                                                   line_count(a, widths["A"])) + 3
        if b is None:
            ca.fill = fill
        row += 1
    row += 1
    figures = key_figures(plan)
    half = (len(figures) + 1) // 2
    for j, text in enumerate(("Key figure", "Value", "Key figure", "Value")):
        c = put(ws, row, j + 1, text)
        c.font, c.fill = bold, fill
    for i, (label, value, fmt) in enumerate(figures):
        r, c0 = row + 1 + i % half, 1 + 2 * (i // half)
        put(ws, r, c0, label).alignment = wrap
        put(ws, r, c0 + 1, value, fmt).alignment = Alignment(horizontal="left", wrap_text=True,
                                                             vertical="top")
        lines = max(line_count(label, widths["A"] if c0 == 1 else widths["C"]),
                    line_count(value if isinstance(value, str) else None, widths["B"]))
        if lines > 1:
            dim = ws.row_dimensions[r]
            dim.height = max(dim.height or 0, LINE_PT * lines + 2)
    print_setup(ws, title_rows=None)
    ws.page_setup.fitToHeight = 1


def _col(index: int) -> str:
    from openpyxl.utils import get_column_letter

    return get_column_letter(index)
