"""``his-opt resume``: the device side, finishing a hand-off's remaining z steps into an image."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

__all__ = ["add_resume_parser", "resume_main"]

_DTYPES = ("float32", "float16", "bfloat16")
PNG_KEY = "his-opt"


def add_resume_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``resume`` subcommand to an argparse ``subparsers`` object."""
    parser = subparsers.add_parser(
        "resume",
        help="device side: finish a hand-off file's remaining steps and write the image",
        description=(
            "Resume HANDOFF (written by `his-opt generate --handoff-dir` or "
            "HybridHandoff.save) with the same model, possibly in another dtype (the cast is "
            "recorded in the PNG's 'his-opt' text chunk). A hand-off from another model, or "
            "for another size than --height/--width, is refused and nothing is written."
        ),
    )
    parser.add_argument("handoff", type=Path, help="hand-off file (safetensors)")
    parser.add_argument("--model", required=True, help="diffusers SD3 pipeline folder (or hub id)")
    parser.add_argument("--out", type=Path, required=True, help="image to write (PNG)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    parser.add_argument(
        "--dtype",
        choices=_DTYPES,
        default=None,
        help="weights dtype (default: the hand-off's on cuda, float32 on cpu); another dtype "
        "than the hand-off's casts its tensors",
    )
    parser.add_argument("--height", type=int, default=None, help="expected image height")
    parser.add_argument("--width", type=int, default=None, help="expected image width")
    parser.set_defaults(func=resume_main)
    return parser


def resume_main(args: argparse.Namespace) -> int:
    """Run ``his-opt resume``; bad input raises :class:`InputError` before anything is written."""
    from .._atomic import atomic_path
    from .._errors import InputError
    from ..inference._handoff import HybridHandoff

    handoff = HybridHandoff.load(args.handoff)
    model_path = Path(args.model)
    if model_path.exists() and not (model_path / "model_index.json").is_file():
        raise InputError("not a diffusers pipeline folder (no model_index.json)", file=model_path)

    import torch
    from PIL.PngImagePlugin import PngInfo

    from ..inference._pipeline import HybridSD3Pipeline

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = args.dtype or (handoff.dtype if device.startswith("cuda") else "float32")
    try:
        pipe = HybridSD3Pipeline.from_pretrained(args.model, dtype=getattr(torch, dtype))
    except (OSError, ValueError) as err:
        raise InputError(
            f"cannot load the pipeline: {str(err).splitlines()[0]}", file=args.model
        ) from None
    pipe.to(device)
    pipe.set_progress_bar_config(desc=f"resume {args.handoff.name}")
    try:
        pipe.check_handoff(handoff, height=args.height, width=args.width, cast_dtype=True)
        out = pipe.resume(handoff, cast_dtype=True, output_type="pil")
    except ValueError as err:
        raise InputError(str(err), file=args.handoff) from None
    record = {
        "handoff": str(args.handoff),
        "model_fingerprint": handoff.model_fingerprint,
        "step_index": handoff.step_index,
        "num_inference_steps": handoff.num_inference_steps,
        "device_steps": handoff.remaining_steps,
        "handoff_dtype": handoff.dtype,
        "dtype": dtype,
        "dtype_cast": handoff.dtype != dtype,
        "embeddings_sent": handoff.has_embeddings,
        "device": str(pipe._execution_device),
        "timings": out.timings,
    }
    info = PngInfo()
    info.add_text(PNG_KEY, json.dumps(record))
    with atomic_path(args.out) as tmp:
        out.images[0].save(tmp, format="PNG", pnginfo=info)
    cast = f", cast {handoff.dtype} -> {dtype}" if record["dtype_cast"] else ""
    print(
        f"his-opt resume: {args.out} written ({handoff.remaining_steps} device step(s) of "
        f"{handoff.num_inference_steps}{cast})"
    )
    return 0
