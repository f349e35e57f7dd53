"""Hand-off of a personal branch between processes: the latent plus everything to finish it.

The edge server stops a personal branch after ``y`` of its steps; the user device resumes it and
runs the last ``z`` steps. A :class:`HybridHandoff` carries the latent, the step index, the
schedule (T, scheduler config, ``mu``), guidance, the prompt texts and the model's identity; by
default (mode ``latent``) the device encodes its prompts, and mode ``embeddings`` adds the prompt
embeddings for devices without text encoders. It is stored as safetensors laid out by
:mod:`his_opt.costs._payload` (the byte model the solver charges); the metadata lives in the
header as one JSON document.
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
from ..costs._payload import HANDOFF_MODES, TensorSpec, safetensors_header, safetensors_size

__all__ = ["HANDOFF_FORMAT", "HybridHandoff", "model_fingerprint", "same_weights", "weights_probe"]

HANDOFF_FORMAT = "his-opt/handoff/1"
_META_KEY = "his_opt.handoff"
PROBE_COUNT = 16
# bf16 keeps 8 significant bits (relative error <= 2**-9); fp16 flushes weights below ~6e-8.
PROBE_RTOL, PROBE_ATOL = 1e-2, 1e-6
_EMBED_KEYS = (
    "prompt_embeds",
    "pooled_prompt_embeds",
    "negative_prompt_embeds",
    "negative_pooled_prompt_embeds",
)


def model_fingerprint(transformer: Any) -> str:
    """Identify a transformer's architecture: hash of its config and its weights' names and shapes.

    Dtype plays no part, so the fp32, fp16 and bf16 copies of one model share a fingerprint;
    :func:`weights_probe` tells apart two models of one architecture (other seeds, checkpoints).
    """
    config = {k: v for k, v in dict(transformer.config).items() if not k.startswith("_")}
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    for name, param in sorted(transformer.state_dict().items()):
        digest.update(f"{name}:{list(param.shape)};".encode())
    return digest.hexdigest()[:16]


def weights_probe(transformer: Any, count: int = PROBE_COUNT) -> list[float] | None:
    """``count`` weights spread over the transformer's parameters (6 significant digits), or
    ``None`` for meta tensors. Compared with a relative tolerance wider than bf16 rounding."""
    import torch

    params = [p for p in transformer.parameters() if p.numel() >= 4]
    if not params or params[0].device.type == "meta":
        return None
    picks = [params[round(i * (len(params) - 1) / max(count - 1, 1))] for i in range(count)]
    values = []
    for k, p in enumerate(picks):
        flat = p.detach().reshape(-1)
        value = float(flat[(k * 7919) % flat.numel()].to(device="cpu", dtype=torch.float32))
        values.append(float(f"{value:.6g}"))
    return values


def same_weights(a: list[float] | None, b: list[float] | None) -> bool:
    """Whether two probes come from one model (up to a dtype cast); unknown probes pass."""
    if a is None or b is None:
        return True
    if len(a) != len(b):
        return False
    return all(
        abs(x - y) <= PROBE_RTOL * max(abs(x), abs(y)) + PROBE_ATOL
        for x, y in zip(a, b, strict=True)
    )


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
    weights_probe: list[float] | None = None
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
            "weights_probe": self.weights_probe,
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

    def _tensors(self, mode: str) -> dict[str, Any]:
        if mode not in HANDOFF_MODES:
            raise ValueError(
                f"hand-off mode must be one of {', '.join(HANDOFF_MODES)}, got {mode!r}."
            )
        tensors = {"latents": self.latents}
        if mode == "embeddings":
            if not self.has_embeddings:
                raise ValueError("mode 'embeddings' needs a hand-off that carries its embeddings.")
            tensors |= {k: getattr(self, k) for k in _EMBED_KEYS if getattr(self, k) is not None}
        return {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}

    def _layout(self, mode: str) -> tuple[list[TensorSpec], dict[str, str], dict[str, Any]]:
        tensors = self._tensors(mode)
        specs = [
            TensorSpec(k, str(v.dtype).removeprefix("torch."), tuple(v.shape))
            for k, v in tensors.items()
        ]
        meta = json.dumps(self.metadata(), separators=(",", ":"), default=_json_default)
        return specs, {_META_KEY: meta}, tensors

    def file_size(self, mode: str = "latent") -> int:
        """Exact bytes :meth:`to_bytes` writes for ``mode`` (the byte model, torch-free layout)."""
        specs, metadata, _ = self._layout(mode)
        return safetensors_size(specs, metadata)

    def to_bytes(self, mode: str = "latent") -> bytes:
        """Serialize to safetensors bytes (tensors moved to CPU).

        ``mode="latent"`` (default) stores the latent and the texts, and the device encodes its
        prompts; ``"embeddings"`` also stores the prompt embeddings (devices without text
        encoders). The layout is :func:`his_opt.costs._payload.safetensors_header`'s.
        """
        import torch

        specs, metadata, tensors = self._layout(mode)
        parts = [safetensors_header(specs, metadata)]
        parts += [t.reshape(-1).view(torch.uint8).numpy().tobytes() for t in tensors.values()]
        return b"".join(parts)

    def save(self, path: str | Path, mode: str = "latent") -> Path:
        """Write the hand-off to ``path`` atomically and return the path."""
        path = Path(path)
        atomic_write_bytes(path, self.to_bytes(mode))
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
            why = (str(err).splitlines() or [type(err).__name__])[0]
            raise ValueError(f"{source}: not a safetensors hand-off file ({why}).") from None
        if raw_meta is None:
            raise ValueError(f"{source}: safetensors file without his-opt hand-off metadata.")
        try:
            meta = json.loads(raw_meta)
        except json.JSONDecodeError as err:
            raise ValueError(f"{source}: hand-off metadata is not JSON ({err}).") from None
        if not isinstance(meta, dict) or meta.get("format") != HANDOFF_FORMAT:
            raise ValueError(
                f"{source}: hand-off format "
                f"{meta.get('format') if isinstance(meta, dict) else None!r}, "
                f"expected {HANDOFF_FORMAT!r}."
            )
        if "latents" not in tensors:
            raise ValueError(f"{source}: hand-off file holds no 'latents' tensor.")
        try:
            return cls._from_parts(meta, tensors)
        except (KeyError, TypeError) as err:
            raise ValueError(f"{source}: hand-off metadata lacks or mistypes {err}.") from None
        except ValueError as err:
            raise ValueError(f"{source}: {err}") from None

    @classmethod
    def _from_parts(cls, meta: dict[str, Any], tensors: dict[str, Any]) -> HybridHandoff:
        latents = tensors["latents"]
        if list(latents.shape) != list(meta["shape"]):
            raise ValueError(
                f"latents shape {list(latents.shape)} differs from the recorded "
                f"shape {meta['shape']}."
            )
        if str(latents.dtype).removeprefix("torch.") != meta["dtype"]:
            raise ValueError(
                f"latents dtype {latents.dtype} differs from the recorded dtype {meta['dtype']}."
            )
        total, step = meta["num_inference_steps"], meta["step_index"]
        if not 0 <= step < total:
            raise ValueError(f"step_index {step} outside 0..{total - 1}.")
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
            weights_probe=meta.get("weights_probe"),
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
