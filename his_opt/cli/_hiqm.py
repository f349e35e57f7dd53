"""``his-opt fit-hiqm``: fit the quality model from a quality table and write its JSON (+ plot)."""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import shlex
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_fit_hiqm_parser", "fit_hiqm_main"]

# Kept literal so that building the parser imports no pandas/scipy; a test checks it against
# his_opt.hiqm.CANDIDATE_FORMS.
_FORMS = ("auto", "interp", "poly1", "poly2")


def add_fit_hiqm_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``fit-hiqm`` subcommand to an argparse ``subparsers`` object."""
    parser = subparsers.add_parser(
        "fit-hiqm",
        help="fit the hybrid-inference quality model (HIQM) from a quality table",
        description=(
            "Fit the authors' shifted logistic per similarity bin, build the candidate models "
            "continuous in similarity, score them by leave-one-bin-out error, and write the "
            "chosen one as JSON (schema his-opt/hiqm/1). DATA is a CSV (or .xlsx) with columns "
            "variant, similarity, common_steps, clip_alignment: either one row per bin and "
            "step (the HIS reference format) or one row per image (similarity is then binned "
            "to the nearest 0.1 and averaged)."
        ),
    )
    parser.add_argument("data", type=Path, help="quality table (CSV or .xlsx)")
    parser.add_argument("--out", type=Path, required=True, help="HIQM JSON to write")
    parser.add_argument("--variant", default="sim_npi", help="variant to fit (default: sim_npi)")
    parser.add_argument("--plot", type=Path, default=None, help="also write a PNG of the fit")
    parser.add_argument(
        "--form", choices=_FORMS, default="auto", help="continuous form (default: auto, by LOBO)"
    )
    parser.add_argument(
        "--total-steps",
        type=int,
        default=None,
        help="denoising steps T (default: the data's total_steps column, else 28)",
    )
    parser.add_argument(
        "--identical-anchor",
        choices=("auto", "on", "off"),
        default="auto",
        help="interp above the largest bin: rise towards a flat curve at s = 1 "
        "(auto: on for variant 'plain' only)",
    )
    parser.add_argument(
        "--quality-column",
        default="clip_alignment",
        help="quality column (default: clip_alignment)",
    )
    parser.add_argument("--citation", default=None, help="citation of the data, for provenance")
    parser.set_defaults(func=fit_hiqm_main)
    return parser


def _command(args: argparse.Namespace) -> str:
    argv = [
        "his-opt",
        "fit-hiqm",
        str(args.data),
        "--out",
        str(args.out),
        "--variant",
        args.variant,
    ]
    if args.plot is not None:
        argv += ["--plot", str(args.plot)]
    if args.form != "auto":
        argv += ["--form", args.form]
    if args.total_steps is not None:
        argv += ["--total-steps", str(args.total_steps)]
    if args.identical_anchor != "auto":
        argv += ["--identical-anchor", args.identical_anchor]
    if args.quality_column != "clip_alignment":
        argv += ["--quality-column", args.quality_column]
    if args.citation is not None:
        argv += ["--citation", args.citation]
    return shlex.join(argv)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("his-opt")
    except PackageNotFoundError:
        return "unknown"


def fit_hiqm_main(args: argparse.Namespace) -> int:
    """Run ``fit-hiqm``; returns 0 on success, 2 on bad input (nothing is written then)."""
    from .._atomic import atomic_write_bytes
    from .._errors import InputError
    from ..hiqm import fit_hiqm, read_quality_table, render_hiqm_fit_png

    try:
        data_path = Path(args.data)
        targets = [Path(args.out)] + ([Path(args.plot)] if args.plot is not None else [])
        if any(t.resolve() == data_path.resolve() for t in targets):
            raise InputError("--out/--plot would overwrite the input data", file=data_path)
        if args.plot is not None and Path(args.plot).resolve() == Path(args.out).resolve():
            raise InputError("--plot and --out name the same file", file=args.out)
        data = read_quality_table(data_path)
        raw = data_path.read_bytes()
        anchor = {"auto": None, "on": True, "off": False}[args.identical_anchor]
        provenance = {
            "source": {
                "file": data_path.name,
                "sha256": hashlib.sha256(raw).hexdigest(),
                "rows": len(data),
            },
            "citation": args.citation,
            "date": dt.datetime.now(dt.UTC).date().isoformat(),
            "command": _command(args),
            "fitted_by": "his_opt.hiqm.fit_hiqm",
            "his_opt_version": _version(),
        }
        fit = fit_hiqm(
            data,
            args.variant,
            source=data_path,
            quality_column=args.quality_column,
            total_steps=args.total_steps,
            form=args.form,
            identical_anchor=anchor,
            provenance=provenance,
        )
    except InputError as err:
        print(f"his-opt fit-hiqm: error: {err}", file=sys.stderr)
        return 2
    png = render_hiqm_fit_png(fit) if args.plot is not None else None
    fit.model.save(args.out)
    print(fit.summary())
    print(f"wrote {args.out}")
    if png is not None:
        atomic_write_bytes(args.plot, png)
        print(f"wrote {args.plot}")
    return 0
