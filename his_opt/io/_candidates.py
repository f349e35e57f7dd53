"""Public-prompt candidates: a text file with one prompt per line.

Blank lines and lines starting with ``#`` are skipped; surrounding whitespace is dropped. The
row number in errors is the line number. A repeated candidate is an error (it would only slow
the solver down and usually means a copy-paste slip).
"""

from __future__ import annotations

from pathlib import Path

from .._errors import InputError
from .._read import check_text
from ._table import read_text

__all__ = ["load_candidates"]


def load_candidates(path: str | Path) -> list[str]:
    """The candidate public prompts in ``path``, in file order; ``InputError`` if none or repeated."""
    label = str(path)
    first_line: dict[str, int] = {}
    out: list[str] = []
    for line_no, line in enumerate(read_text(path).splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        check_text(text, file=label, row=line_no, field="prompt")
        if text in first_line:
            raise InputError(
                f"duplicate candidate, first on line {first_line[text]}",
                file=label,
                row=line_no,
                field="prompt",
            )
        first_line[text] = line_no
        out.append(text)
    if not out:
        raise InputError("no candidate prompts (one per line; '#' starts a comment)", file=label)
    return out
