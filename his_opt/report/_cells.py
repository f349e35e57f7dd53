"""Writing cells safely and laying out printable tables.

Every value reaches the workbook through :func:`put`: text is stored as a text cell (never a
formula, whatever its first character), characters a workbook cannot hold are replaced, and
non-finite numbers become empty cells. Tables get a bold wrapped header, number formats, widths,
a filter and print setup (landscape, fit to width, header row repeated on every page).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["FONT", "LINE_PT", "Column", "cell_text", "line_count", "print_setup", "put", "table_style",
           "write_table"]

# What openpyxl refuses in a cell (XML 1.0 forbids these control characters).
_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_MAX_CELL_CHARS = 32_767  # Excel's limit per cell
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
LINE_PT = 13.0  # height of one text line at 10-11 pt, in points
_CHARS_PER_WIDTH = 1.05  # characters per column-width unit (wide fonts like DejaVu Sans)
_HEADER_SHRINK = 0.7  # bold header text wraps at word ends: count it as narrower columns
FONT = "Calibri"


@dataclass(frozen=True)
class Column:
    """One table column: the plan field it shows, its label (with unit), format and width."""

    key: str
    label: str
    number_format: str | None = None
    width: float = 10.0
    wrap: bool = False


def cell_text(text: str) -> str:
    """``text`` as a workbook can hold it: forbidden control characters become U+FFFD and the
    text is cut at Excel's 32,767 characters per cell."""
    text = _ILLEGAL.sub("\ufffd", text)
    return text if len(text) <= _MAX_CELL_CHARS else text[: _MAX_CELL_CHARS - 1] + "\u2026"


def line_count(text: Any, width: float) -> int:
    """Lines ``text`` takes when wrapped in a column ``width`` characters wide."""
    if text is None:
        return 1
    per_line = max(int(width * _CHARS_PER_WIDTH), 1)
    return sum(max(math.ceil(len(part) / per_line), 1) for part in str(text).split("\n"))


def put(ws: Any, row: int, col: int, value: Any, number_format: str | None = None,
        style: str | None = None) -> Any:
    """Write ``value`` to ``ws`` at (row, col) and return the cell.

    Strings are written as text cells: openpyxl would otherwise store a string starting with
    ``=`` as a live formula. Text that a spreadsheet would read as a formula when retyped also
    gets the quote prefix, so editing the cell keeps it text. ``style``: a named style of the
    workbook (see :func:`table_style`), applied first.
    """
    cell = ws.cell(row=row, column=col)
    if style is not None:
        cell.style = style
    if value is None:
        return cell
    if isinstance(value, bool):
        cell.value = "yes" if value else "no"
        return cell
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            return cell
        cell.value = value
        if number_format:
            cell.number_format = number_format
        return cell
    text = cell_text(str(value))
    cell.value = text
    cell.data_type = "s"
    if text.startswith(_FORMULA_START):
        cell.quotePrefix = True
    return cell


def table_style(book: Any, number_format: str | None, wrap: bool) -> str:
    """The name of the workbook's named style for a table body cell (top-aligned, wrapped or
    not, with ``number_format``), added on first use. One named style per column kind: setting
    alignment and format cell by cell costs openpyxl a style lookup each (50,000 users: most of
    the report's time)."""
    from copy import copy

    from openpyxl.styles import Alignment, NamedStyle
    from openpyxl.styles.fonts import DEFAULT_FONT

    fmt = number_format or "General"
    name = f"his-opt {'wrapped' if wrap else 'top'} {fmt}"
    if name not in book.named_styles:
        book.add_named_style(NamedStyle(name=name, font=copy(DEFAULT_FONT), number_format=fmt,
                                        alignment=Alignment(wrap_text=wrap, vertical="top")))
    return name


def write_table(
    ws: Any,
    columns: Sequence[Column],
    rows: Sequence[dict[str, Any]],
    *,
    first_row: int = 1,
    first_col: int = 1,
    header_height: float = 30.0,
    missing: dict[int, str] | None = None,
) -> tuple[int, int]:
    """Write a header and ``rows`` (dicts keyed by ``Column.key``) at (first_row, first_col).

    ``missing`` maps a row index to the text shown in that row's empty number cells (an
    infeasible baseline shows "no plan", not a blank). Returns the last row and column written.
    """
    from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
    from openpyxl.utils import get_column_letter

    header_font = Font(name=FONT, bold=True)
    header_fill = PatternFill("solid", fgColor="DDEBF7")
    header_align = Alignment(wrap_text=True, vertical="top")
    thin = Side(style="thin", color="BFBFBF")
    border = Border(bottom=thin)
    missing = missing or {}
    styles = [table_style(ws.parent, c.number_format, c.wrap) for c in columns]
    for j, column in enumerate(columns):
        c = put(ws, first_row, first_col + j, column.label)
        c.font, c.fill, c.alignment, c.border = header_font, header_fill, header_align, border
        ws.column_dimensions[get_column_letter(first_col + j)].width = column.width
    ws.row_dimensions[first_row].height = max(
        header_height,
        LINE_PT * max(line_count(c.label, c.width * _HEADER_SHRINK) for c in columns) + 4)
    for i, row in enumerate(rows):
        r = first_row + 1 + i
        lines = 1
        for j, column in enumerate(columns):
            value = row.get(column.key)
            if value is None and column.number_format and i in missing:
                value = missing[i]
            put(ws, r, first_col + j, value, style=styles[j])
            if column.wrap:
                lines = max(lines, line_count(value, column.width))
        if lines > 1:
            ws.row_dimensions[r].height = LINE_PT * lines + 2
    return first_row + len(rows), first_col + len(columns) - 1


def print_setup(ws: Any, *, title_rows: str | None = "1:1", landscape: bool = True) -> None:
    """A4, landscape, fit to one page wide (as many tall as needed), ``title_rows`` repeated at
    the top of every page, the sheet name and page number in the footer."""
    ws.page_setup.orientation = "landscape" if landscape else "portrait"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.page_margins.left = ws.page_margins.right = 0.4
    ws.page_margins.top = ws.page_margins.bottom = 0.5
    ws.print_options.horizontalCentered = True
    if title_rows:
        ws.print_title_rows = title_rows
    ws.oddFooter.center.text = "&A, page &P of &N"
    ws.oddFooter.center.size = 8
