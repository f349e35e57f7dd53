"""Three-phase hand-off: stop a branch after y steps, serialize it, resume it elsewhere."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from _inference_fixtures import TOL, hybrid_pipe, max_diff, noise, tiny_model_dir

from his_opt._errors import InputError

T = 6
X = 2
PROMPTS = ["a dog on the beach at sunset", "a cat on a red sofa", "a lighthouse in the rain"]
NEGATIVES = ["blurry, low quality", None, "watermark, text"]
CALL = dict(
    common_steps=X,
    num_inference_steps=T,
    public_guidance_scale=2.0,
    guidance_scale=8.0,
    negative_prompts=NEGATIVES,
    output_type="latent",
)


@pytest.fixture(scope="module")
def pipe():
    return hybrid_pipe()


@pytest.fixture(scope="module")
def unsplit(pipe):
    return pipe("a dog in a forest", PROMPTS, latents=noise(5), **CALL)


@pytest.fixture(scope="module")
def split(pipe):
    # user 0 stops at once (all personal steps on the device), user 1 finishes on the edge,
    # user 2 stops after one personal step
    return pipe("a dog in a forest", PROMPTS, latents=noise(5), edge_steps=[0, T - X, 1], **CALL)


def test_split_output_carries_handoffs_for_unfinished_users(split):
    assert split.finished == [1]
    assert split.images.shape == (1, 4, 16, 16)
    h0, h1, h2 = split.handoffs
    assert h1 is None
    assert (h0.step_index, h2.step_index) == (X, X + 1)
    assert (h0.remaining_steps, h2.remaining_steps) == (T - X, T - X - 1)
    assert h0.negative_prompt == NEGATIVES[0] and h2.prompt == PROMPTS[2]
    assert h0.has_embeddings and h0.negative_prompt_embeds is not None
    # hand-off at step x holds the shared latent
    assert max_diff(h0.latents, split.shared_latents) == 0
    assert split.personal_rows == 2 * (0 + (T - X) + 1)


def test_split_then_resume_equals_unsplit(pipe, unsplit, split):
    assert max_diff(split.images, unsplit.images[1:2]) <= TOL
    received = [type(h).from_bytes(h.to_bytes()) for h in split.handoffs if h is not None]
    resumed = pipe.resume(
        received, num_inference_steps=T, height=32, width=32, output_type="latent"
    )
    assert max_diff(resumed.images[0:1], unsplit.images[0:1]) <= TOL
    assert max_diff(resumed.images[1:2], unsplit.images[2:3]) <= TOL
    assert resumed.transformer_rows == 2 * ((T - X) + (T - X - 1))
    assert split.transformer_rows + resumed.transformer_rows == unsplit.transformer_rows


def test_resume_without_embeddings_encodes_the_prompts(pipe, unsplit, split):
    h = split.handoffs[2]
    bare = type(h)(
        **{
            **h.__dict__,
            "prompt_embeds": None,
            "pooled_prompt_embeds": None,
            "negative_prompt_embeds": None,
            "negative_pooled_prompt_embeds": None,
        }
    )
    assert not bare.has_embeddings
    out = pipe.resume(bare, output_type="latent")
    assert max_diff(out.images, unsplit.images[2:3]) <= TOL


def test_save_load_round_trip_keeps_metadata(split, tmp_path):
    from his_opt.inference import HybridHandoff

    h = split.handoffs[2]
    path = h.save(tmp_path / "u2.safetensors", mode="embeddings")
    loaded = HybridHandoff.load(path)
    assert loaded.metadata() == h.metadata()
    assert torch.equal(loaded.latents, h.latents)
    assert torch.equal(loaded.negative_prompt_embeds, h.negative_prompt_embeds)
    assert loaded.scheduler_config["shift"] == 3.0
    assert [p.name for p in tmp_path.iterdir()] == ["u2.safetensors"]  # no temp files left
    # the default mode sends the latent and the texts; the device encodes its prompts
    bare = HybridHandoff.load(h.save(tmp_path / "bare.safetensors"))
    assert not bare.has_embeddings and bare.metadata() == h.metadata()
    assert (tmp_path / "bare.safetensors").stat().st_size < path.stat().st_size


def test_resume_in_another_process_equals_unsplit(split, unsplit, tmp_path):
    path = split.handoffs[2].save(tmp_path / "handoff.safetensors")
    script = textwrap.dedent(
        f"""
        from safetensors.torch import save_file
        from his_opt.inference import HybridHandoff, HybridSD3Pipeline
        pipe = HybridSD3Pipeline.from_pretrained({str(tiny_model_dir())!r})
        pipe.set_progress_bar_config(disable=True)
        out = pipe.resume(HybridHandoff.load({str(path)!r}), output_type="latent")
        save_file({{"latents": out.images.contiguous()}}, {str(tmp_path / "done.safetensors")!r})
        """
    )
    subprocess.run(
        [sys.executable, "-c", script],
        check=True,
        capture_output=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=300,
    )
    from safetensors.torch import load_file

    done = load_file(tmp_path / "done.safetensors")["latents"]
    assert max_diff(done, unsplit.images[2:3]) <= TOL


def test_handoff_from_another_model_is_refused(pipe, split):
    from diffusers import SD3Transformer2DModel

    from his_opt.inference import HybridSD3Pipeline

    torch.manual_seed(123)
    other_transformer = SD3Transformer2DModel.from_config(pipe.transformer.config).eval()
    other = HybridSD3Pipeline.from_pipe(pipe, transformer=other_transformer)
    with pytest.raises(ValueError, match="another model"):
        other.resume(split.handoffs[0])


def test_handoff_step_count_and_shape_mismatch(pipe, split):
    h = split.handoffs[0]
    with pytest.raises(ValueError, match="step count differs: T = 6, expected 28"):
        pipe.resume(h, num_inference_steps=28)
    with pytest.raises(ValueError, match="shape differs"):
        pipe.resume(h, height=64, width=64)
    wrong = type(h)(**{**h.__dict__, "latents": torch.zeros(1, 4, 8, 8)})
    with pytest.raises(ValueError, match="latent shape differs"):
        pipe.resume(wrong)
    wrong_dtype = type(h)(**{**h.__dict__, "latents": h.latents.double()})
    with pytest.raises(ValueError, match="dtype differs"):
        pipe.resume(wrong_dtype)


def test_bad_handoff_files(tmp_path):
    from safetensors.torch import save_file

    from his_opt.inference import HybridHandoff

    with pytest.raises(InputError, match="not found"):
        HybridHandoff.load(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(InputError, match="junk.safetensors: not a safetensors hand-off"):
        HybridHandoff.load(tmp_path / "junk.safetensors")
    save_file({"latents": torch.zeros(1, 4, 16, 16)}, tmp_path / "plain.safetensors")
    with pytest.raises(InputError, match="without his-opt hand-off metadata"):
        HybridHandoff.load(tmp_path / "plain.safetensors")


def test_edge_steps_out_of_range(pipe):
    with pytest.raises(ValueError, match="edge_steps"):
        pipe("a dog", PROMPTS, latents=noise(), edge_steps=[0, T - X + 1, 0], **CALL)
    with pytest.raises(ValueError, match="edge_steps"):
        pipe("a dog", PROMPTS, latents=noise(), edge_steps=[1, 2], **CALL)
