"""CLIP scores: prompt-image alignment and image-image similarity (raw cosines, not x100).

The reference data (``hiqm_sd3_medium_clip.csv``) uses CLIP ViT-L/14 at 336 px; that is the default
checkpoint. Images go through transformers' PIL image processor (no torchvision).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._image import as_rgb_pil
from ._source import check_model_source, load_error

__all__ = ["DEFAULT_CLIP_MODEL", "ClipScorer"]

DEFAULT_CLIP_MODEL = "openai/clip-vit-large-patch14-336"


def _embeds(output: Any) -> Any:
    # transformers 5 returns a model output whose pooler_output is the projected embedding;
    # older versions return the tensor itself.
    return output.pooler_output if hasattr(output, "pooler_output") else output


class ClipScorer:
    """CLIP cosines between prompts and images, and between images.

    Parameters
    ----------
    model:
        Hub id or folder saved with ``save_pretrained`` holding a ``CLIPModel`` and its
        ``CLIPProcessor`` (tokenizer and image processor).
    device:
        Torch device; ``None`` picks CUDA when available, else CPU.
    dtype:
        Torch dtype name or dtype for the model weights (default float32).
    batch_size:
        Images or prompts per forward pass.

    The model loads on first use. Prompts longer than CLIP's context (77 tokens) are truncated
    with a warning, as the SD3 text encoders truncate them.
    """

    def __init__(
        self,
        model: str = DEFAULT_CLIP_MODEL,
        *,
        device: str | None = None,
        dtype: Any = None,
        batch_size: int = 16,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"`batch_size` must be at least 1, got {batch_size}.")
        self.model = model
        self.device = device
        self.dtype = dtype
        self.batch_size = batch_size
        self._model: Any = None
        self._processor: Any = None

    def _load(self) -> tuple[Any, Any]:
        if self._model is None:
            import torch
            from transformers import CLIPModel, CLIPProcessor

            source = check_model_source(self.model, "CLIP model")
            device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
            dtype = self.dtype or torch.float32
            if isinstance(dtype, str):
                dtype = getattr(torch, dtype)
            try:
                processor = CLIPProcessor.from_pretrained(source)
                model = CLIPModel.from_pretrained(source, dtype=dtype)
            except (OSError, ValueError) as err:
                raise load_error(source, "CLIP model", err) from err
            self._model = model.to(device).eval()
            self._processor = processor
        return self._model, self._processor

    @property
    def max_tokens(self) -> int:
        """Context length of the text encoder (77 for OpenAI CLIP)."""
        model, _ = self._load()
        return int(model.config.text_config.max_position_embeddings)

    def text_embeddings(self, prompts: Sequence[str]) -> np.ndarray:
        """L2-normalised text embeddings, one row per prompt (truncated to the context, warned)."""
        import torch

        if isinstance(prompts, str):
            raise ValueError("`prompts` must be a sequence of strings, not a single string.")
        model, processor = self._load()
        tokenizer = processor.tokenizer
        limit = self.max_tokens
        # One token past the limit is enough to tell which prompts get cut.
        lengths = [
            len(ids)
            for ids in tokenizer(list(prompts), truncation=True, max_length=limit + 1)["input_ids"]
        ]
        too_long = [i for i, n in enumerate(lengths) if n > limit]
        if too_long:
            warnings.warn(
                f"{len(too_long)} prompt(s) longer than CLIP's {limit} tokens were truncated "
                f"(first: prompt {too_long[0]}).",
                UserWarning,
                stacklevel=2,
            )
        out = []
        device = next(model.parameters()).device
        for start in range(0, len(prompts), self.batch_size):
            batch = list(prompts[start : start + self.batch_size])
            enc = tokenizer(
                batch, padding=True, truncation=True, max_length=limit, return_tensors="pt"
            )
            with torch.inference_mode():
                emb = _embeds(
                    model.get_text_features(
                        input_ids=enc["input_ids"].to(device),
                        attention_mask=enc["attention_mask"].to(device),
                    )
                )
            out.append(torch.nn.functional.normalize(emb.float(), dim=-1).cpu().numpy())
        return np.concatenate(out, axis=0) if out else np.zeros((0, model.config.projection_dim))

    def image_embeddings(self, images: Sequence[Any]) -> np.ndarray:
        """L2-normalised image embeddings, one row per image (PIL images or HxWx3 arrays)."""
        import torch

        model, processor = self._load()
        device = next(model.parameters()).device
        dtype = next(model.parameters()).dtype
        out = []
        for start in range(0, len(images), self.batch_size):
            batch = [as_rgb_pil(im) for im in images[start : start + self.batch_size]]
            pixels = processor.image_processor(images=batch, return_tensors="pt")["pixel_values"]
            with torch.inference_mode():
                emb = _embeds(
                    model.get_image_features(pixel_values=pixels.to(device=device, dtype=dtype))
                )
            out.append(torch.nn.functional.normalize(emb.float(), dim=-1).cpu().numpy())
        return np.concatenate(out, axis=0) if out else np.zeros((0, model.config.projection_dim))

    def alignment(self, images: Sequence[Any], prompts: Sequence[str]) -> np.ndarray:
        """Cosine between each image and its prompt (``images[i]`` with ``prompts[i]``)."""
        if len(images) != len(prompts):
            raise ValueError(f"got {len(images)} images but {len(prompts)} prompts.")
        if len(images) == 0:
            return np.zeros(0)
        return np.einsum("ij,ij->i", self.image_embeddings(images), self.text_embeddings(prompts))

    def image_similarity(self, images_a: Sequence[Any], images_b: Sequence[Any]) -> np.ndarray:
        """Cosine between the CLIP embeddings of ``images_a[i]`` and ``images_b[i]``."""
        if len(images_a) != len(images_b):
            raise ValueError(f"got {len(images_a)} and {len(images_b)} images; they must pair up.")
        if len(images_a) == 0:
            return np.zeros(0)
        return np.einsum(
            "ij,ij->i", self.image_embeddings(images_a), self.image_embeddings(images_b)
        )
