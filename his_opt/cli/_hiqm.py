"""``his-opt fit-hiqm``: fit the quality model from a quality table and write its JSON (+ plot)."""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import logging
import shlex
from pathlib import Path
from typing import Any

__all__ = ["REFUSE_R2", "add_fit_hiqm_parser", "fit_hiqm_main"]

log = logging.getLogger("his_opt")

# Kept literal so that building the parser imports no pandas/scipy; a test checks it against
# his_opt.hiqm.CANDIDATE_FORMS.
_FORMS = ("auto", "interp", "poly1", "poly2")
# The HIS reference data (../shared/reference/README.md): SD3 Medium at 1024 x 1024.
_REFERENCE = {"model": "stabilityai/stable-diffusion-3-medium-diffusers", "height": 1024}
_VARIANT_GUIDANCE = {"plain": (7.0, 7.0), "sim_npi": (2.0, 8.0)}
REFUSE_R2 = 0.5
"""fit-hiqm writes no model whose chosen form explains less than this share of a bin's variance."""


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
    parser.add_argument(
        "--model-id",
        default=_REFERENCE["model"],
        help=f"diffusion model the data was measured with (default: {_REFERENCE['model']})",
    )
    parser.add_argument(
        "--resolution", type=int, default=_REFERENCE["height"],
        help="image side in pixels the data was measured at (default: 1024)",
    )
    parser.add_argument(
        "--guidance", type=float, nargs=2, metavar=("PUBLIC", "PERSONAL"), default=None,
        help="guidance scales of the public and personal phase the data was measured at "
        "(default: the variant's, plain 7.0 7.0, sim_npi 2.0 8.0)",
    )
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
    if args.model_id != _REFERENCE["model"]:
        argv += ["--model-id", args.model_id]
    if args.resolution != _REFERENCE["height"]:
        argv += ["--resolution", str(args.resolution)]
    if args.guidance is not None:
        argv += ["--guidance", *(f"{g:g}" for g in args.guidance)]
    return shlex.join(argv)


def _fitted_at(args: argparse.Namespace) -> dict[str, Any]:
    from .._errors import InputError

    guidance = args.guidance or _VARIANT_GUIDANCE.get(args.variant)
    if guidance is None:
        raise InputError(
            f"variant {args.variant!r} has no default guidance scales; pass --guidance PUBLIC "
            "PERSONAL",
            field="--guidance",
        )
    if args.resolution < 16 or args.resolution % 16:
        raise InputError(
            f"must be a positive multiple of 16, got {args.resolution}", field="--resolution"
        )
    return {
        "model": args.model_id,
        "height": args.resolution,
        "width": args.resolution,
        "public_guidance_scale": float(guidance[0]),
        "guidance_scale": float(guidance[1]),
    }


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("his-opt")
    except PackageNotFoundError:
        return "unknown"


def fit_hiqm_main(args: argparse.Namespace) -> int:
    """Run ``fit-hiqm``; bad input raises ``InputError`` before anything is written."""
    from .._atomic import atomic_paths
    from .._errors import InputError
    from .._outputs import check_output
    from .._read import read_bytes
    from ..hiqm import fit_hiqm, read_quality_table, render_hiqm_fit_png

    data_path = Path(args.data)
    targets = [Path(args.out)] + ([Path(args.plot)] if args.plot is not None else [])
    if any(t.resolve() == data_path.resolve() for t in targets):
        raise InputError("--out/--plot would overwrite the input data", file=data_path)
    if args.plot is not None and Path(args.plot).resolve() == Path(args.out).resolve():
        raise InputError("--plot and --out name the same file", file=args.out)
    check_output(args.out, flag="--out")
    if args.plot is not None:
        check_output(args.plot, flag="--plot")
    fitted_at = _fitted_at(args)
    raw = read_bytes(data_path)
    data = read_quality_table(data_path)
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
        fitted_at=fitted_at,
    )
    worst = fit.candidates[fit.chosen].min_r2
    if not worst >= REFUSE_R2:
        raise InputError(
            f"the fit explains too little: lowest per-bin R^2 {worst:.3f} < {REFUSE_R2} "
            f"(form {fit.chosen}); not writing a model from this data",
            file=data_path,
            field=args.quality_column,
        )
    try:
        fit.model.check_range()
    except ValueError as err:
        raise InputError(f"the fitted model {err}", file=data_path, field=args.quality_column) from None
    png = render_hiqm_fit_png(fit) if args.plot is not None else None
    text = json.dumps(fit.model.to_dict(), indent=2, ensure_ascii=False) + "\n"
    with atomic_paths(*targets) as temps:
        temps[0].write_text(text, encoding="utf-8")
        if png is not None:
            temps[1].write_bytes(png)
    print(fit.summary())
    log.info("wrote %s", ", ".join(str(t) for t in targets))
    return 0
