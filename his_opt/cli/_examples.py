"""``his-opt examples [DIR]``: copy the shipped example inputs out of the installed package."""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path
from typing import Any

from .._errors import InputError

__all__ = ["add_examples_parser", "examples_main"]

log = logging.getLogger("his_opt")


def add_examples_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``examples``."""
    parser = subparsers.add_parser(
        "examples",
        help="copy the shipped example inputs (users, servers, scenarios) into a folder",
        description="Copy the example inputs shipped in the package into DIR, so that "
        "`his-opt solve DIR/users.csv` works from an installed wheel. Existing files are "
        "never overwritten.",
    )
    parser.add_argument(
        "dir", nargs="?", type=Path, default=Path("his-opt-examples"),
        help="destination folder (default: ./his-opt-examples)",
    )
    parser.set_defaults(func=examples_main)
    return parser


def examples_main(args: argparse.Namespace) -> int:
    """Copy every shipped example into ``args.dir``; refuse before copying if any would clash."""
    from ..resources import shipped_dir

    src = shipped_dir("examples")
    dest = Path(args.dir)
    if dest.exists() and not dest.is_dir():
        raise InputError("exists and is not a folder", file=dest)
    names = sorted(p.name for p in src.iterdir() if p.is_file())
    clash = [n for n in names if (dest / n).exists()]
    if clash:
        raise InputError(f"would overwrite {clash[0]} (and {len(clash) - 1} more)", file=dest)
    try:
        dest.mkdir(parents=True, exist_ok=True)
        for name in names:
            shutil.copyfile(src / name, dest / name)
    except OSError as err:
        raise InputError(f"cannot write ({err.strerror or err})", file=dest) from err
    log.info("copied %d example files to %s", len(names), dest)
    print("\n".join(str(dest / n) for n in names))
    return 0
