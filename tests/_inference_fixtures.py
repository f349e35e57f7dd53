"""Shared tiny SD3 pipelines for the inference tests, built once per test session.

Not a conftest: each test module imports what it needs. The builders are cached at module level
(so every test module shares one build) and the folder is removed at interpreter exit.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

TOL = 1e-4  # max absolute latent difference the issue allows


@functools.cache
def tiny_model_dir() -> Path:
    """Folder of the tiny random SD3 pipeline (``save_pretrained`` layout)."""
    from his_opt.testing import build_tiny_sd3_pipeline

    root = Path(tempfile.mkdtemp(prefix="his-opt-tiny-sd3-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return build_tiny_sd3_pipeline(root / "model", seed=0)


@functools.cache
def hybrid_pipe():
    """``HybridSD3Pipeline.from_pretrained`` of the tiny model (fp32, CPU, quiet)."""
    from his_opt.inference import HybridSD3Pipeline

    pipe = HybridSD3Pipeline.from_pretrained(tiny_model_dir())
    pipe.set_progress_bar_config(disable=True)
    return pipe


@functools.cache
def stock_pipe():
    """The stock ``StableDiffusion3Pipeline.from_pretrained`` of the same folder."""
    from diffusers import StableDiffusion3Pipeline

    pipe = StableDiffusion3Pipeline.from_pretrained(tiny_model_dir())
    pipe.set_progress_bar_config(disable=True)
    return pipe


def noise(seed: int = 0):
    """Initial noise for the tiny model's default 32 px image: (1, 4, 16, 16)."""
    import torch

    return torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(seed))


def max_diff(a, b) -> float:
    return float((a - b).abs().max())
