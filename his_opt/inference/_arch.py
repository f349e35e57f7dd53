"""Architecture presets and random-weight SD3 pipelines for tests and benchmarks.

The transformer's compute time does not depend on its weight values, so a random-weight
transformer at SD3-Medium size times like the real one. Text encoders are kept small (1-2 layers)
but produce the output widths SD3 expects, so the prompt embeddings have SD3's shapes.
"""

from __future__ import annotations

import copy
import tempfile
from typing import Any

from ..costs import SD3_MEDIUM_CONFIG

__all__ = [
    "ARCHES",
    "build_random_sd3_pipeline",
    "sd3_medium_scheduler_config",
    "sd3_medium_transformer_config",
    "sd3_vae_config",
]

ARCHES = ("tiny", "sd3-medium", "test")


def sd3_medium_transformer_config() -> dict[str, Any]:
    """The published SD3-Medium ``SD3Transformer2DModel`` config (about 2.0e9 parameters)."""
    return dict(SD3_MEDIUM_CONFIG)


def sd3_medium_scheduler_config() -> dict[str, Any]:
    """SD3-Medium's ``FlowMatchEulerDiscreteScheduler`` config (shift 3, no dynamic shifting)."""
    return {"num_train_timesteps": 1000, "shift": 3.0}


def sd3_vae_config() -> dict[str, Any]:
    """SD3's ``AutoencoderKL`` config: 16 latent channels, 8x downsampling, no quant convs."""
    return {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ["DownEncoderBlock2D"] * 4,
        "up_block_types": ["UpDecoderBlock2D"] * 4,
        "block_out_channels": [128, 256, 512, 512],
        "layers_per_block": 2,
        "act_fn": "silu",
        "latent_channels": 16,
        "norm_num_groups": 32,
        "sample_size": 1024,
        "scaling_factor": 1.5305,
        "shift_factor": 0.0609,
        "use_quant_conv": False,
        "use_post_quant_conv": False,
    }


def _arch_configs(arch: str) -> dict[str, dict[str, Any]]:
    """Configs of every component for ``arch``: transformer, vae, clip_l, clip_g, t5."""
    if arch == "sd3-medium":
        return {
            "transformer": sd3_medium_transformer_config(),
            "vae": sd3_vae_config(),
            "clip_l": {
                "hidden_size": 768,
                "projection_dim": 768,
                "intermediate_size": 1024,
                "num_hidden_layers": 1,
                "num_attention_heads": 12,
            },
            "clip_g": {
                "hidden_size": 1280,
                "projection_dim": 1280,
                "intermediate_size": 1024,
                "num_hidden_layers": 1,
                "num_attention_heads": 20,
            },
            "t5": {"d_model": 4096, "d_kv": 64, "d_ff": 1024, "num_layers": 1, "num_heads": 8},
        }
    if arch == "tiny":
        # SD3-shaped (16 latent channels, 8x VAE, patch 2, 77 + 256 text tokens) but narrow.
        transformer = sd3_medium_transformer_config()
        transformer.update(
            num_layers=2,
            num_attention_heads=2,
            attention_head_dim=64,
            joint_attention_dim=256,
            caption_projection_dim=128,
            pooled_projection_dim=256,
        )
        vae = sd3_vae_config()
        vae.update(block_out_channels=[32, 32, 64, 64], layers_per_block=1, norm_num_groups=16)
        return {
            "transformer": transformer,
            "vae": vae,
            "clip_l": {
                "hidden_size": 64,
                "projection_dim": 128,
                "intermediate_size": 128,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
            },
            "clip_g": {
                "hidden_size": 64,
                "projection_dim": 128,
                "intermediate_size": 128,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
            },
            "t5": {"d_model": 256, "d_kv": 32, "d_ff": 256, "num_layers": 1, "num_heads": 4},
        }
    if arch == "test":
        # Smallest sensible pipeline for unit tests: 4 latent channels, 2x VAE, 32 px default.
        return {
            "transformer": {
                "sample_size": 16,
                "patch_size": 2,
                "in_channels": 4,
                "num_layers": 2,
                "attention_head_dim": 8,
                "num_attention_heads": 2,
                "joint_attention_dim": 32,
                "caption_projection_dim": 16,
                "pooled_projection_dim": 32,
                "out_channels": 4,
                "pos_embed_max_size": 16,
            },
            "vae": {
                "in_channels": 3,
                "out_channels": 3,
                "down_block_types": ["DownEncoderBlock2D"] * 2,
                "up_block_types": ["UpDecoderBlock2D"] * 2,
                "block_out_channels": [8, 16],
                "layers_per_block": 1,
                "act_fn": "silu",
                "latent_channels": 4,
                "norm_num_groups": 4,
                "sample_size": 32,
                "scaling_factor": 1.5305,
                "shift_factor": 0.0609,
                "use_quant_conv": False,
                "use_post_quant_conv": False,
            },
            "clip_l": {
                "hidden_size": 16,
                "projection_dim": 16,
                "intermediate_size": 32,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
            },
            "clip_g": {
                "hidden_size": 16,
                "projection_dim": 16,
                "intermediate_size": 32,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
            },
            "t5": {"d_model": 32, "d_kv": 8, "d_ff": 64, "num_layers": 1, "num_heads": 4},
        }
    raise ValueError(f"Unknown arch {arch!r}; expected one of {', '.join(ARCHES)}.")


