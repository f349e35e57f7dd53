"""Bytes of the edge-to-device hand-off file, per hand-off mode, without torch.

One truth for two readers: :class:`~his_opt.inference.HybridHandoff` lays its safetensors file
out with :func:`safetensors_header` (so its size is :func:`safetensors_size` exactly), and the
solver charges the downlink with :func:`handoff_payload_bytes`, which counts the same tensors
and the same header, with the part of the header the solver cannot know (scheduler config,
model identity, step index) bounded by :data:`HEADER_ALLOWANCE`.

Modes: ``latent`` (default) sends the latent, step index, schedule, prompt texts and settings;
the device encodes its prompts with its own text encoders. ``embeddings`` also sends the
personal prompt embeddings (and the negative ones under guidance), for devices without text
encoders: at SD3 Medium sizes in fp16 that is 5.7 MiB instead of 0.5 MiB.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "HANDOFF_MODES",
    "HEADER_ALLOWANCE",
    "SD3_TEXT_DIMS",
    "TensorSpec",
    "downlink_bits",
    "handoff_payload_bytes",
    "handoff_tensor_specs",
    "metadata_text_bytes",
    "safetensors_header",
    "safetensors_size",
]

HANDOFF_MODES = ("latent", "embeddings")
# Bytes of the safetensors header beyond the prompt texts: tensor entries, the scheduler config,
# model identity, steps, guidance, size and padding. The written files stay below it (tested).
HEADER_ALLOWANCE = 2048
# SD3 Medium's text conditioning: 77 CLIP + 256 T5 tokens of width 4096, pooled width 2048.
SD3_TEXT_DIMS = {"text_tokens": 77 + 256, "text_dim": 4096, "pooled_dim": 2048}

_DTYPES = {
    "float64": ("F64", 8),
    "float32": ("F32", 4),
    "float16": ("F16", 2),
    "bfloat16": ("BF16", 2),
}
_BITS_TO_DTYPE = {16: "float16", 32: "float32", 64: "float64"}


@dataclass(frozen=True)
class TensorSpec:
    """A tensor as the hand-off file stores it: name, dtype name (torch's) and shape."""

    name: str
    dtype: str
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.dtype not in _DTYPES:
            raise ValueError(
                f"unsupported hand-off dtype {self.dtype!r}; use one of {sorted(_DTYPES)}."
            )

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * _DTYPES[self.dtype][1]


def safetensors_header(specs: Sequence[TensorSpec], metadata: Mapping[str, str]) -> bytes:
    """The length prefix and JSON header of a safetensors file holding ``specs`` in order.

    Compact JSON, ASCII-escaped, padded with spaces to a multiple of 8 bytes (as safetensors
    itself pads), so the tensor data that follows is aligned.
    """
    header: dict[str, object] = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for spec in specs:
        header[spec.name] = {
            "dtype": _DTYPES[spec.dtype][0],
            "shape": list(spec.shape),
            "data_offsets": [offset, offset + spec.nbytes],
        }
        offset += spec.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode("ascii")
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw


def safetensors_size(specs: Sequence[TensorSpec], metadata: Mapping[str, str]) -> int:
    """Exact size in bytes of the safetensors file :func:`safetensors_header` starts."""
    return len(safetensors_header(specs, metadata)) + sum(s.nbytes for s in specs)


def handoff_tensor_specs(
    mode: str,
    latent_shape: Sequence[int],
    dtype: str,
    *,
    guided: bool,
    text_tokens: int,
    text_dim: int,
    pooled_dim: int,
) -> list[TensorSpec]:
    """The tensors a hand-off of ``mode`` stores (the latent first, then any embeddings)."""
    if mode not in HANDOFF_MODES:
        raise ValueError(f"hand-off mode must be one of {', '.join(HANDOFF_MODES)}, got {mode!r}.")
    specs = [TensorSpec("latents", dtype, tuple(int(v) for v in latent_shape))]
    if mode == "embeddings":
        prefixes = ("", "negative_") if guided else ("",)
        for prefix in prefixes:
            specs.append(TensorSpec(f"{prefix}prompt_embeds", dtype, (1, text_tokens, text_dim)))
            specs.append(TensorSpec(f"{prefix}pooled_prompt_embeds", dtype, (1, pooled_dim)))
    return specs


def metadata_text_bytes(text: str | None) -> int:
    """Bytes a text field adds to the header: JSON-escaped twice (metadata inside the header)."""
    if not text:
        return 0
    once = json.dumps(text)[1:-1]
    return len(json.dumps(once)) - 2


def handoff_payload_bytes(
    height: int,
    width: int,
    *,
    mode: str = "latent",
    prompt: str | None = None,
    negative_prompt: str | None = None,
    guided: bool = True,
    latent_channels: int = 16,
    bits_per_value: int = 16,
    vae_factor: int = 8,
    text_tokens: int = SD3_TEXT_DIMS["text_tokens"],
    text_dim: int = SD3_TEXT_DIMS["text_dim"],
    pooled_dim: int = SD3_TEXT_DIMS["pooled_dim"],
    header_allowance: int = HEADER_ALLOWANCE,
) -> int:
    """Bytes of one user's hand-off file as the solver charges them to the downlink.

    The tensors are counted exactly, the header as the user's prompt texts plus
    ``header_allowance`` (an upper bound of the rest, so the downlink is never under-charged).
    """
    if height % vae_factor or width % vae_factor:
        raise ValueError(f"height and width must be multiples of {vae_factor}.")
    if bits_per_value not in _BITS_TO_DTYPE:
        raise ValueError(
            f"bits_per_value must be one of {sorted(_BITS_TO_DTYPE)}, got {bits_per_value}."
        )
    specs = handoff_tensor_specs(
        mode,
        (1, latent_channels, height // vae_factor, width // vae_factor),
        _BITS_TO_DTYPE[bits_per_value],
        guided=guided,
        text_tokens=text_tokens,
        text_dim=text_dim,
        pooled_dim=pooled_dim,
    )
    texts = metadata_text_bytes(prompt) + metadata_text_bytes(negative_prompt)
    return sum(s.nbytes for s in specs) + texts + header_allowance


def downlink_bits(scenario: object, prompt: str | None, negative_prompt: str | None) -> float:
    """Bits the solver charges to send one user's hand-off (scenario fields ``handoff``,
    ``height``, ``width``, ``latent_*``); ``latent_compression`` models a codec the writer lacks."""
    payload = handoff_payload_bytes(
        scenario.height,
        scenario.width,
        mode=getattr(scenario, "handoff", "latent"),
        prompt=prompt,
        negative_prompt=negative_prompt,
        guided=scenario.guidance_scale > 1,
        latent_channels=scenario.latent_channels,
        bits_per_value=scenario.latent_bits_per_value,
    )
    return 8 * payload / scenario.latent_compression
