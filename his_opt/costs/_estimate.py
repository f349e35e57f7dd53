"""An estimated GPU profile for an SD3 transformer, from its FLOPs and stated hardware assumptions.

Used as the shipped default until a measured profile replaces it. The FLOP count is analytic:
every token passes through its own stream's projections and MLP (MMDiT keeps separate weights for
image and text tokens), plus joint attention over all tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._profile import GPUProfile

__all__ = ["GPUSpec", "A100_80GB", "SD3_MEDIUM_CONFIG", "estimate_profile", "sd3_step_flops"]

SD3_MEDIUM_CONFIG: dict[str, Any] = {
    "sample_size": 128,
    "patch_size": 2,
    "in_channels": 16,
    "num_layers": 24,
    "attention_head_dim": 64,
    "num_attention_heads": 24,
    "joint_attention_dim": 4096,
    "caption_projection_dim": 1536,
    "pooled_projection_dim": 2048,
    "out_channels": 16,
    "pos_embed_max_size": 192,
}
"""The published SD3-Medium transformer configuration (2.03 B parameters)."""


@dataclass(frozen=True)
class GPUSpec:
    """What the estimate assumes of a GPU."""

    name: str
    peak_flops: float
    utilization: float
    launch_overhead_s: float
    power_w: float
    memory_gib: float


A100_80GB = GPUSpec(
    name="NVIDIA A100-SXM4-80GB (estimate)",
    peak_flops=312e12,  # dense FP16/BF16 tensor-core peak
    utilization=0.45,  # typical model-FLOPs utilisation of a large DiT with fused attention
    launch_overhead_s=0.004,  # kernel launches, adaLN, scheduler step per denoising step
    power_w=380.0,  # near the 400 W board limit when compute-bound
    memory_gib=80.0,
)


def sd3_step_flops(config: dict[str, Any], resolution: int, text_tokens: int = 333) -> float:
    """FLOPs of one transformer forward for one row (one image, one guidance branch).

    ``text_tokens`` = 77 CLIP + 256 T5 tokens, as in the stock SD3 pipeline.
    """
    d = config["attention_head_dim"] * config["num_attention_heads"]
    layers = config["num_layers"]
    latent = resolution // 8
    image_tokens = (latent // config["patch_size"]) ** 2
    tokens = image_tokens + text_tokens
    # Per stream and layer: q, k, v, out (4 d^2) and a 4x MLP (8 d^2) -> 12 d^2 MACs per token.
    linear = 2 * 12 * d * d * tokens * layers
    # The last block drops the text stream's output projection and MLP.
    linear -= 2 * 9 * d * d * text_tokens
    attention = 2 * 2 * tokens * tokens * d * layers
    return float(linear + attention)


def estimate_profile(
    spec: GPUSpec = A100_80GB,
    *,
    config: dict[str, Any] | None = None,
    resolution: int = 1024,
    rows: tuple[int, ...] = (1, 2, 4, 8, 16, 32),
    dtype: str = "float16",
    name: str | None = None,
) -> GPUProfile:
    """Per-step latency ``overhead + rows * FLOPs / (peak * utilisation)`` as a ``GPUProfile``."""
    config = config or SD3_MEDIUM_CONFIG
    flops = sd3_step_flops(config, resolution)
    per_row = flops / (spec.peak_flops * spec.utilization)
    latencies = tuple(spec.launch_overhead_s + r * per_row for r in rows)
    return GPUProfile(
        name=name or f"sd3-medium-{resolution}-{'fp16' if dtype == 'float16' else dtype}-a100-estimate",
        kind="estimate",
        device=spec.name,
        model="sd3-medium",
        resolution=resolution,
        dtype=dtype,
        rows=rows,
        step_latency_s=latencies,
        memory_limit_gib=spec.memory_gib,
        power_w=spec.power_w,
        provenance=(
            f"Estimate, not a measurement: {flops / 1e12:.2f} TFLOP per row-step (analytic count "
            f"for the SD3-Medium MMDiT at {resolution} px with 333 text tokens), "
            f"{spec.peak_flops / 1e12:.0f} TFLOP/s peak at {spec.utilization:.0%} utilisation, "
            f"{spec.launch_overhead_s * 1e3:.0f} ms per-step overhead, {spec.power_w:.0f} W. "
            "Made by `python -m his_opt.costs`."
        ),
    )
