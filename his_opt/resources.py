"""Shipped data files (read through ``importlib.resources``) and the user's models folders.

Model files (HIQM fits under ``hiqm/``, GPU profiles under ``gpu/``) are looked up first in the
folders named by ``HIS_OPT_MODELS`` (one folder, or several joined by ``os.pathsep``), then in the
package's own ``his_opt/data/models``. Nothing ever writes into the package: commands that
produce model files write to ``--out`` or the working directory.
"""

from __future__ import annotations

import os
import re
from importlib.resources import files
from pathlib import Path

__all__ = [
    "MODELS_ENV",
    "example_path",
    "find_model",
    "known_models",
    "model_dirs",
    "shipped_dir",
    "sweep_path",
]

MODELS_ENV = "HIS_OPT_MODELS"
_KINDS = ("hiqm", "gpu")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def shipped_dir(*parts: str) -> Path:
    """Folder of package data, e.g. ``shipped_dir("models", "gpu")``, as a filesystem path."""
    root = files("his_opt.data").joinpath(*parts)
    path = Path(str(root))
    if not path.exists():
        raise FileNotFoundError(f"package data {'/'.join(parts)!r} is missing from his_opt")
    return path


def model_dirs(kind: str) -> list[Path]:
    """Folders searched for model files of ``kind`` (``hiqm`` or ``gpu``), user folders first."""
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    user = [Path(p) / kind for p in os.environ.get(MODELS_ENV, "").split(os.pathsep) if p]
    return [*user, shipped_dir("models", kind)]


def _check_name(name: str) -> str:
    if not _NAME.fullmatch(name) or ".." in name:
        raise ValueError(f"a model name is a plain file stem, got {name!r}")
    return name


def find_model(kind: str, name: str) -> Path | None:
    """``NAME.json`` of ``kind`` in the first folder of :func:`model_dirs` holding it, else None."""
    _check_name(name)
    for folder in model_dirs(kind):
        candidate = folder / f"{name}.json"
        if candidate.is_file():
            return candidate
    return None


def known_models(kind: str) -> list[str]:
    """Names of every model file of ``kind`` in the user and shipped folders, sorted."""
    names = {p.stem for folder in model_dirs(kind) if folder.is_dir() for p in folder.glob("*.json")}
    return sorted(names)


def example_path(name: str) -> Path:
    """A shipped example input, e.g. ``example_path("users.csv")``."""
    return shipped_dir("examples", _check_name(name))


def sweep_path(name: str) -> Path:
    """A shipped sweep recipe, e.g. ``sweep_path("tiny_test.yaml")``."""
    return shipped_dir("sweeps", _check_name(name))
