"""Compare a measured GPU profile with the analytic estimate of ``his_opt.costs``.

Prints, per transformer-row count, the measured step latency, the estimate made with the same
method for the measured GPU's peak (same utilisation and overhead assumptions as the shipped
A100 estimate), and the shipped A100 estimate, with the ratios.

    python profiling/compare_gpu_profiles.py models/gpu/sd3-medium-1024-fp16-h200.json
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

SHIPPED = (
    Path(__file__).resolve().parents[1]
    / "his_opt"
    / "data"
    / "models"
    / "gpu"
    / "sd3-medium-1024-fp16-a100-estimate.json"
)

# Dense FP16/BF16 tensor-core peaks (no sparsity), from the vendors' data sheets.
PEAK_FLOPS = {"a100": 312e12, "h100": 989e12, "h200": 989e12, "l40s": 362e12, "a10": 125e12}


def main() -> None:
    from his_opt.costs import A100_80GB, GPUProfile, estimate_profile, load_profile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("measured", help="measured profile JSON")
    parser.add_argument(
        "--estimate", default=str(SHIPPED), help="estimate JSON (default: shipped A100)"
    )
    args = parser.parse_args()
    measured = GPUProfile.load(args.measured)
    shipped = load_profile(args.estimate)
    key = next((k for k in PEAK_FLOPS if k in measured.device.lower()), None)
    same_gpu = None
    if key is not None:
        spec = replace(A100_80GB, name=measured.device, peak_flops=PEAK_FLOPS[key])
        same_gpu = estimate_profile(spec, rows=measured.rows, resolution=measured.resolution)
    print(f"measured: {measured.name} ({measured.device}, {measured.dtype})")
    header = f"{'rows':>5} {'measured ms':>12}"
    if same_gpu is not None:
        header += f" {'estimate ' + key + ' ms':>17} {'est/meas':>9}"
    header += f" {'shipped A100 ms':>16} {'A100/meas':>10}"
    print(header)
    for rows, t in zip(measured.rows, measured.step_latency_s, strict=True):
        line = f"{rows:>5} {t * 1e3:>12.1f}"
        if same_gpu is not None:
            e = same_gpu.step_time(rows, guided=False)
            line += f" {e * 1e3:>17.1f} {e / t:>9.2f}"
        a = shipped.step_time(rows, guided=False)
        line += f" {a * 1e3:>16.1f} {a / t:>10.2f}"
        print(line)
    for label, value in (("power W", measured.power_w), ("VAE decode s", measured.vae_decode_s),
                         ("text encode s", measured.text_encode_s)):  # fmt: skip
        print(f"{label}: {value}")


if __name__ == "__main__":
    main()
