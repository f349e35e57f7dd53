"""The ``his-opt`` console script: ``solve``, ``similarity``, ``fit-hiqm``, ``generate``,
``profile-quality`` and ``profile-gpu``.

Each subcommand lives in its own module; heavy libraries (torch, diffusers, transformers) are
imported only inside the subcommand that needs them, so ``his-opt solve --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .._errors import InputError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The full ``his-opt`` argument parser."""
    from . import _generate, _hiqm, _profile, _similarity, _simulate, _solve

    parser = argparse.ArgumentParser(
        prog="his-opt",
        description="Hybrid inference for diffusion models at the edge: plan, run and profile.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _solve.add_solve_parser(sub)
    _similarity.add_similarity_parser(sub)
    _hiqm.add_fit_hiqm_parser(sub)
    _generate.add_generate_parser(sub)
    _profile.add_profile_quality_parser(sub)
    _profile.add_profile_gpu_parser(sub)
    _simulate.add_simulate_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``his-opt``; bad input gives one line on stderr and exit code 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except InputError as err:
        print(f"his-opt: error: {err}", file=sys.stderr)
        return 2
