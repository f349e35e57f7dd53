"""Transformer rows and wall time of a quality sweep: engine vs pipeline calls vs per image.

Prints (1) the rows of the shipped sweeps, counted without running them, and (2) a CPU timing of
one block on a tiny random SD3 pipeline: the sweep engine (public trajectory once, every
(prompt, x) branch batched), one ``HybridSD3Pipeline`` call per x, and every image on its own
(the research code's per-image approach).

    python benchmarks/bench_profile_rows.py [--steps 8] [--prompts 3] [--arch test] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def shipped_sweeps() -> None:
    from his_opt.profiling import block_rows_estimate, load_sweep

    print(f"{'sweep':<22} {'images':>7} {'engine rows':>12} {'per-image rows':>15} {'ratio':>6}")
    for path in sorted((ROOT / "his_opt" / "data" / "sweeps").glob("*.yaml")):
        sweep = load_sweep(path)
        engine, per_image = block_rows_estimate(sweep)
        print(
            f"{sweep.name:<22} {sweep.n_images:>7} {engine:>12} {per_image:>15} {per_image / engine:>6.2f}"
        )


def timed_block(steps: int, n_prompts: int, arch: str, repeats: int) -> None:
    import torch

    from his_opt.inference import HybridSD3Pipeline
    from his_opt.profiling import run_branches
    from his_opt.testing import build_tiny_sd3_pipeline

    with tempfile.TemporaryDirectory() as folder:
        pipe = HybridSD3Pipeline.from_pretrained(build_tiny_sd3_pipeline(folder, arch=arch))
    pipe.set_progress_bar_config(disable=True)
    public = "a photo of a dog in a park"
    prompts = [f"a photo of a corgi number {i} on a beach" for i in range(n_prompts)]
    xs = list(range(steps))
    common = dict(num_inference_steps=steps, public_guidance_scale=2.0, guidance_scale=8.0)
    run_branches(
        pipe, public_prompt=public, prompts=prompts[:1], common_steps=[0], **common
    )  # warm-up

    def engine_run() -> int:
        out = run_branches(
            pipe,
            public_prompt=public,
            prompts=prompts,
            common_steps=xs,
            max_batch_size=16,
            **common,
        )
        return out.transformer_rows

    def per_call_run() -> int:
        rows = 0
        for x in xs:
            out = pipe(public_prompt=public, prompts=prompts, common_steps=x, max_batch_size=16,
                       generator=torch.Generator("cpu").manual_seed(0), output_type="np", **common)  # fmt: skip
            rows += out.transformer_rows
        return rows

    def per_image_run() -> int:
        rows = 0
        for x in xs:
            for prompt in prompts:
                out = pipe(public_prompt=public, prompts=[prompt], common_steps=x,
                           generator=torch.Generator("cpu").manual_seed(0), output_type="np", **common)  # fmt: skip
                rows += out.transformer_rows
        return rows

    results = {}
    for label, fn in (("sweep engine", engine_run), ("one pipeline call per x", per_call_run),
                      ("each image on its own", per_image_run)):  # fmt: skip
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            rows = fn()
            times.append(time.perf_counter() - t0)
        results[label] = (rows, min(times), statistics.median(times))

    images = n_prompts * steps
    print(
        f"\none block on CPU, arch '{arch}': T = {steps}, {n_prompts} prompts x {steps} values of x = {images} images"
    )
    print(f"{'approach':<26} {'rows':>6} {'min s':>7} {'median s':>9}  ({repeats} runs)")
    for label, (rows, best, median) in results.items():
        print(f"{label:<26} {rows:>6} {best:>7.2f} {median:>9.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--prompts", type=int, default=3)
    parser.add_argument("--arch", default="test", choices=("test", "tiny"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    shipped_sweeps()
    timed_block(args.steps, args.prompts, args.arch, args.repeats)


if __name__ == "__main__":
    main()
