"""Output paths checked before any work starts: a run never fails at its final write."""

from __future__ import annotations

import os
from pathlib import Path

from ._errors import InputError

__all__ = ["STDOUT", "check_output", "check_output_dir"]

STDOUT = "-"


def _writable_parent(path: Path, flag: str) -> None:
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"cannot be created: {parent} is a file, not a folder", file=path, field=flag)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"cannot be created: folder {parent} is read-only", file=path, field=flag)


def check_output(path: str | Path, *, flag: str, allow_stdout: bool = False) -> None:
    """``InputError`` unless ``path`` can be written as a file (``-`` is stdout if allowed)."""
    if str(path) == STDOUT:
        if allow_stdout:
            return
        raise InputError("'-' (stdout) is not supported here; name a file", field=flag)
    path = Path(path)
    if path.is_dir():
        raise InputError("is a directory; name a file", file=path, field=flag)
    if path.exists() and not os.access(path, os.W_OK):
        raise InputError("is read-only", file=path, field=flag)
    _writable_parent(path, flag)


def check_output_dir(path: str | Path, *, flag: str) -> None:
    """``InputError`` unless ``path`` is a folder that exists or can be created, and is writable."""
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise InputError("is a file, not a folder", file=path, field=flag)
        if not os.access(path, os.W_OK | os.X_OK):
            raise InputError("folder is read-only", file=path, field=flag)
        return
    _writable_parent(path, flag)
