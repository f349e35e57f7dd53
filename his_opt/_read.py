"""The one input layer: read bytes, text, JSON and YAML/TOML files with one message per failure.

Every reader raises :class:`InputError` naming the file; ``-`` means standard input (read once,
so its provenance hash and its content agree). Text fields meant for prompts and names are
checked by :func:`check_text` (no NUL or control characters: they break Excel and file names).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

from ._errors import InputError

__all__ = [
    "SAFE_NAME",
    "STDIN",
    "is_safe_name",
    "check_text",
    "file_sha256",
    "read_bytes",
    "read_json",
    "read_mapping",
    "read_text",
]

STDIN = "-"
_stdin_cache: dict[str, bytes] = {}
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")
"""A name usable as a file name in any folder (user ids: ``generate`` writes ``USER_ID.png``)."""


def is_safe_name(value: str) -> bool:
    """Letters, digits, ``_``, ``-`` and ``.``, at most 100 characters, no ``..``."""
    return bool(SAFE_NAME.fullmatch(value)) and ".." not in value


def _label(path: str | Path) -> str:
    return "<stdin>" if str(path) == STDIN else str(path)


def read_bytes(path: str | Path) -> bytes:
    """A file's bytes (``-``: standard input); ``InputError`` for a missing file, a directory,
    a file without read permission or any other OS failure."""
    if str(path) == STDIN:
        if STDIN not in _stdin_cache:
            _stdin_cache[STDIN] = sys.stdin.buffer.read()
        return _stdin_cache[STDIN]
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError as err:
        raise InputError("file not found", file=path) from err
    except IsADirectoryError as err:
        raise InputError("is a directory, not a file", file=path) from err
    except PermissionError as err:
        raise InputError("cannot read: permission denied", file=path) from err
    except OSError as err:
        raise InputError(f"cannot read ({err.strerror or err})", file=path) from err


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (for provenance)."""
    return hashlib.sha256(read_bytes(path)).hexdigest()


def read_text(path: str | Path) -> str:
    """A file's UTF-8 text (a leading BOM is dropped); NUL bytes are refused."""
    raw = read_bytes(path)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise InputError(
            f"not UTF-8 text: byte {err.start} (line {line}) is 0x{raw[err.start]:02x}; "
            "save the file as UTF-8",
            file=_label(path),
        ) from err
    nul = text.find("\0")
    if nul >= 0:
        raise InputError(
            f"contains a NUL character (line {text.count(chr(10), 0, nul) + 1}); not a text file?",
            file=_label(path),
        )
    return text


def check_text(
    value: str, *, file: str | Path | None, row: int | None = None, field: str | None = None
) -> str:
    """``value`` unchanged if it holds no control character (tab and newline allowed)."""
    bad = _CONTROL.search(value)
    if bad:
        raise InputError(
            f"contains control character {bad.group()!r} at position {bad.start() + 1}",
            file=file,
            row=row,
            field=field,
        )
    return value


def _reject_constant(token: str) -> float:
    raise ValueError(f"{token} is not a number JSON allows")


def _finite_float(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):
        raise ValueError(f"number {token} overflows a float")
    return value


def read_json(path: str | Path, *, allow_non_finite: bool = False) -> Any:
    """Parse a JSON file strictly: NaN, Infinity and numbers overflowing a float are errors
    (``allow_non_finite``: parsed, for a caller whose validator names the field)."""
    text = read_text(path)
    strict: dict[str, Any] = (
        {} if allow_non_finite else {"parse_constant": _reject_constant, "parse_float": _finite_float}
    )
    try:
        return json.loads(text, **strict)
    except json.JSONDecodeError as err:
        raise InputError(
            f"not valid JSON: {err.msg} (line {err.lineno}, column {err.colno})", file=_label(path)
        ) from err
    except ValueError as err:
        raise InputError(f"not valid JSON: {err}", file=_label(path)) from err


def read_mapping(path: str | Path, *, what: str = "file") -> dict[str, Any]:
    """A YAML (``.yaml``/``.yml``, also JSON) or TOML (``.toml``) file holding one mapping."""
    text = read_text(path)
    label = _label(path)
    if Path(str(path)).suffix.lower() == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise InputError(f"not valid TOML: {err}", file=label) from err
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise InputError(f"not valid YAML: {problem}{where}", file=label) from err
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(f"the {what} must be a mapping of fields, got {type(data).__name__}", file=label)
    return data
