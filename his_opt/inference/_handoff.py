"""Hand-off of a personal branch between processes: the latent plus everything to finish it.

The edge server stops a personal branch after ``y`` of its steps; the user device resumes it and
runs the last ``z`` steps. A :class:`HybridHandoff` carries the latent, the step index, the
schedule (T, scheduler config, ``mu``), guidance, the prompt texts and, by default, the personal
prompt embeddings, so the device needs no text encoders. It is stored with safetensors; the
metadata lives in the safetensors header as one JSON document.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._atomic import atomic_write_bytes
from .._errors import InputError

__all__ = ["HANDOFF_FORMAT", "HybridHandoff", "model_fingerprint"]

HANDOFF_FORMAT = "his-opt/handoff/1"
_META_KEY = "his_opt.handoff"
_EMBED_KEYS = (
    "prompt_embeds",
    "pooled_prompt_embeds",
    "negative_prompt_embeds",
    "negative_pooled_prompt_embeds",
)


def model_fingerprint(transformer: Any) -> str:
    """Identify a transformer: hash of its config and a float16 probe of its first weights.

    The probe tells apart two models with the same config (different seeds or checkpoints); it is
    taken in float16 so a float32 model and its float16 cast share a fingerprint.
    """
    import torch

    config = {k: v for k, v in dict(transformer.config).items() if not k.startswith("_")}
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    first = next(iter(transformer.parameters()))
    if first.device.type != "meta":
        probe = first.detach().flatten()[:256].to(device="cpu", dtype=torch.float16)
        digest.update(probe.numpy().tobytes())
    return digest.hexdigest()[:16]


@dataclass
class HybridHandoff:
    """A personal branch stopped after ``step_index`` of ``num_inference_steps`` steps.

    ``latents`` has shape ``(1, C, h, w)``. ``common_steps`` is the group's x (informational).
    The embeddings are optional: without them :meth:`HybridSD3Pipeline.resume` encodes
    ``prompt`` and ``negative_prompt`` with its own text encoders.
    """

    latents: Any
    step_index: int
    num_inference_steps: int
    scheduler_config: dict[str, Any]
    guidance_scale: float
    prompt: str
    model_fingerprint: str
    height: int
    width: int
    negative_prompt: str | None = None
    common_steps: int = 0
    mu: float | None = None
    max_sequence_length: int = 256
    clip_skip: int | None = None
    prompt_embeds: Any = None
    pooled_prompt_embeds: Any = None
    negative_prompt_embeds: Any = None
    negative_pooled_prompt_embeds: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def remaining_steps(self) -> int:
        """Steps left to run (z)."""
        return self.num_inference_steps - self.step_index

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.latents.shape)

    @property
    def dtype(self) -> str:
        return str(self.latents.dtype).removeprefix("torch.")

    @property
    def has_embeddings(self) -> bool:
        return self.prompt_embeds is not None and self.pooled_prompt_embeds is not None

    def metadata(self) -> dict[str, Any]:
        """The JSON metadata stored in the safetensors header."""
        return {
            "format": HANDOFF_FORMAT,
            "model_fingerprint": self.model_fingerprint,
            "num_inference_steps": self.num_inference_steps,
            "step_index": self.step_index,
            "common_steps": self.common_steps,
            "scheduler_config": self.scheduler_config,
            "mu": self.mu,
            "guidance_scale": self.guidance_scale,
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "height": self.height,
            "width": self.width,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "max_sequence_length": self.max_sequence_length,
            "clip_skip": self.clip_skip,
            "extra": self.extra,
        }

    def to_bytes(self) -> bytes:
        """Serialize to safetensors bytes (tensors moved to CPU)."""
        from safetensors.torch import save

        tensors = {"latents": self.latents}
        for key in _EMBED_KEYS:
            value = getattr(self, key)
            if value is not None:
                tensors[key] = value
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
        return save(
            tensors, metadata={_META_KEY: json.dumps(self.metadata(), default=_json_default)}
        )

    def save(self, path: str | Path) -> Path:
        """Write the hand-off to ``path`` atomically and return the path."""
        path = Path(path)
        atomic_write_bytes(path, self.to_bytes())
        return path

    @classmethod
    def from_bytes(cls, data: bytes, *, source: str = "<bytes>") -> HybridHandoff:
        """Parse safetensors bytes written by :meth:`to_bytes`; ``ValueError`` if malformed."""
        from safetensors.torch import load

        try:
            header_len = struct.unpack("<Q", data[:8])[0]
            header = json.loads(data[8 : 8 + header_len])
            raw_meta = header.get("__metadata__", {}).get(_META_KEY)
            tensors = load(data)
        except Exception as err:  # noqa: BLE001 - any parse failure means "not a hand-off"
            raise ValueError(f"{source}: not a safetensors hand-off file ({err}).") from None
        if raw_meta is None:
            raise ValueError(f"{source}: safetensors file without his-opt hand-off metadata.")
        meta = json.loads(raw_meta)
        if meta.get("format") != HANDOFF_FORMAT:
            raise ValueError(
                f"{source}: hand-off format {meta.get('format')!r}, expected {HANDOFF_FORMAT!r}."
            )
        if "latents" not in tensors:
            raise ValueError(f"{source}: hand-off file holds no 'latents' tensor.")
        latents = tensors["latents"]
        if list(latents.shape) != list(meta["shape"]):
            raise ValueError(
                f"{source}: latents shape {list(latents.shape)} differs from the recorded "
                f"shape {meta['shape']}."
            )
        if str(latents.dtype).removeprefix("torch.") != meta["dtype"]:
            raise ValueError(
                f"{source}: latents dtype {latents.dtype} differs from the recorded dtype "
                f"{meta['dtype']}."
            )
        total, step = meta["num_inference_steps"], meta["step_index"]
        if not 0 <= step < total:
            raise ValueError(f"{source}: step_index {step} outside 0..{total - 1}.")
        return cls(
            latents=latents,
            step_index=step,
            num_inference_steps=total,
            scheduler_config=meta["scheduler_config"],
            guidance_scale=meta["guidance_scale"],
            prompt=meta["prompt"],
            model_fingerprint=meta["model_fingerprint"],
            height=meta["height"],
            width=meta["width"],
            negative_prompt=meta["negative_prompt"],
            common_steps=meta["common_steps"],
            mu=meta["mu"],
            max_sequence_length=meta["max_sequence_length"],
            clip_skip=meta["clip_skip"],
            extra=meta.get("extra", {}),
            **{key: tensors.get(key) for key in _EMBED_KEYS},
        )

    @classmethod
    def load(cls, path: str | Path) -> HybridHandoff:
        """Read a hand-off file; a malformed file raises :class:`InputError` naming it."""
        path = Path(path)
        if not path.is_file():
            raise InputError("hand-off file not found", file=path)
        try:
            return cls.from_bytes(path.read_bytes(), source=str(path))
        except ValueError as err:
            raise InputError(str(err).removeprefix(f"{path}: "), file=path) from None


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, tuple | set):
        return list(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
