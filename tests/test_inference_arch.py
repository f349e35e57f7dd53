"""Architecture presets, random-weight builders and the tiny test model."""

from __future__ import annotations

import pytest
import torch

from his_opt.inference import (
    build_random_sd3_pipeline,
    sd3_medium_transformer_config,
    sd3_vae_config,
)


def test_sd3_medium_config_is_the_published_one():
    cfg = sd3_medium_transformer_config()
    assert cfg == {
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
    vae = sd3_vae_config()
    assert vae["latent_channels"] == 16 and len(vae["block_out_channels"]) == 4  # 8x


def test_sd3_medium_builds_on_meta_with_sd3_shapes():
    pipe = build_random_sd3_pipeline("sd3-medium", device="meta", dtype="float16")
    params = sum(p.numel() for p in pipe.transformer.parameters())
    assert 2.0e9 < params < 2.06e9  # SD3 Medium's MMDiT: 2.03e9
    assert pipe.transformer.dtype == torch.float16 and not pipe.transformer.training
    assert pipe.text_encoder.config.hidden_size == pipe.text_encoder.config.projection_dim == 768
    assert (
        pipe.text_encoder_2.config.hidden_size == pipe.text_encoder_2.config.projection_dim == 1280
    )
    assert pipe.text_encoder_3.config.d_model == 4096
    assert pipe.text_encoder_3.config.num_layers == 1
    assert pipe.vae_scale_factor == 8 and pipe.default_sample_size == 128


def test_tiny_arch_is_sd3_shaped_and_runs():
    pipe = build_random_sd3_pipeline("tiny", resolution=64)
    pipe.set_progress_bar_config(disable=True)
    embeds, _, pooled, _ = pipe.encode_prompt(
        "a dog", None, None, do_classifier_free_guidance=False
    )
    assert embeds.shape == (1, 77 + 256, 256) and pooled.shape == (1, 256)
    out = pipe(
        "a dog",
        ["a cat", "a fox"],
        common_steps=1,
        num_inference_steps=2,
        output_type="latent",
        generator=torch.Generator().manual_seed(0),
    )
    assert out.images.shape == (2, 16, 8, 8) and torch.isfinite(out.images).all()
    assert pipe.default_sample_size * pipe.vae_scale_factor == 64


def test_bad_arch_and_resolution():
    with pytest.raises(ValueError, match="Unknown arch 'sd4'"):
        build_random_sd3_pipeline("sd4")
    with pytest.raises(ValueError, match="multiple of 16"):
        build_random_sd3_pipeline("tiny", resolution=500)


def test_tiny_builder_is_deterministic(tmp_path):
    from _inference_fixtures import tiny_model_dir
    from diffusers import SD3Transformer2DModel
    from transformers import CLIPTokenizer

    from his_opt.testing import build_tiny_sd3_pipeline

    again = build_tiny_sd3_pipeline(tmp_path / "again", seed=0)
    first = tiny_model_dir()
    a = SD3Transformer2DModel.from_pretrained(first / "transformer")
    b = SD3Transformer2DModel.from_pretrained(again / "transformer")
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert (
        CLIPTokenizer.from_pretrained(first / "tokenizer").get_vocab()
        == CLIPTokenizer.from_pretrained(again / "tokenizer").get_vocab()
    )
    other = build_tiny_sd3_pipeline(tmp_path / "other", seed=1)
    c = SD3Transformer2DModel.from_pretrained(other / "transformer")
    assert not torch.equal(next(a.parameters()), next(c.parameters()))
