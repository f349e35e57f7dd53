"""Strict reading of small user-written text tables (CSV, and YAML lists of records).

Every problem becomes an ``InputError`` naming the file, the 1-based data row (the header is
row 0) and the field; messages about a row also give its line in the file, which differs from
the row when a quoted field spans several lines.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

from .._errors import InputError
from .._read import file_sha256, read_text

__all__ = [
    "Record",
    "check_header",
    "file_sha256",
    "parse_float",
    "parse_int",
    "read_csv_records",
    "read_text",
]


@dataclass(frozen=True)
class Record:
    """One data row: its 1-based row number, its first line in the file, and its cells by column."""

    row: int
    line: int
    cells: dict[str, str]


def read_csv_records(
    path: str | Path, *, name: str | None = None
) -> tuple[list[str], list[Record]]:
    """Parse a CSV file with a header row into stripped column names and records of stripped cells.

    Rows whose cells are all empty are skipped (they keep their row number for the rows after
    them). A row with more or fewer cells than the header, an empty or duplicated column name, and
    a file with no data rows are errors.
    """
    text = read_text(path)
    label = name or str(path)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header_cells = next(reader, None)
    except csv.Error as err:
        raise InputError(f"malformed CSV header ({err})", file=label, row=0) from err
    if header_cells is None or not any(c.strip() for c in header_cells):
        raise InputError("file is empty (expected a header row)", file=label)
    header = [c.strip() for c in header_cells]
    seen: set[str] = set()
    for i, col in enumerate(header, start=1):
        if not col:
            raise InputError(f"column {i} of the header has no name", file=label, row=0)
        if col in seen:
            raise InputError("column appears twice in the header", file=label, row=0, field=col)
        seen.add(col)
    records: list[Record] = []
    row = 0
    while True:
        line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            raise InputError(
                f"malformed CSV ({err}) (line {line})", file=label, row=row + 1
            ) from err
        row += 1
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            raise InputError(
                f"has {len(cells)} cells but the header has {len(header)} columns (line {line}); "
                "quote fields that contain commas",
                file=label,
                row=row,
            )
        records.append(
            Record(row, line, {c: v.strip() for c, v in zip(header, cells, strict=True)})
        )
    if not records:
        raise InputError("no data rows", file=label)
    return header, records


def check_header(
    header: list[str],
    *,
    file: str,
    required: tuple[str, ...],
    known: tuple[str, ...],
    notes: bool = False,
) -> None:
    """Refuse a header without a ``required`` column or with one not ``known`` (``notes``:
    columns starting with ``_`` are the user's notes, allowed)."""
    for col in required:
        if col not in header:
            raise InputError(
                f"missing required column (header: {', '.join(header)})",
                file=file,
                row=0,
                field=col,
            )
    for col in header:
        if col not in known and not (notes and col.startswith("_")):
            hint = " (prefix a note column with '_')" if notes else ""
            raise InputError(
                f"unknown column; known: {', '.join(known)}{hint}", file=file, row=0, field=col
            )


def parse_float(
    value: str,
    *,
    file: str,
    rec: Record,
    field: str,
    positive: bool = False,
) -> float:
    """A finite, non-negative (or strictly positive) number from a cell; ``InputError`` otherwise."""
    try:
        out = float(value)
    except ValueError:
        raise InputError(
            f"not a number: {value!r} (line {rec.line})", file=file, row=rec.row, field=field
        ) from None
    if not math.isfinite(out):
        raise InputError(
            f"must be a finite number, got {value!r} (line {rec.line})",
            file=file,
            row=rec.row,
            field=field,
        )
    if out < 0 or (positive and out == 0):
        need = "positive" if positive else "non-negative"
        raise InputError(
            f"must be {need}, got {value!r} (line {rec.line})", file=file, row=rec.row, field=field
        )
    return out


def parse_int(value: str, *, file: str, rec: Record, field: str, minimum: int = 0) -> int:
    """An integer ``>= minimum`` from a cell (``"4"`` or ``"4.0"``); ``InputError`` otherwise."""
    number = parse_float(value, file=file, rec=rec, field=field)
    if number != int(number):
        raise InputError(
            f"must be an integer, got {value!r} (line {rec.line})",
            file=file,
            row=rec.row,
            field=field,
        )
    if number < minimum:
        raise InputError(
            f"must be at least {minimum}, got {value!r} (line {rec.line})",
            file=file,
            row=rec.row,
            field=field,
        )
    return int(number)
