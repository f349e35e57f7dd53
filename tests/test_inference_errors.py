"""Bad calls to the hybrid pipeline: one concise ValueError each."""

from __future__ import annotations

import pytest
import torch
from _inference_fixtures import hybrid_pipe, noise

PROMPTS = ["a dog on the beach", "a cat on a sofa"]


@pytest.fixture(scope="module")
def pipe():
    return hybrid_pipe()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(prompts=[]), "`prompts` must be a non-empty list"),
        (dict(prompts=None), "`prompts` must be a non-empty list"),
        (dict(prompts=["ok", 3]), "`prompts` must be a non-empty list"),
        (dict(common_steps=4), r"`common_steps` must be an int in 0\.\.3"),
        (dict(common_steps=-1), r"`common_steps` must be an int in 0\.\.3"),
        (dict(common_steps=1.5), "`common_steps`"),
        (dict(num_inference_steps=0), "`num_inference_steps` must be a positive int"),
        (dict(negative_prompts=["only one"]), r"one entry per prompt \(2\), got 1"),
        (dict(negative_prompts=["a", "b", "c"]), r"one entry per prompt \(2\), got 3"),
        (dict(negative_prompts=["a", 5]), "entries must be strings or None"),
        (dict(negative_prompts=["blurry", None], guidance_scale=1.0), "need `guidance_scale` > 1"),
        (dict(public_prompt=None), "`public_prompt` must be a string"),
        (dict(output_type="jpeg"), "`output_type` must be one of"),
        (dict(max_batch_size=0), "`max_batch_size`"),
        (dict(height=30, latents=None), "divisible by 4"),
        (dict(latents=torch.zeros(2, 4, 16, 16)), r"shape \(1, 4, h, w\)"),
        (dict(latents=torch.zeros(1, 4, 16, 16), height=64), "imply 32x32 px"),
        (dict(max_sequence_length=600), "max_sequence_length"),
    ],
)
def test_bad_call_raises_value_error(pipe, kwargs, match):
    call = dict(
        public_prompt="a dog",
        prompts=PROMPTS,
        common_steps=1,
        num_inference_steps=4,
        latents=noise(),
        output_type="latent",
    )
    call.update(kwargs)
    with pytest.raises(ValueError, match=match):
        pipe(**call)


def test_resume_needs_handoffs(pipe):
    with pytest.raises(ValueError, match="at least one HybridHandoff"):
        pipe.resume([])
    with pytest.raises(ValueError, match="HybridHandoff"):
        pipe.resume(["not a hand-off"])


def test_import_is_lazy():
    import subprocess
    import sys

    code = "import sys, his_opt.inference, his_opt.cli._generate; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "False"
