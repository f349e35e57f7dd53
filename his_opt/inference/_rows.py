"""Transformer-row accounting: a noise-free measure of denoising work.

One transformer row is one latent through the transformer at one step. An image with
classifier-free guidance costs 2 rows per step (unconditional and conditional), without it 1.
"""

from __future__ import annotations

__all__ = ["hybrid_rows", "independent_rows"]


def _rows_per_image(guidance_scale: float) -> int:
    """Transformer rows one image needs per step: 2 with classifier-free guidance, else 1."""
    return 2 if guidance_scale > 1 else 1


def independent_rows(num_users: int, num_inference_steps: int, guidance_scale: float = 7.0) -> int:
    """Transformer rows of ``num_users`` independent stock runs of ``num_inference_steps``."""
    return num_users * num_inference_steps * _rows_per_image(guidance_scale)


def hybrid_rows(
    num_users: int,
    common_steps: int,
    num_inference_steps: int,
    public_guidance_scale: float = 7.0,
    guidance_scale: float = 7.0,
) -> int:
    """Transformer rows of one hybrid call: ``x`` public steps once, ``T - x`` per user."""
    return common_steps * _rows_per_image(public_guidance_scale) + num_users * (
        num_inference_steps - common_steps
    ) * _rows_per_image(guidance_scale)
