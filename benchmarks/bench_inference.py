"""Benchmark: one hybrid SD3 call for n users against n independent stock runs.

For each number of users n and common steps x of T, times one ``HybridSD3Pipeline`` call (the
public phase once, the n personal branches batched) and n independent
``StableDiffusion3Pipeline`` runs of the same weights, and prints a markdown table beside the
ideal step ratio (x + n(T - x)) / (nT) and the transformer rows each computed.

What is timed: the whole pipeline call with ``output_type="latent"`` (prompt encoding and the
transformer-dominated denoising loop; no VAE decode). Independent runs are measured once per n
and reused across x. Weights are random (compute time does not depend on their values). Table
rows are printed as they finish (progress goes to stderr), so a run cut short keeps its rows.
The last column is the peak GPU memory of the hybrid call on CUDA; on CPU it is the ratio of
process CPU times, steadier than wall time on a shared machine (use ``--threads 1`` there).

    python benchmarks/bench_inference.py                       # CPU: tiny SD3-shaped model, 512 px
    python benchmarks/bench_inference.py --arch sd3-medium --device cuda   # 1024 px, fp16
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path
from typing import Any

PROMPTS = [
    "a corgi on the beach at sunset, photo",
    "a husky in a snowy field, cinematic lighting",
    "a red fox in a misty forest, watercolor painting",
    "an astronaut riding a horse on mars, digital art",
    "a lighthouse in the rain, oil painting",
    "a cat on a red sofa, studio portrait",
    "a castle under a starry night sky, anime style",
    "a vintage car in a busy market, pencil sketch",
]
PUBLIC = "an animal outdoors, photo, highly detailed"


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return values


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--arch",
        choices=("tiny", "sd3-medium"),
        default=None,
        help="model size (default: tiny on cpu, sd3-medium on cuda)",
    )
    parser.add_argument(
        "--resolution",
        type=int,
        default=None,
        help="image side in px (default: 512 for tiny, 1024 for sd3-medium)",
    )
    parser.add_argument(
        "--dtype",
        choices=("float32", "float16", "bfloat16"),
        default=None,
        help="default: float32 on cpu, float16 on cuda",
    )
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument(
        "--users",
        type=_ints,
        default=None,
        help="numbers of users n (default: 1,4,8 on cpu, 1,4,8,16 on cuda)",
    )
    parser.add_argument(
        "--common-steps",
        type=_ints,
        default=[0, 7, 14, 21],
        help="common steps x (default: 0,7,14,21)",
    )
    parser.add_argument("--steps", type=int, default=28, help="total steps T (default: 28)")
    parser.add_argument("--public-guidance-scale", type=float, default=2.0)
    parser.add_argument("--guidance-scale", type=float, default=8.0)
    parser.add_argument(
        "--max-batch-size",
        type=int,
        default=None,
        help="branches per transformer call (default: all n at once)",
    )
    parser.add_argument(
        "--independent",
        choices=("all", "scaled"),
        default="all",
        help="all: time n stock runs per n; scaled: time one stock run, multiply by n",
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        help="skip grid points whose estimated time would end the run after this many seconds",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's); 1 is steadier on a shared machine",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    args = parser.parse_args(argv)
    cuda = args.device.startswith("cuda")
    args.arch = args.arch or ("sd3-medium" if cuda else "tiny")
    args.resolution = args.resolution or (1024 if args.arch == "sd3-medium" else 512)
    args.dtype = args.dtype or ("float16" if cuda else "float32")
    args.users = args.users or ([1, 4, 8, 16] if cuda else [1, 4, 8])
    bad = [x for x in args.common_steps if not 0 <= x < args.steps]
    if bad:
        parser.error(f"--common-steps {bad} outside 0..{args.steps - 1}")
    return args


def _dtype_guard(pipe: Any, dtype: Any) -> None:
    """Fail loudly if a module is not in the benchmark dtype (e.g. cast by a from_pipe)."""
    for name in ("transformer", "text_encoder", "text_encoder_3"):
        got = getattr(pipe, name).dtype
        if got != dtype:
            raise RuntimeError(f"{name} runs in {got}, expected {dtype}")


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    import torch
    from diffusers import StableDiffusion3Pipeline

    from his_opt._atomic import atomic_write_json
    from his_opt.inference import build_random_sd3_pipeline, hybrid_rows, independent_rows

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    dtype = getattr(torch, args.dtype)
    started = time.perf_counter()

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    pipe = build_random_sd3_pipeline(
        args.arch, resolution=args.resolution, dtype=dtype, device=device, seed=args.seed
    )
    pipe.set_progress_bar_config(disable=True)
    # diffusers' from_pipe casts shared modules to float32 unless told the dtype
    stock = StableDiffusion3Pipeline.from_pipe(pipe, dtype=dtype)
    stock.set_progress_bar_config(disable=True)
    _dtype_guard(pipe, dtype)
    sync()
    device_name = (
        torch.cuda.get_device_name(device) if cuda else (platform.processor() or platform.machine())
    )
    params = sum(p.numel() for p in pipe.transformer.parameters())
    _log(
        f"built {args.arch} ({params / 1e6:.1f}M transformer params, {args.dtype}) on "
        f"{device_name} in {time.perf_counter() - started:.1f} s"
    )

    T = args.steps
    side = args.resolution // pipe.vae_scale_factor
    generator = torch.Generator().manual_seed(args.seed)
    noise = torch.randn(1, pipe.transformer.config.in_channels, side, side, generator=generator)
    noise = noise.to(device=device, dtype=dtype)
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(max(args.users))]
    common = dict(
        guidance_scale=args.guidance_scale,
        output_type="latent",
        height=args.resolution,
        width=args.resolution,
    )
    hybrid_kw = dict(
        public_guidance_scale=args.public_guidance_scale, max_batch_size=args.max_batch_size
    )

    # Warm-up (kernels, allocator) at the largest batch, two steps only.
    t0 = time.perf_counter()
    pipe(
        PUBLIC, prompts, common_steps=1, latents=noise, num_inference_steps=2, **hybrid_kw, **common
    )
    stock(prompt=prompts[0], latents=noise, num_inference_steps=2, **common)
    sync()
    _log(f"warm-up {time.perf_counter() - t0:.1f} s")
    _dtype_guard(pipe, dtype)

    header = (
        f"Hybrid vs independent, {args.arch} ({params / 1e6:.1f}M transformer params, random "
        f"weights), {args.resolution} px, {args.dtype}, T = {T}, guidance "
        f"{args.public_guidance_scale} public / {args.guidance_scale} personal, on {device_name} "
        f"(torch {torch.__version__}, {torch.get_num_threads()} CPU threads). Timed: one "
        "pipeline call with output_type='latent' (prompt encoding + denoising loop, no VAE decode); independent: "
        + (
            "n stock StableDiffusion3Pipeline runs."
            if args.independent == "all"
            else "n x one measured stock StableDiffusion3Pipeline run."
        )
    )
    print(header)
    print()
    print(
        "| n | x | hybrid s | independent s | measured ratio | ideal ratio | hybrid rows "
        "| independent rows | rows/call | " + ("peak GiB |" if cuda else "process-time ratio |")
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|", flush=True)

    meta = {
        "arch": args.arch,
        "resolution": args.resolution,
        "dtype": args.dtype,
        "device": device_name,
        "torch": torch.__version__,
        "steps": T,
        "public_guidance_scale": args.public_guidance_scale,
        "guidance_scale": args.guidance_scale,
        "transformer_params": params,
        "independent": args.independent,
        "timed": "pipeline call, output_type='latent' (encode + denoising, no VAE decode)",
    }
    results: list[dict[str, Any]] = []
    skipped: list[dict[str, int]] = []
    single_run_s: float | None = None
    single_run_cpu = 0.0
    per_image = 2 if args.guidance_scale > 1 else 1
    for n in args.users:
        users = prompts[:n]
        if args.independent == "all" or single_run_s is None:
            runs = users if args.independent == "all" else users[:1]
            sync()
            t0, c0 = time.perf_counter(), time.process_time()
            for prompt in runs:
                stock(prompt=prompt, latents=noise, num_inference_steps=T, **common)
            sync()
            measured, measured_cpu = time.perf_counter() - t0, time.process_time() - c0
            single_run_s, single_run_cpu = measured / len(runs), measured_cpu / len(runs)
        independent_s, independent_cpu = n * single_run_s, n * single_run_cpu
        _log(f"n={n}: independent {independent_s:.2f} s (process time {independent_cpu:.2f} s)")
        for x in args.common_steps:
            estimate = single_run_s * (x + n * (T - x)) / T
            elapsed = time.perf_counter() - started
            if args.max_seconds is not None and elapsed + estimate > args.max_seconds:
                _log(f"n={n} x={x}: skipped (about {estimate:.0f} s, over --max-seconds)")
                skipped.append({"n": n, "x": x})
                continue
            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
            sync()
            t0, c0 = time.perf_counter(), time.process_time()
            out = pipe(
                PUBLIC,
                users,
                common_steps=x,
                latents=noise,
                num_inference_steps=T,
                **hybrid_kw,
                **common,
            )
            sync()
            hybrid_s, hybrid_cpu = time.perf_counter() - t0, time.process_time() - c0
            peak = torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None
            rows_ind = independent_rows(n, T, args.guidance_scale)
            expected = hybrid_rows(n, x, T, args.public_guidance_scale, args.guidance_scale)
            if out.transformer_rows != expected or out.transformer_rows > rows_ind:
                raise RuntimeError(
                    f"rows {out.transformer_rows}: expected {expected} <= {rows_ind}"
                )
            record = {
                "n": n,
                "x": x,
                "hybrid_s": hybrid_s,
                "independent_s": independent_s,
                "measured_ratio": hybrid_s / independent_s,
                "ideal_ratio": (x + n * (T - x)) / (n * T),
                "hybrid_rows": out.transformer_rows,
                "independent_rows": rows_ind,
                "rows_per_call": min(n, args.max_batch_size or n) * per_image,
                "peak_gib": peak,
                "hybrid_process_s": hybrid_cpu,
                "independent_process_s": independent_cpu,
                "timings": out.timings,
            }
            results.append(record)
            last = f"{peak:.2f}" if cuda else f"{hybrid_cpu / independent_cpu:.3f}"
            print(
                f"| {n} | {x} | {hybrid_s:.2f} | {independent_s:.2f} | "
                f"{record['measured_ratio']:.3f} | {record['ideal_ratio']:.3f} | "
                f"{out.transformer_rows} | {rows_ind} | {record['rows_per_call']} | {last} |",
                flush=True,
            )
            if args.json is not None:
                atomic_write_json(args.json, {**meta, "results": results, "skipped": skipped})
    if args.json is not None:
        atomic_write_json(args.json, {**meta, "results": results, "skipped": skipped})
    _log(
        f"done in {time.perf_counter() - started:.1f} s"
        + (f", {len(skipped)} skipped" if skipped else "")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
