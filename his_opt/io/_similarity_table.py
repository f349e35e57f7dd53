"""A precomputed similarity matrix: the CSV ``his-opt similarity --labels prompt`` writes.

Header ``prompt`` then one prompt per column; each row starts with its prompt, then the cosines.
``solve --similarity FILE`` reads it instead of embedding the prompts, so no torch is loaded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._errors import InputError
from ._table import read_csv_records

__all__ = ["SimilarityTable", "load_similarity_table"]


@dataclass(frozen=True)
class SimilarityTable:
    """Cosines ``values[i, j]`` of prompt ``rows[i]`` against prompt ``cols[j]``."""

    file: str
    rows: tuple[str, ...]
    cols: tuple[str, ...]
    values: np.ndarray

    def lookup(self, publics: Sequence[str], prompts: Sequence[str]) -> np.ndarray:
        """The ``(publics, prompts)`` sub-matrix; ``InputError`` naming the first missing prompt."""
        r = {t: i for i, t in enumerate(self.rows)}
        c = {t: j for j, t in enumerate(self.cols)}
        for text, index, what in [(p, r, "row") for p in publics] + [(u, c, "column") for u in prompts]:
            if text not in index:
                raise InputError(
                    f"has no {what} for prompt {text[:60]!r}; write it with "
                    "`his-opt similarity PROMPTS.txt --labels prompt` over every user prompt "
                    "and candidate",
                    file=self.file,
                    field="--similarity",
                )
        ip = np.array([r[p] for p in publics], dtype=int)
        iu = np.array([c[u] for u in prompts], dtype=int)
        return self.values[np.ix_(ip, iu)]


def load_similarity_table(path: str | Path) -> SimilarityTable:
    """Read and check a similarity CSV: prompt labels, unique, cosines finite in [-1, 1]."""
    label = str(path)
    header, records = read_csv_records(path, name=label)
    if header[0] != "prompt":
        raise InputError(
            "the first header cell must be 'prompt' (a CSV written by `his-opt similarity`)",
            file=label,
            row=0,
        )
    cols = tuple(header[1:])
    if not cols:
        raise InputError("no prompt columns", file=label, row=0)
    if all(c.isdigit() for c in cols) and cols == tuple(str(i) for i in range(len(cols))):
        raise InputError(
            "labels are prompt indices; write the matrix with `his-opt similarity --labels "
            "prompt` so solve can match prompts",
            file=label,
            row=0,
        )
    rows: list[str] = []
    values = np.empty((len(records), len(cols)))
    seen: dict[str, int] = {}
    for i, rec in enumerate(records):
        text = rec.cells["prompt"]
        if text in seen:
            raise InputError(
                f"prompt repeated, first in row {seen[text]}", file=label, row=rec.row, field="prompt"
            )
        seen[text] = rec.row
        rows.append(text)
        for j, col in enumerate(cols):
            cell = rec.cells[col]
            try:
                v = float(cell)
            except ValueError:
                raise InputError(
                    f"not a number: {cell!r}", file=label, row=rec.row, field=col[:60]
                ) from None
            if not (math.isfinite(v) and -1.0 <= v <= 1.0):
                raise InputError(
                    f"a cosine lies in [-1, 1], got {cell!r}", file=label, row=rec.row, field=col[:60]
                )
            values[i, j] = v
    return SimilarityTable(label, tuple(rows), cols, values)
