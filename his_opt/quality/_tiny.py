"""A tiny random CLIP checkpoint built offline, for tests and dry runs of the quality stage."""

from __future__ import annotations

from pathlib import Path

__all__ = ["build_tiny_clip"]

_CORPUS = (
    "a photo of a dog in the park",
    "a red car parked on a city street at night",
    "a cat sleeping on a sofa near a window",
    "an oil painting of a lighthouse by the sea",
    "a bowl of fruit on a wooden kitchen table",
    "a mountain lake at sunrise with pine trees",
    "a portrait of an astronaut wearing a helmet",
    "a watercolor of a small house in the snow",
)


def build_tiny_clip(folder: str | Path, *, seed: int = 0, image_size: int = 32) -> Path:
    """Save a tiny random ``CLIPModel`` with a trained BPE tokenizer into ``folder``; return it.

    The tokenizer is a byte-level CLIP BPE trained on a small built-in corpus (no hub access);
    the model's context is 77 tokens as in OpenAI CLIP, so truncation behaves as in production.
    """
    import torch
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
    )

    from ..inference._tokenizers import train_clip_tokenizer

    folder = Path(folder)
    # Deterministic BPE (the `tokenizers` trainer numbers tokens differently run to run).
    tokenizer = train_clip_tokenizer(list(_CORPUS))
    bos = tokenizer.convert_tokens_to_ids("<|startoftext|>")
    eos = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = CLIPConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 48,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 77,
            "bos_token_id": bos,
            "eos_token_id": eos,
            "pad_token_id": eos,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 48,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": image_size,
            "patch_size": 8,
        },
        projection_dim=16,
    )
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(
            size={"shortest_edge": image_size},
            crop_size={"height": image_size, "width": image_size},
        ),
        tokenizer=tokenizer,
    )
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
