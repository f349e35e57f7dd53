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
            "Execute PLAN (schema his-opt/plan/1) server after server, or with --ray-address "
            "one Ray actor per server: per group the public phase once, the members' personal "
            "phases batched under the server's batch cap; users with device_steps > 0 are "
            "handed off (in the plan's hand-off mode) and resumed, as their device would. "
            "Writes DIR/USER_ID.png and DIR/manifest.json (per-server timings, batch sizes, "
            "rows, seeds); a re-run skips users already done."
        ),
    )
    parser.add_argument("plan", type=Path, help="plan JSON written by `his-opt solve`")
    parser.add_argument(
        "--model",
        default=None,
        help="diffusers SD3 pipeline folder (or hub id); default: the plan's model.id, and "
        "when the plan records one any other model is refused",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder (DIR)")
    parser.add_argument("--height", type=int, default=None, help="image height (default: plan)")
    parser.add_argument("--width", type=int, default=None, help="image width (default: plan)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    parser.add_argument(
        "--dtype",
        choices=_DTYPES,
        default=None,
        help="weights dtype (default: the plan's model.dtype, else float16 on cuda, float32 on cpu)",
    )
    parser.add_argument(
        "--ray-address",
        default=None,
        help="run one Ray actor per server: 'local' (a private instance), 'auto' or HOST:PORT; "
        "default: no Ray, servers one after the other in this process",
    )
    parser.add_argument(
        "--max-batch-size",
        type=int,
        default=16,
        help="most personal branches per transformer call; each server's max_batch_images "
        "caps it further (default: 16)",
    )
    parser.add_argument(
        "--handoff-dir",
        type=Path,
        default=None,
        help="also keep the edge-to-device hand-off files (safetensors) here",
    )
    parser.set_defaults(func=generate_main)
    return parser


def _resolve_model(args: argparse.Namespace, plan: Any) -> tuple[str, str | None]:
    """The model (resolved path or hub id) and dtype to run: the plan's unless overridden, and
    an override that contradicts the plan's recorded model is refused."""
    from .._errors import InputError

    def canonical(name: str) -> str:
        path = Path(name)
        return str(path.resolve()) if path.exists() else name

    recorded = plan.model or {}
    if args.model is None and not recorded:
        raise InputError("the plan records no model; give --model", file=args.plan, field="--model")
    model = canonical(args.model or recorded["id"])
    if recorded and canonical(recorded["id"]) != model:
        raise InputError(
            f"the plan was solved for model {recorded['id']!r}, not {args.model!r}; "
            "drop --model or re-run solve --model",
            file=args.plan,
            field="--model",
        )
    dtype = recorded.get("dtype")
    if args.dtype and dtype and args.dtype != dtype:
        raise InputError(
            f"the plan was solved for dtype {dtype}, not {args.dtype}; drop --dtype or re-solve",
            file=args.plan,
            field="--dtype",
        )
    model_path = Path(model)
    if model_path.exists() and not (model_path / "model_index.json").is_file():
        raise InputError("not a diffusers pipeline folder (no model_index.json)", file=model_path)
    return model, args.dtype or dtype


def _nothing_left(args: argparse.Namespace, plan: Any, model: str, dtype: str | None) -> int | None:
    """With every image of this run already written, the number of users (the model is then
    not loaded); else ``None``."""
    from ..inference._executor import check_manifest, pending_users

    height, width = args.height or plan.height, args.width or plan.width
    if dtype is None or height is None or width is None:
        return None
    manifest = check_manifest(args.out, plan, model=model, height=height, width=width, dtype=dtype)
    if manifest is None or any(pending_users(plan, args.out, manifest).values()):
        return None
    return len(plan.users)


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
    model, dtype_name = _resolve_model(args, plan)
    if dtype_name is None and args.device is not None:
        dtype_name = "float16" if args.device.startswith("cuda") else "float32"
    done = _nothing_left(args, plan, model, dtype_name)
    if done is not None:
        print(f"his-opt generate: 0 image(s) written, {done} already done; nothing to run")
        return 0
    if args.ray_address:
        result = _generate_ray(args, plan, model, dtype_name)
    else:
        import torch

        device = check_torch_device(args.device, flag="--device") if args.device else (
            "cuda" if torch.cuda.is_available() else "cpu"
        )
        dtype_name = dtype_name or ("float16" if device.startswith("cuda") else "float32")
        from ..inference._pipeline import HybridSD3Pipeline

        try:
            pipe = HybridSD3Pipeline.from_pretrained(model, dtype=getattr(torch, dtype_name))
        except (OSError, ValueError) as err:
            raise InputError(
                f"cannot load the pipeline: {str(err).splitlines()[0]}", file=model
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


def _generate_ray(args: argparse.Namespace, plan: Any, model: str, dtype: str | None) -> Any:
    """``--ray-address``: one actor per server; size and dtype must be known up front."""
    from .._errors import InputError
    from ..inference._ray_plan import run_plan_ray

    height, width = args.height or plan.height, args.width or plan.width
    if height is None or width is None:
        raise InputError(
            "with --ray-address give --height/--width (the plan has none)", file=args.plan
        )
    return run_plan_ray(
        plan,
        args.out,
        address=args.ray_address,
        model=model,
        dtype=dtype,
        height=height,
        width=width,
        device=args.device,
        max_batch_size=args.max_batch_size,
        handoff_dir=args.handoff_dir,
    )
