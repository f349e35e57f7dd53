"""``his-opt generate``: execute a plan from ``solve`` with the hybrid SD3 pipeline."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_generate_parser", "generate_main"]

_DTYPES = ("float32", "float16", "bfloat16")


def add_generate_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``generate`` subcommand to an argparse ``subparsers`` object."""
    parser = subparsers.add_parser(
        "generate",
        help="run a plan: hybrid SD3 inference group by group, one image per user",
        description=(
            "Execute PLAN (schema his-opt/plan/1) group by group: the public phase once per "
            "group, the members' personal phases batched; users with device_steps > 0 are "
            "handed off and resumed locally, as their device would. Writes DIR/USER_ID.png and "
            "DIR/manifest.json (timings, transformer rows, seeds); a re-run skips users already "
            "done."
        ),
    )
    parser.add_argument("plan", type=Path, help="plan JSON written by `his-opt solve`")
    parser.add_argument("--model", required=True, help="diffusers SD3 pipeline folder (or hub id)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (DIR)")
    parser.add_argument("--height", type=int, default=None, help="image height (default: plan)")
    parser.add_argument("--width", type=int, default=None, help="image width (default: plan)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    parser.add_argument(
        "--dtype", choices=_DTYPES, default=None, help="weights dtype (default: float16 on cuda)"
    )
    parser.add_argument(
        "--max-batch-size",
        type=int,
        default=16,
        help="most personal branches per transformer call (default: 16)",
    )
    parser.add_argument(
        "--handoff-dir",
        type=Path,
        default=None,
        help="also keep the edge-to-device hand-off files (safetensors) here",
    )
    parser.set_defaults(func=generate_main)
    return parser


def generate_main(args: argparse.Namespace) -> int:
    """Run ``his-opt generate``; bad input raises :class:`InputError` before anything is written."""
    from .._errors import InputError
    from .._outputs import check_output_dir
    from ..inference._executor import load_plan, run_plan
    from ._similarity import check_torch_device

    plan = load_plan(args.plan)
    check_output_dir(args.out, flag="--out")
    if args.handoff_dir is not None:
        check_output_dir(args.handoff_dir, flag="--handoff-dir")
    if args.max_batch_size < 1:
        raise InputError(f"must be >= 1, got {args.max_batch_size}", field="--max-batch-size")
    for key in ("height", "width"):
        value = getattr(args, key)
        if value is not None and value < 1:
            raise InputError(f"must be a positive integer, got {value}", field=f"--{key}")
    model_path = Path(args.model)
    if model_path.exists() and not (model_path / "model_index.json").is_file():
        raise InputError("not a diffusers pipeline folder (no model_index.json)", file=model_path)

    import torch

    device = check_torch_device(args.device, flag="--device") if args.device else (
        "cuda" if torch.cuda.is_available() else "cpu"
    )
    dtype_name = args.dtype or ("float16" if device.startswith("cuda") else "float32")
    model = str(model_path.resolve()) if model_path.exists() else args.model

    from ..inference._pipeline import HybridSD3Pipeline

    try:
        pipe = HybridSD3Pipeline.from_pretrained(model, dtype=getattr(torch, dtype_name))
    except (OSError, ValueError) as err:
        raise InputError(
            f"cannot load the pipeline: {str(err).splitlines()[0]}", file=args.model
        ) from None
    pipe.to(device)
    try:
        result = run_plan(
            plan,
            pipe,
            args.out,
            model=model,
            height=args.height,
            width=args.width,
            max_batch_size=args.max_batch_size,
            handoff_dir=args.handoff_dir,
        )
    except ValueError as err:
        if isinstance(err, InputError):
            raise
        raise InputError(str(err), file=args.plan) from None
    print(
        f"his-opt generate: {len(result.generated)} image(s) written, {len(result.skipped)} "
        f"already done; manifest: {result.manifest_path}",
        file=sys.stdout,
    )
    return 0
