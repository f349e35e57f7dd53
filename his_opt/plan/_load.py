"""Read a plan file (``-`` is stdin) and validate it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .._read import read_json

__all__ = ["load_plan_document"]


def load_plan_document(path: str | Path) -> dict[str, Any]:
    """The validated ``his-opt/plan/1`` document in ``path``; ``InputError`` naming file, row
    (1-based index in ``groups`` or ``users``) and field on the first problem."""
    from ..report._schema import validate_plan

    doc = read_json(path)
    validate_plan(doc, source="<stdin>" if str(path) == "-" else path)
    return doc
