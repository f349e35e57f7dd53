"""Errors raised on bad input: one line naming the file, row and field."""

from __future__ import annotations

from pathlib import Path

__all__ = ["InputError"]


class InputError(ValueError):
    """Bad user input. ``str(err)`` is one line: ``file:row: field: what is wrong``.

    ``row`` is the 1-based data row (the header is row 0); ``None`` when the problem is not tied
    to a row (a missing file or column, a malformed config).
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        row: int | None = None,
        field: str | None = None,
    ) -> None:
        self.file = None if file is None else ("<stdin>" if str(file) == "-" else str(file))
        self.row = row
        self.field = field
        self.message = message
        super().__init__(self._format())

    def _format(self) -> str:
        if self.file is None and self.field is not None and self.field.startswith("-"):
            return f"{self.field}: {self.message}"  # a command-line option, not a file
        where = self.file or "<input>"
        if self.row is not None:
            where += f": row {self.row}"
        if self.field is not None:
            where += f": field '{self.field}'"
        return f"{where}: {self.message}"
