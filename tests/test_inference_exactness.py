"""Hybrid SD3 pipeline against the stock StableDiffusion3Pipeline (tiny model, fp32, CPU)."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch
from _inference_fixtures import TOL, hybrid_pipe, max_diff, noise, stock_pipe

T = 5
PROMPTS = ["a dog on the beach at sunset", "a cat on a red sofa", "an astronaut riding a horse"]
NEGATIVES = ["blurry, low quality", None, "cartoon, drawing"]
PUBLIC = "a dog in a misty forest"


@pytest.fixture(scope="module")
def pipe():
    return hybrid_pipe()


@pytest.fixture(scope="module")
def stock():
    return stock_pipe()


def _stock_swap(stock, public, public_gs, prompt, negative, gs, x, latents):
    """Stock run that switches to the personal prompt (and guidance) after step x - 1."""
    pe, npe, ppe, nppe = stock.encode_prompt(
        prompt, None, None, negative_prompt=negative, do_classifier_free_guidance=gs > 1
    )
    personal = (torch.cat([npe, pe]), torch.cat([nppe, ppe])) if gs > 1 else (pe, ppe)

    def swap(p, i, t, kwargs):
        if i == x - 1:
            p._guidance_scale = gs
            return {"prompt_embeds": personal[0], "pooled_prompt_embeds": personal[1]}
        return {}

    return stock(
        prompt=public,
        guidance_scale=public_gs,
        num_inference_steps=T,
        latents=latents,
        output_type="latent",
        callback_on_step_end=swap,
        callback_on_step_end_tensor_inputs=["prompt_embeds", "pooled_prompt_embeds"],
    ).images


def test_x0_equals_stock_for_every_user(pipe, stock):
    out = pipe(
        PUBLIC,
        PROMPTS,
        common_steps=0,
        num_inference_steps=T,
        guidance_scale=7.0,
        negative_prompts=NEGATIVES,
        latents=noise(),
        output_type="latent",
    )
    assert out.finished == [0, 1, 2] and out.public_rows == 0
    for u, (prompt, negative) in enumerate(zip(PROMPTS, NEGATIVES, strict=True)):
        ref = stock(
            prompt=prompt,
            negative_prompt=negative,
            num_inference_steps=T,
            guidance_scale=7.0,
            latents=noise(),
            output_type="latent",
        ).images
        assert max_diff(out.images[u : u + 1], ref) <= TOL
    # the users really differ, so the comparison above can fail
    assert max_diff(out.images[0], out.images[1]) > 1e-2


def test_x0_with_generator_equals_stock_with_generator(pipe, stock):
    out = pipe(
        None,
        PROMPTS[:1],
        common_steps=0,
        num_inference_steps=T,
        generator=torch.Generator().manual_seed(7),
        output_type="latent",
    )
    ref = stock(
        prompt=PROMPTS[0],
        num_inference_steps=T,
        generator=torch.Generator().manual_seed(7),
        output_type="latent",
    ).images
    assert max_diff(out.images, ref) <= TOL
    assert torch.equal(
        out.initial_noise, torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(7))
    )


@pytest.mark.parametrize("x", range(T))
def test_public_equal_to_personal_equals_stock_for_every_x(pipe, stock, x):
    prompt = PROMPTS[1]
    out = pipe(
        prompt,
        [prompt, prompt],
        common_steps=x,
        num_inference_steps=T,
        public_guidance_scale=6.0,
        guidance_scale=6.0,
        latents=noise(1),
        output_type="latent",
    )
    ref = stock(
        prompt=prompt,
        guidance_scale=6.0,
        num_inference_steps=T,
        latents=noise(1),
        output_type="latent",
    ).images
    assert max_diff(out.images[0:1], ref) <= TOL
    assert max_diff(out.images[1:2], ref) <= TOL


@pytest.mark.parametrize("public_gs", [2.0, 1.0])
@pytest.mark.parametrize("x", [1, 3, T - 1])
def test_any_x_equals_stock_with_prompt_swap_callback(pipe, stock, x, public_gs):
    out = pipe(
        PUBLIC,
        PROMPTS,
        common_steps=x,
        num_inference_steps=T,
        public_guidance_scale=public_gs,
        guidance_scale=8.0,
        negative_prompts=NEGATIVES,
        latents=noise(2),
        output_type="latent",
    )
    for u, (prompt, negative) in enumerate(zip(PROMPTS, NEGATIVES, strict=True)):
        ref = _stock_swap(stock, PUBLIC, public_gs, prompt, negative, 8.0, x, noise(2))
        assert max_diff(out.images[u : u + 1], ref) <= TOL
    # the shared latent is the stock public run stopped after x steps
    assert out.shared_latents.shape == (1, 4, 16, 16)


def test_public_phase_differs_from_personal_only_run(pipe):
    """Sanity: sharing steps on another prompt changes the image (the swap tests can fail)."""
    kw = dict(num_inference_steps=T, guidance_scale=8.0, latents=noise(2), output_type="latent")
    shared = pipe(PUBLIC, PROMPTS[:1], common_steps=3, **kw).images
    alone = pipe(None, PROMPTS[:1], common_steps=0, **kw).images
    assert max_diff(shared, alone) > 1e-2


def test_batched_branches_equal_one_at_a_time(pipe):
    kw = dict(
        common_steps=2,
        num_inference_steps=T,
        public_guidance_scale=2.0,
        guidance_scale=8.0,
        latents=noise(3),
        output_type="latent",
    )
    batched = pipe(PUBLIC, PROMPTS, negative_prompts=NEGATIVES, max_batch_size=None, **kw)
    chunked = pipe(PUBLIC, PROMPTS, negative_prompts=NEGATIVES, max_batch_size=2, **kw)
    assert batched.transformer_rows == chunked.transformer_rows
    assert max_diff(batched.images, chunked.images) <= TOL
    for u, (prompt, negative) in enumerate(zip(PROMPTS, NEGATIVES, strict=True)):
        single = pipe(PUBLIC, [prompt], negative_prompts=[negative], **kw)
        assert max_diff(batched.images[u : u + 1], single.images) <= TOL
        assert torch.equal(single.shared_latents, batched.shared_latents)


def test_npi_changes_only_the_personal_phase(pipe):
    kw = dict(
        common_steps=3,
        num_inference_steps=T,
        public_guidance_scale=2.0,
        guidance_scale=8.0,
        latents=noise(4),
        output_type="latent",
    )
    plain = pipe(PUBLIC, PROMPTS, **kw)
    npi = pipe(PUBLIC, PROMPTS, negative_prompts=NEGATIVES, **kw)
    assert torch.equal(plain.shared_latents, npi.shared_latents)
    assert max_diff(plain.images[0], npi.images[0]) > 1e-3  # user 0 has a negative prompt
    assert max_diff(plain.images[1], npi.images[1]) <= TOL  # user 1 has none


def test_rows_accounting_and_guidance_off_halves_public_work(pipe):
    from his_opt.inference import hybrid_rows, independent_rows

    kw = dict(
        common_steps=3,
        num_inference_steps=T,
        guidance_scale=8.0,
        latents=noise(),
        output_type="latent",
    )
    guided = pipe(PUBLIC, PROMPTS, public_guidance_scale=2.0, **kw)
    unguided = pipe(PUBLIC, PROMPTS, public_guidance_scale=1.0, **kw)
    assert guided.public_rows == 2 * 3 and unguided.public_rows == 3
    assert guided.personal_rows == unguided.personal_rows == 3 * 2 * (T - 3)
    assert guided.transformer_rows == hybrid_rows(3, 3, T, 2.0, 8.0)
    assert unguided.transformer_rows == hybrid_rows(3, 3, T, 1.0, 8.0)
    assert guided.transformer_rows < independent_rows(3, T, 8.0)
    no_cfg = pipe(
        PUBLIC,
        PROMPTS,
        common_steps=0,
        num_inference_steps=T,
        guidance_scale=1.0,
        latents=noise(),
        output_type="latent",
    )
    assert no_cfg.transformer_rows == independent_rows(3, T, 1.0) == 3 * T


def test_hybrid_never_does_more_rows_than_independent_runs():
    from his_opt.inference import hybrid_rows, independent_rows

    for n in (1, 2, 4, 16, 50):
        for steps in (1, 2, 28, 50):
            for x in range(steps):
                for pub, gs in ((2.0, 8.0), (1.0, 8.0), (7.0, 7.0), (1.0, 1.0)):
                    assert hybrid_rows(n, x, steps, pub, gs) <= independent_rows(n, steps, gs)


def test_dynamic_shifting_matches_stock_default_path(pipe, stock):
    from diffusers import FlowMatchEulerDiscreteScheduler, StableDiffusion3Pipeline

    from his_opt.inference import HybridSD3Pipeline

    scheduler = FlowMatchEulerDiscreteScheduler.from_config(
        stock.scheduler.config, use_dynamic_shifting=True
    )
    shifted = HybridSD3Pipeline.from_pipe(pipe, scheduler=scheduler)
    shifted_stock = StableDiffusion3Pipeline.from_pipe(stock, scheduler=scheduler)
    shifted_stock.set_progress_bar_config(disable=True)
    out = shifted(
        None,
        PROMPTS[:1],
        common_steps=0,
        num_inference_steps=T,
        latents=noise(),
        output_type="latent",
    )
    ref = shifted_stock(
        prompt=PROMPTS[0], num_inference_steps=T, latents=noise(), output_type="latent"
    ).images
    plain = pipe(
        None,
        PROMPTS[:1],
        common_steps=0,
        num_inference_steps=T,
        latents=noise(),
        output_type="latent",
    )
    assert max_diff(out.images, ref) <= TOL
    assert max_diff(out.images, plain.images) > 1e-3


def test_output_types_and_return_dict(pipe):
    kw = dict(common_steps=1, num_inference_steps=2, latents=noise())
    pil = pipe(PUBLIC, PROMPTS[:2], **kw)
    assert len(pil.images) == 2 and all(isinstance(im, PIL.Image.Image) for im in pil.images)
    assert pil.images[0].size == (32, 32)
    arr = pipe(PUBLIC, PROMPTS[:2], output_type="np", **kw).images
    assert isinstance(arr, np.ndarray) and arr.shape == (2, 32, 32, 3)
    pt = pipe(PUBLIC, PROMPTS[:2], output_type="pt", **kw).images
    assert isinstance(pt, torch.Tensor) and pt.shape == (2, 3, 32, 32)
    images, handoffs = pipe(PUBLIC, PROMPTS[:2], output_type="latent", return_dict=False, **kw)
    assert images.shape == (2, 4, 16, 16) and handoffs == [None, None]
    out = pipe(PUBLIC, PROMPTS[:2], **kw)
    assert set(out.timings) == {"encode_s", "public_s", "personal_s", "decode_s", "total_s"}
    assert all(v >= 0 for v in out.timings.values())


def test_height_and_width_from_the_call(pipe):
    out = pipe(
        PUBLIC,
        PROMPTS[:1],
        common_steps=1,
        num_inference_steps=2,
        height=48,
        width=64,
        generator=torch.Generator().manual_seed(0),
        output_type="latent",
    )
    assert out.images.shape == (1, 4, 24, 32)


def test_from_pipe_shares_weights(stock):
    from his_opt.inference import HybridSD3Pipeline

    hybrid = HybridSD3Pipeline.from_pipe(stock)
    assert isinstance(hybrid, HybridSD3Pipeline)
    assert hybrid.transformer is stock.transformer and hybrid.text_encoder_3 is stock.text_encoder_3


def test_from_pipe_keeps_the_source_dtype():
    from diffusers import StableDiffusion3Pipeline

    from his_opt.inference import HybridSD3Pipeline
    from his_opt.inference._arch import build_sd3_components

    half = StableDiffusion3Pipeline(**build_sd3_components("test", dtype=torch.float16))
    hybrid = HybridSD3Pipeline.from_pipe(half)
    # diffusers' own from_pipe would cast the shared modules (and so `half`) to float32
    assert hybrid.transformer.dtype == half.transformer.dtype == torch.float16
    assert hybrid.text_encoder_3.dtype == torch.float16
