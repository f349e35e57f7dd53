"""``his-opt profile-quality`` and ``his-opt profile-gpu``: the profiling stage's commands."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

__all__ = [
    "add_profile_gpu_parser",
    "add_profile_quality_parser",
    "profile_gpu_main",
    "profile_quality_main",
]

_DTYPES = ("float32", "float16", "bfloat16")
EXIT_INCOMPLETE = 3
"""profile-gpu could not measure every batch size (out of memory); the profile is written."""


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def add_profile_quality_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``profile-quality`` subcommand."""
    parser = subparsers.add_parser(
        "profile-quality",
        help="measure image quality of hybrid inference over a sweep (CLIP, BRISQUE)",
        description=(
            "Run SWEEP (a YAML file; shipped ones in his_opt/data/sweeps/) with the hybrid engine: per "
            "(public prompt, seed, variant) the public trajectory runs once and every (personal "
            "prompt, common steps x) branch continues from it. Each image is scored (CLIP "
            "alignment, CLIP similarity to the unshared x=0 image, BRISQUE) and appended to the "
            "CSV dataset one block at a time; re-running the command resumes where a killed run "
            "stopped."
        ),
    )
    parser.add_argument("sweep", type=Path, help="sweep definition (YAML or JSON)")
    parser.add_argument("--out", type=Path, required=True, help="dataset CSV (created or resumed)")
    parser.add_argument(
        "--model", default=None, help="SD3 pipeline folder or hub id (default: sweep's)"
    )
    parser.add_argument(
        "--clip-model",
        default=None,
        help="CLIP folder or hub id (default: sweep's, else openai/clip-vit-large-patch14-336)",
    )
    parser.add_argument(
        "--similarity-model",
        default=None,
        help="sentence-transformers model for prompt similarity (default: packaged all-MiniLM-L6-v2)",
    )
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    parser.add_argument("--dtype", choices=_DTYPES, default=None, help="default: float16 on cuda")
    parser.add_argument(
        "--max-batch-size",
        type=int,
        default=None,
        help="images per transformer call (default: sweep's, else 16)",
    )
    parser.add_argument(
        "--decode-batch-size", type=int, default=4, help="images per VAE decode (default: 4)"
    )
    parser.add_argument(
        "--save-images", type=Path, default=None, metavar="DIR", help="also save PNGs here"
    )
    parser.add_argument(
        "--no-brisque", action="store_true", help="skip the BRISQUE column (left empty)"
    )
    parser.add_argument(
        "--brisque-jobs",
        type=int,
        default=None,
        help="BRISQUE worker processes (default: half the CPU cores, at most 8)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="start a new dataset instead of resuming"
    )
    parser.add_argument(
        "--ray-address",
        default=None,
        help="run one Ray task per block: 'local' (private instance), 'auto' or an address",
    )
    parser.add_argument(
        "--ray-gpus-per-task",
        type=float,
        default=None,
        help="GPUs per Ray task (default: 1 if the cluster has GPUs)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the sweep's size and rows, run nothing"
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    parser.set_defaults(func=profile_quality_main)
    return parser


def profile_quality_main(args: argparse.Namespace) -> int:
    """Run ``his-opt profile-quality``."""
    from .._errors import InputError
    from ..profiling import block_rows_estimate, load_sweep, run_quality_sweep

    sweep = load_sweep(args.sweep)
    for flag in ("max_batch_size", "decode_batch_size", "brisque_jobs"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise InputError(f"must be >= 1, got {value}", field="--" + flag.replace("_", "-"))
    engine, per_image = block_rows_estimate(sweep)
    print(
        f"sweep {sweep.name}: {sweep.n_blocks} blocks, {sweep.n_images} images, T = {sweep.total_steps}, "
        f"{sweep.height}x{sweep.width}; transformer rows {engine} (per-image approach {per_image}, "
        f"{per_image / max(engine, 1):.2f}x)",
        flush=True,
    )
    if args.dry_run:
        return 0
    from .._outputs import check_output, check_output_dir

    check_output(args.out, flag="--out")
    if args.save_images is not None:
        check_output_dir(args.save_images, flag="--save-images")
    if args.ray_address is not None:
        require_ray()
    report = run_quality_sweep(
        sweep,
        args.out,
        model=args.model,
        clip_model=args.clip_model,
        similarity_model=args.similarity_model,
        device=args.device,
        dtype=args.dtype,
        max_batch_size=args.max_batch_size,
        decode_batch_size=args.decode_batch_size,
        save_images=args.save_images,
        brisque=not args.no_brisque,
        brisque_jobs=args.brisque_jobs or max(1, min(8, (os.cpu_count() or 2) // 2)),
        overwrite=args.overwrite,
        ray_address=args.ray_address,
        ray_gpus_per_task=args.ray_gpus_per_task,
        progress=not args.quiet,
    )
    print(report.summary(), flush=True)
    return 0


def _batch_sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from err
    if not sizes or any(b < 1 for b in sizes) or sorted(set(sizes)) != sizes:
        raise argparse.ArgumentTypeError(f"expected increasing positive integers, got {text!r}")
    return sizes


def add_profile_gpu_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``profile-gpu`` subcommand."""
    parser = subparsers.add_parser(
        "profile-gpu",
        help="measure per-step latency, memory and power of an SD3 model on this device",
        description=(
            "Time one denoising step (transformer + guidance + scheduler) per batch size, VAE "
            "decode and text encoding; record peak memory and NVML power. Writes the GPU profile "
            "JSON read by `solve` (./NAME.json by default; put it in $HIS_OPT_MODELS/gpu/ to use "
            "it by name). --arch sd3-medium builds the "
            "published architecture with random weights: latency does not depend on weight values."
        ),
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", default=None, help="SD3 pipeline folder or hub id")
    source.add_argument(
        "--arch", default=None, help="random-weight architecture: sd3-medium, tiny or test"
    )
    parser.add_argument(
        "--resolution", type=int, default=1024, help="image side in pixels (default 1024)"
    )
    parser.add_argument(
        "--batch-sizes",
        type=_batch_sizes,
        default=[1, 2, 4, 8, 16],
        help="images per step, e.g. 1,2,4,8,16",
    )
    parser.add_argument("--dtype", choices=_DTYPES, default="float16")
    parser.add_argument(
        "--guidance",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="classifier-free guidance: 2 rows per image (default: on)",
    )
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up steps per batch (default 3)")
    parser.add_argument(
        "--repeats", type=int, default=10, help="timed steps per batch (default 10)"
    )
    parser.add_argument(
        "--text-encoders",
        choices=("auto", "published", "model"),
        default="auto",
        help="with --arch: build SD3's published text-encoder sizes (auto: for sd3-medium on cuda)",
    )
    parser.add_argument(
        "--name", default=None, help="profile name (default: MODEL-RES-DTYPE-DEVICE)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="output JSON (default: ./NAME.json)"
    )
    parser.set_defaults(func=profile_gpu_main)
    return parser


def profile_gpu_main(args: argparse.Namespace) -> int:
    """Run ``his-opt profile-gpu``; exit 3 if a batch size did not fit (the profile is still written)."""
    from .._errors import InputError
    from .._outputs import check_output
    from ..profiling import profile_gpu

    if args.warmup < 0 or args.repeats < 1:
        raise InputError("--warmup must be >= 0 and --repeats >= 1", field="--repeats")
    if args.out is not None:
        check_output(args.out, flag="--out")
    result = profile_gpu(
        model=args.model,
        arch=args.arch,
        resolution=args.resolution,
        batch_sizes=args.batch_sizes,
        dtype=args.dtype,
        guidance=args.guidance,
        device=args.device,
        warmup=args.warmup,
        repeats=args.repeats,
        text_encoders=args.text_encoders,
        name=args.name,
        out=args.out,
        log=_log,
    )
    print(result.table())
    print(f"wrote {result.path}", flush=True)
    return 0 if result.complete else EXIT_INCOMPLETE


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``python -m his_opt.cli._profile profile-gpu|profile-quality ...``."""
    from . import _add_verbosity, run_parsed

    parser = argparse.ArgumentParser(prog="his-opt")
    sub = parser.add_subparsers(dest="command", required=True)
    add_profile_quality_parser(sub)
    add_profile_gpu_parser(sub)
    for subparser in sub.choices.values():
        _add_verbosity(subparser)
    return run_parsed(parser.parse_args(argv))


def require_ray() -> None:
    """``InputError`` in one line when the optional Ray extra is not installed."""
    from .._errors import InputError

    try:
        import ray  # noqa: F401
    except ImportError:
        raise InputError(
            "--ray-address needs Ray, an optional extra: pip install 'his-opt[ray]'",
            field="--ray-address",
        ) from None


if __name__ == "__main__":
    raise SystemExit(main())