def build_sd3_components(
    arch: str = "tiny",
    *,
    resolution: int | None = None,
    dtype: Any = None,
    device: Any = "cpu",
    seed: int = 0,
) -> dict[str, Any]:
    """Random-weight SD3 pipeline components (``eval()`` mode) for ``arch``.

    The transformer is constructed directly on ``device`` (no CPU initialisation of big weights)
    and then cast to ``dtype``. ``resolution`` (pixels) sets the transformer's ``sample_size`` so
    that the pipeline's default height and width equal it.
    """
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, T5Config, T5EncoderModel

    from ._tokenizers import train_clip_tokenizer, train_t5_tokenizer

    configs = _arch_configs(arch)
    dtype = torch.float32 if dtype is None else dtype
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    device = torch.device(device)
    transformer_config = dict(configs["transformer"])
    vae_scale = 2 ** (len(configs["vae"]["block_out_channels"]) - 1)
    if resolution is not None:
        step = vae_scale * transformer_config["patch_size"]
        if resolution <= 0 or resolution % step:
            raise ValueError(
                f"`resolution` must be a positive multiple of {step}, got {resolution}."
            )
        transformer_config["sample_size"] = resolution // vae_scale

    tokenizer = train_clip_tokenizer()
    with tempfile.TemporaryDirectory() as folder:
        tokenizer_3 = train_t5_tokenizer(folder)
    special = {
        "vocab_size": len(tokenizer),
        "max_position_embeddings": 77,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "hidden_act": "gelu",
    }
    torch.manual_seed(seed)
    with torch.device(device):
        transformer = SD3Transformer2DModel(**transformer_config)
        text_encoder = CLIPTextModelWithProjection(CLIPTextConfig(**configs["clip_l"], **special))
        text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(**configs["clip_g"], **special))
        text_encoder_3 = T5EncoderModel(
            T5Config(
                vocab_size=len(tokenizer_3),
                relative_attention_num_buckets=32,
                feed_forward_proj="gated-gelu",
                dropout_rate=0.0,
                pad_token_id=tokenizer_3.pad_token_id,
                eos_token_id=tokenizer_3.eos_token_id,
                decoder_start_token_id=0,
                **configs["t5"],
            )
        )
        vae = AutoencoderKL(**configs["vae"])
    components = {
        "transformer": transformer,
        "vae": vae,
        "text_encoder": text_encoder,
        "text_encoder_2": text_encoder_2,
        "text_encoder_3": text_encoder_3,
    }
    for module in components.values():
        if module.dtype != dtype:
            module.to(dtype=dtype)
        module.eval().requires_grad_(False)
    components.update(
        scheduler=FlowMatchEulerDiscreteScheduler(**sd3_medium_scheduler_config()),
        tokenizer=tokenizer,
        tokenizer_2=copy.deepcopy(tokenizer),
        tokenizer_3=tokenizer_3,
    )
    return components


def build_random_sd3_pipeline(
    arch: str = "tiny",
    *,
    resolution: int | None = None,
    dtype: Any = None,
    device: Any = "cpu",
    seed: int = 0,
) -> Any:
    """A :class:`HybridSD3Pipeline` with random weights, all modules in ``eval()`` mode.

    ``arch``: ``"sd3-medium"`` (the published 2B transformer, SD3's VAE, 1-layer text encoders
    with SD3's output widths), ``"tiny"`` (SD3-shaped but narrow: 2 layers, 128 wide; for CPU
    benchmarks at 512 px) or ``"test"`` (smallest, for unit tests). The weights are seeded by
    ``seed``; ``dtype`` (a ``torch.dtype`` or its name) defaults to float32.
    """
    from ._pipeline import HybridSD3Pipeline

    components = build_sd3_components(
        arch, resolution=resolution, dtype=dtype, device=device, seed=seed
    )
    return HybridSD3Pipeline(**components)
