"""Where a model comes from: a local folder or a hub id, checked before anything heavy loads."""

from __future__ import annotations

import os
from pathlib import Path

from .._errors import InputError

__all__ = ["check_model_source", "load_error"]


def _looks_like_path(source: str) -> bool:
    # Hub ids are "name" or "org/name"; anything else with a separator is meant as a path.
    return (
        source.startswith(("/", "./", "../", "~", "."))
        or "\\" in source
        or source.count("/") > 1
        or source.endswith("/")
    )


def check_model_source(source: str | os.PathLike[str], what: str) -> str:
    """Return ``source`` as a string; raise ``InputError`` if it is a missing or unreadable path.

    A string that is neither an existing path nor shaped like one is taken as a hub id and left
    to ``from_pretrained`` (which fails offline unless the id is cached).
    """
    text = os.fspath(source)
    if not text:
        raise InputError(f"{what}: empty model path or hub id")
    path = Path(text).expanduser()
    if path.exists():
        if not os.access(path, os.R_OK) or (path.is_dir() and not os.access(path, os.X_OK)):
            raise InputError(f"{what}: model path is not readable", file=path)
        if not path.is_dir():
            raise InputError(
                f"{what}: model path must be a folder saved with save_pretrained", file=path
            )
        return str(path)
    if isinstance(source, Path) or _looks_like_path(text):
        raise InputError(f"{what}: model path does not exist", file=path)
    return text


def load_error(source: str, what: str, err: BaseException) -> InputError:
    """An ``InputError`` for a model that could not be loaded, keeping the cause's first line."""
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    hint = (
        ""
        if Path(source).exists()
        else " (hub ids need network or a local cache; HF_HUB_OFFLINE is honoured)"
    )
    return InputError(f"{what}: cannot load {source!r}: {first}{hint}")
