"""Test helpers: a tiny random SD3 pipeline saved to a folder (no hub, no downloads).

The folder is written with ``save_pretrained`` so tests load it back through the real
``from_pretrained`` code path (``HybridSD3Pipeline`` or the stock ``StableDiffusion3Pipeline``).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["build_tiny_sd3_pipeline"]


def build_tiny_sd3_pipeline(
    folder: str | Path,
    *,
    seed: int = 0,
    arch: str = "test",
    resolution: int | None = None,
) -> Path:
    """Build a random-weight SD3 pipeline with locally learned tokenizers into ``folder``.

    ``arch="test"`` (default) is the smallest pipeline (4 latent channels, 2x VAE, 32 px by
    default, a few hundred kB); ``"tiny"`` is SD3-shaped (16 channels, 8x VAE). ``seed`` fixes
    the weights: two folders built with the same arguments hold the same model. Returns the
    folder, ready for ``from_pretrained(folder)``.
    """
    from diffusers import StableDiffusion3Pipeline

    from .inference._arch import build_sd3_components

    folder = Path(folder)
    components = build_sd3_components(arch, resolution=resolution, seed=seed)
    StableDiffusion3Pipeline(**components).save_pretrained(folder)
    return folder
