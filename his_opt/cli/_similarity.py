"""``his-opt similarity``: the all-MiniLM-L6-v2 cosine matrix of a file of prompts, as CSV."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_similarity_parser", "similarity_main"]


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
    parser.add_argument("prompts", type=Path, help="text file, one prompt per line")
    parser.add_argument("--out", type=Path, default=None, help="CSV to write (default: stdout)")
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
    """Run ``similarity``; returns 0 on success, 2 on bad input (nothing is written then)."""
    from .._errors import InputError
    from ..similarity import (
        PromptSimilarity,
        format_similarity_csv,
        read_prompts,
        write_similarity_csv,
    )

    if args.batch_size < 1:
        print("his-opt similarity: error: --batch-size must be >= 1", file=sys.stderr)
        return 2
    try:
        if args.out is not None and Path(args.out).resolve() == Path(args.prompts).resolve():
            raise InputError("--out would overwrite the prompts file", file=args.prompts)
        prompts = read_prompts(args.prompts)
    except InputError as err:
        print(f"his-opt similarity: error: {err}", file=sys.stderr)
        return 2
    sim = PromptSimilarity(args.model, device=args.device, batch_size=args.batch_size)
    matrix = sim.matrix(prompts)
    labels = prompts if args.labels == "prompt" else None
    if args.out is None:
        sys.stdout.write(format_similarity_csv(matrix, labels))
    else:
        write_similarity_csv(args.out, matrix, labels)
        print(f"wrote {args.out} ({len(prompts)} prompts)", file=sys.stderr)
    return 0
