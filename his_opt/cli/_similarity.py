"""``his-opt similarity``: the all-MiniLM-L6-v2 cosine matrix of a file of prompts, as CSV."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_similarity_parser", "check_torch_device", "similarity_main"]

log = logging.getLogger("his_opt")


def add_similarity_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``similarity`` subcommand to an argparse ``subparsers`` object."""
    parser = subparsers.add_parser(
        "similarity",
        help="cosine similarity matrix of prompts (all-MiniLM-L6-v2)",
        description=(
            "Read one prompt per line (UTF-8; blank lines are skipped, prompt i is the i-th "
            "non-blank line) and write the full cosine matrix as CSV: header 'prompt' then the "
            "labels, each row starting with its label, values with 4 decimals."
        ),
    )
    parser.add_argument("prompts", type=Path, help="text file, one prompt per line ('-': stdin)")
    parser.add_argument("--out", type=Path, default=None, help="CSV to write (default or '-': stdout)")
    parser.add_argument(
        "--model",
        default=None,
        help="sentence-transformers folder or hub id (default: packaged all-MiniLM-L6-v2)",
    )
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--batch-size", type=int, default=64, help="encoding batch size")
    parser.add_argument(
        "--labels",
        choices=("index", "prompt"),
        default="index",
        help="row/column labels: 0-based prompt index (default) or the prompt text",
    )
    parser.set_defaults(func=similarity_main)
    return parser


def similarity_main(args: argparse.Namespace) -> int:
    """Run ``similarity``; bad input raises ``InputError`` before anything is written."""
    from .._errors import InputError
    from .._outputs import check_output
    from ..similarity import (
        PromptSimilarity,
        format_similarity_csv,
        read_prompts,
        write_similarity_csv,
    )

    if args.batch_size < 1:
        raise InputError(f"must be >= 1, got {args.batch_size}", field="--batch-size")
    out = None if args.out is None or str(args.out) == "-" else Path(args.out)
    if out is not None:
        check_output(out, flag="--out")
        if str(args.prompts) != "-" and out.resolve() == Path(args.prompts).resolve():
            raise InputError("--out would overwrite the prompts file", file=args.prompts)
    prompts = read_prompts(args.prompts)
    device = check_torch_device(args.device, flag="--device")
    sim = PromptSimilarity(args.model, device=device, batch_size=args.batch_size)
    try:
        _ = sim.dimension
    except Exception as err:  # any failure to load the named model is a bad --model
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(
            f"cannot load the model: {first}", file=args.model or "all-MiniLM-L6-v2", field="--model"
        ) from err
    matrix = sim.matrix(prompts)
    labels = prompts if args.labels == "prompt" else None
    if out is None:
        sys.stdout.write(format_similarity_csv(matrix, labels))
    else:
        write_similarity_csv(out, matrix, labels)
        log.info("wrote %s (%d prompts)", out, len(prompts))
    return 0


def check_torch_device(text: str, *, flag: str) -> str:
    """``text`` if torch can use it as a device here; ``InputError`` on ``flag`` otherwise."""
    import torch

    from .._errors import InputError

    try:
        device = torch.device(text)
    except (RuntimeError, ValueError) as err:
        raise InputError(f"not a torch device: {text!r} ({err})", field=flag) from None
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available(),
        "mps": getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available(),
    }.get(device.type, False)
    if not available:
        raise InputError(f"device {text!r} is not available on this machine", field=flag)
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise InputError(
            f"device {text!r}: only {torch.cuda.device_count()} CUDA device(s)", field=flag
        )
    return text
