"""The ``his-opt`` console script: ``solve``, ``similarity``, ``fit-hiqm``, ``generate``,
``profile-quality``, ``profile-gpu``, ``validate``, ``schema`` and ``examples``.

Each subcommand lives in its own module; heavy libraries (torch, diffusers, transformers) are
imported only inside the subcommand that needs them, so ``his-opt solve --help`` stays fast.

One error contract for all of them: bad input is one line ``his-opt: error: ...`` and exit 2;
exit 1 only when ``solve`` finds no feasible plan; a run that cannot finish (out of memory, a
device failure, a bug) is one line and exit 3 (``--verbose`` adds the traceback). ``--quiet`` / ``--verbose`` set the ``logging`` level.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from .._errors import InputError

__all__ = ["EXIT_BAD_INPUT", "EXIT_INTERNAL", "build_parser", "main", "run_parsed"]

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3
log = logging.getLogger("his_opt")


def _add_verbosity(parser: argparse.ArgumentParser) -> None:
    flags = {s for a in parser._actions for s in a.option_strings}
    group = parser.add_argument_group("messages")
    if "--quiet" not in flags:
        group.add_argument(
            "--quiet", "-q", action="store_true",
            help="only warnings and errors on stderr; no progress bars",
        )
    if "--verbose" not in flags:
        group.add_argument(
            "--verbose", "-v", action="store_true", help="debug messages (and tracebacks)"
        )


def build_parser() -> argparse.ArgumentParser:
    """The full ``his-opt`` argument parser."""
    from .. import __version__
    from . import (
        _examples,
        _generate,
        _hiqm,
        _plan,
        _profile,
        _resume,
        _similarity,
        _simulate,
        _solve,
    )

    parser = argparse.ArgumentParser(
        prog="his-opt",
        description="Hybrid inference for diffusion models at the edge: plan, run and profile.",
    )
    parser.add_argument("--version", action="version", version=f"his-opt {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _solve.add_solve_parser(sub)
    _similarity.add_similarity_parser(sub)
    _hiqm.add_fit_hiqm_parser(sub)
    _generate.add_generate_parser(sub)
    _resume.add_resume_parser(sub)
    _profile.add_profile_quality_parser(sub)
    _profile.add_profile_gpu_parser(sub)
    _simulate.add_simulate_parser(sub)
    _plan.add_validate_parser(sub)
    _plan.add_schema_parser(sub)
    _examples.add_examples_parser(sub)
    for subparser in sub.choices.values():
        _add_verbosity(subparser)
    return parser


def configure_logging(quiet: bool, verbose: bool) -> None:
    """``his_opt`` messages on stderr; under ``quiet`` no library progress bars either."""
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False
    if quiet:
        os.environ["TQDM_DISABLE"] = "1"
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds: temporary files are removed by their finally


def run_parsed(args: argparse.Namespace) -> int:
    """Run a parsed subcommand under the error contract; returns the exit status."""
    verbose = bool(getattr(args, "verbose", False))
    configure_logging(bool(getattr(args, "quiet", False)), verbose)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return int(args.func(args) or 0)
    except InputError as err:
        print(f"his-opt: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("his-opt: error: interrupted; nothing written", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except RuntimeError as err:  # the run could not finish (out of memory, a failed device)
        if verbose:
            log.exception("traceback")
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"his-opt: error: {first}", file=sys.stderr)
        return EXIT_INTERNAL
    except Exception as err:  # the contract: one line, never a traceback (unless --verbose)
        if verbose:
            log.exception("traceback")
        first = str(err).splitlines()[0] if str(err) else ""
        print(
            f"his-opt: error: unexpected {type(err).__name__}: {first} (a bug: please report it; "
            "--verbose shows the traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``his-opt``; bad input gives one line on stderr and exit code 2."""
    # transformers' notices (no torchvision: PIL image processors) are not ours to print
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    logging.getLogger("transformers").setLevel(logging.ERROR)
    parser = build_parser()
    args = parser.parse_args(argv)
    return run_parsed(args)
