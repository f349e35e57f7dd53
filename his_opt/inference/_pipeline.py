"""Hybrid SD3 pipeline: a public (common) phase once per group, personal phases batched.

A group of users shares the first ``x`` denoising steps on a public prompt, computed once at
batch 1. At step ``x`` the latent forks into one branch per user; the branches run in one
transformer call per step (chunked by ``max_batch_size``), each with its own prompt, negative
prompt (NPI) and the personal guidance scale. Because ``FlowMatchEulerDiscreteScheduler.step`` is
element-wise, branches at the same timestep share one scheduler step, and a branch computes
exactly what a stock ``StableDiffusion3Pipeline`` run would compute for it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import PIL.Image
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, StableDiffusion3Pipeline
from diffusers.pipelines.stable_diffusion_3.pipeline_stable_diffusion_3 import calculate_shift
from diffusers.utils import BaseOutput

from ._handoff import HybridHandoff, model_fingerprint, same_weights, weights_probe
from ._rows import _rows_per_image

__all__ = ["HybridSD3Pipeline", "HybridSD3PipelineOutput"]

_OUTPUT_TYPES = ("pil", "np", "pt", "latent")


@dataclass
class HybridSD3PipelineOutput(BaseOutput):
    """Result of a hybrid call (or of :meth:`HybridSD3Pipeline.resume`).

    Args:
        images: the finished users' images in user order: a list of PIL images, a numpy array
            ``(k, H, W, 3)``, a tensor ``(k, 3, H, W)``, or latents ``(k, C, h, w)``.
        finished: user indices the entries of ``images`` belong to (all users unless some were
            handed off).
        handoffs: per user, the :class:`HybridHandoff` of a branch stopped early, else ``None``.
        shared_latents: the group latent after the ``x`` common steps, ``(1, C, h, w)``
            (the initial noise when ``x == 0``; ``None`` for ``resume``).
        initial_noise: the group's initial noise ``(1, C, h, w)`` (``None`` for ``resume``).
        timings: wall seconds per phase: ``encode_s``, ``public_s``, ``personal_s``,
            ``decode_s``, ``total_s``.
        transformer_rows: transformer batch rows computed (``public_rows + personal_rows``),
            a noise-free measure of work; an image with guidance costs 2 rows per step.
        public_rows: rows of the common phase.
        personal_rows: rows of the personal phases.
        batch_sizes: images per transformer call of the personal phases, in call order
            (never above ``max_batch_size``).
    """

    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor
    finished: list[int]
    handoffs: list[HybridHandoff | None]
    shared_latents: torch.Tensor | None
    initial_noise: torch.Tensor | None
    timings: dict[str, float]
    transformer_rows: int
    public_rows: int
    personal_rows: int
    batch_sizes: list[int] = field(default_factory=list)


class _Conditioning:
    """Per-branch prompt embeddings, concatenated per chunk in the stock ``[neg; pos]`` layout."""

    def __init__(
        self,
        positive: Sequence[tuple[torch.Tensor, torch.Tensor]],
        negative: Sequence[tuple[torch.Tensor, torch.Tensor]] | None,
    ) -> None:
        self.positive = list(positive)
        self.negative = None if negative is None else list(negative)
        self._cache: dict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor]] = {}

    def batch(self, rows: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        key = tuple(rows)
        if key not in self._cache:
            parts = [self.positive[r] for r in rows]
            if self.negative is not None:
                parts = [self.negative[r] for r in rows] + parts
            self._cache[key] = (
                torch.cat([embeds for embeds, _ in parts]),
                torch.cat([pooled for _, pooled in parts]),
            )
        return self._cache[key]

    def clear(self) -> None:
        """Forget concatenated chunks (called when the set of active branches changes)."""
        self._cache.clear()


class HybridSD3Pipeline(StableDiffusion3Pipeline):
    r"""Stable Diffusion 3 with hybrid inference: a common phase once, personal phases batched.

    Built over the stock components, so it loads like the stock pipeline::

        pipe = HybridSD3Pipeline.from_pretrained(path, torch_dtype=torch.float16).to("cuda")
        pipe = HybridSD3Pipeline.from_pipe(sd3_pipeline)  # shares the weights
        out = pipe(public_prompt="a dog", prompts=["a corgi on a beach", "a husky in snow"],
                   common_steps=9, public_guidance_scale=2.0, guidance_scale=8.0,
                   negative_prompts=["blurry", None])

    ``__call__`` takes a group (a public prompt and the users' personal prompts) rather than the
    stock signature; :meth:`resume` finishes branches handed off by another process.
    """

    @classmethod
    def from_pipe(cls, pipeline: Any, **kwargs: Any) -> HybridSD3Pipeline:
        """Build from another pipeline's components, sharing its weights.

        Unlike ``DiffusionPipeline.from_pipe``, which casts the shared modules to float32 unless
        ``dtype`` is given (changing the source pipeline too), this keeps the source's dtype
        (its transformer's) unless ``dtype``/``torch_dtype`` is passed.
        """
        if "dtype" not in kwargs and "torch_dtype" not in kwargs:
            source = getattr(pipeline, "transformer", None)
            kwargs["dtype"] = source.dtype if source is not None else pipeline.dtype
        return super().from_pipe(pipeline, **kwargs)

    def _sync(self, device: torch.device) -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def _encode_texts(
        self,
        requests: Sequence[tuple[str, int | None]],
        device: torch.device,
        max_sequence_length: int,
        lora_scale: float | None,
    ) -> dict[tuple[str, int | None], tuple[torch.Tensor, torch.Tensor]]:
        """Encode each distinct ``(text, clip_skip)`` once; return ``(embeds, pooled)`` per key.

        Texts are encoded one at a time, as the stock pipeline encodes a single prompt, so a
        prompt's embeddings (and the group's shared latent) do not depend on which other users
        are in the call.
        """
        table: dict[tuple[str, int | None], tuple[torch.Tensor, torch.Tensor]] = {}
        for text, skip in dict.fromkeys(requests):
            embeds, _, pooled, _ = self.encode_prompt(
                prompt=text,
                prompt_2=None,
                prompt_3=None,
                device=device,
                do_classifier_free_guidance=False,
                clip_skip=skip,
                max_sequence_length=max_sequence_length,
                lora_scale=lora_scale,
            )
            table[(text, skip)] = (embeds, pooled)
        return table

    def _make_scheduler(
        self,
        config: dict[str, Any],
        num_inference_steps: int,
        latent_shape: Sequence[int],
        device: torch.device,
        mu: float | None,
    ) -> tuple[FlowMatchEulerDiscreteScheduler, torch.Tensor, float | None]:
        """A fresh scheduler set to the stock pipeline's schedule (dynamic shifting included)."""
        scheduler = FlowMatchEulerDiscreteScheduler.from_config(config)
        if scheduler.config.get("stochastic_sampling", False):
            raise ValueError(
                "HybridSD3Pipeline needs a deterministic scheduler (stochastic_sampling=False)."
            )
        if scheduler.config.get("use_dynamic_shifting", None) and mu is None:
            seq_len = (latent_shape[-2] // self.transformer.config.patch_size) * (
                latent_shape[-1] // self.transformer.config.patch_size
            )
            mu = calculate_shift(
                seq_len,
                scheduler.config.get("base_image_seq_len", 256),
                scheduler.config.get("max_image_seq_len", 4096),
                scheduler.config.get("base_shift", 0.5),
                scheduler.config.get("max_shift", 1.16),
            )
        kwargs = {} if mu is None else {"mu": mu}
        scheduler.set_timesteps(num_inference_steps, device=device, **kwargs)
        return scheduler, scheduler.timesteps, mu

    def _denoise(
        self,
        latents: torch.Tensor,
        t: torch.Tensor,
        embeds: torch.Tensor,
        pooled: torch.Tensor,
        guidance_scale: float,
        joint_attention_kwargs: dict[str, Any] | None,
    ) -> torch.Tensor:
        """One guided velocity prediction, computed as the stock pipeline computes it."""
        cfg = guidance_scale > 1
        model_input = torch.cat([latents] * 2) if cfg else latents
        pred = self.transformer(
            hidden_states=model_input,
            timestep=t.expand(model_input.shape[0]),
            encoder_hidden_states=embeds,
            pooled_projections=pooled,
            joint_attention_kwargs=joint_attention_kwargs,
            return_dict=False,
        )[0]
        if cfg:
            uncond, text = pred.chunk(2)
            pred = uncond + guidance_scale * (text - uncond)
        return pred

    def _run_branches(
        self,
        latents: torch.Tensor,
        stops: Sequence[int],
        start: int,
        scheduler: FlowMatchEulerDiscreteScheduler,
        timesteps: torch.Tensor,
        cond: _Conditioning,
        guidance_scale: float,
        max_batch_size: int | None,
        joint_attention_kwargs: dict[str, Any] | None,
        progress: Any,
        batches: list[int],
    ) -> tuple[torch.Tensor, int]:
        """Step every branch ``b`` from ``start`` to ``stops[b]``; return latents and rows.

        Appends the images of each transformer call to ``batches``."""
        rows = 0
        per_image = _rows_per_image(guidance_scale)
        previous: list[int] = []
        for i in range(start, max(stops, default=start)):
            active = [b for b, stop in enumerate(stops) if stop > i]
            if active != previous:
                cond.clear()
                previous = active
            t = timesteps[i]
            chunk = max_batch_size or len(active)
            preds = []
            for lo in range(0, len(active), chunk):
                members = active[lo : lo + chunk]
                batches.append(len(members))
                embeds, pooled = cond.batch(members)
                preds.append(
                    self._denoise(
                        latents[members], t, embeds, pooled, guidance_scale, joint_attention_kwargs
                    )
                )
            index = torch.tensor(active, device=latents.device)
            latents[index] = scheduler.step(torch.cat(preds), t, latents[index], return_dict=False)[
                0
            ]
            rows += len(active) * per_image
            progress.update()
        return latents, rows

    def _decode(
        self, latents: torch.Tensor, output_type: str, max_batch_size: int | None
    ) -> list[PIL.Image.Image] | np.ndarray | torch.Tensor:
        if output_type == "latent":
            return latents
        chunk = max_batch_size or max(len(latents), 1)
        parts = []
        for lo in range(0, len(latents), chunk):
            part = latents[lo : lo + chunk]
            part = (part / self.vae.config.scaling_factor) + self.vae.config.shift_factor
            image = self.vae.decode(part.to(self.vae.dtype), return_dict=False)[0]
            parts.append(self.image_processor.postprocess(image, output_type=output_type))
        if output_type == "pil":
            return [img for part in parts for img in part]
        if output_type == "np":
            return np.concatenate(parts) if parts else np.zeros((0, 0, 0, 3), dtype=np.float32)
        return torch.cat(parts) if parts else torch.zeros(0)

    def _check_size(
        self, height: int | None, width: int | None, latents: torch.Tensor | None
    ) -> tuple[int, int]:
        multiple = self.vae_scale_factor * self.patch_size
        if latents is not None:
            channels = self.transformer.config.in_channels
            if latents.ndim != 4 or latents.shape[0] != 1 or latents.shape[1] != channels:
                raise ValueError(
                    f"`latents` must have shape (1, {channels}, h, w) (one noise per group), "
                    f"got {tuple(latents.shape)}."
                )
            from_latents = (
                latents.shape[2] * self.vae_scale_factor,
                latents.shape[3] * self.vae_scale_factor,
            )
            height = height or from_latents[0]
            width = width or from_latents[1]
            if (height, width) != from_latents:
                raise ValueError(
                    f"`latents` of shape {tuple(latents.shape)} imply {from_latents[0]}x"
                    f"{from_latents[1]} px, but height x width is {height}x{width}."
                )
        height = height or self.default_sample_size * self.vae_scale_factor
        width = width or self.default_sample_size * self.vae_scale_factor
        if height % multiple or width % multiple:
            raise ValueError(
                f"`height` and `width` must be divisible by {multiple}, got {height} and {width}."
            )
        return height, width

    @staticmethod
    def _check_output(output_type: str, max_batch_size: int | None) -> None:
        if output_type not in _OUTPUT_TYPES:
            raise ValueError(
                f"`output_type` must be one of {', '.join(_OUTPUT_TYPES)}, got {output_type!r}."
            )
        if max_batch_size is not None and (
            not isinstance(max_batch_size, int) or max_batch_size < 1
        ):
            raise ValueError(
                f"`max_batch_size` must be a positive int or None, got {max_batch_size!r}."
            )

    @torch.no_grad()
    def __call__(
        self,
        public_prompt: str | None = None,
        prompts: str | list[str] | None = None,
        common_steps: int = 0,
        num_inference_steps: int = 28,
        public_guidance_scale: float | None = None,
        guidance_scale: float = 7.0,
        negative_prompts: str | list[str | None] | None = None,
        edge_steps: int | list[int] | None = None,
        height: int | None = None,
        width: int | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        max_batch_size: int | None = 16,
        output_type: str = "pil",
        return_dict: bool = True,
        joint_attention_kwargs: dict[str, Any] | None = None,
        clip_skip: int | None = None,
        max_sequence_length: int = 256,
        mu: float | None = None,
    ) -> HybridSD3PipelineOutput | tuple:
        r"""Run one group: ``x`` public steps once, then one batched branch per personal prompt.

        Args:
            public_prompt: the group's public prompt; may be ``None`` only when ``common_steps == 0``.
            prompts: the users' personal prompts (one image each).
            common_steps: x, the shared steps (``0 <= x < num_inference_steps``).
            num_inference_steps: T, the total denoising steps of every image.
            public_guidance_scale: guidance of the public phase (SIM); ``<= 1`` disables guidance
                there (half the public work). Defaults to ``guidance_scale``.
            guidance_scale: guidance of the personal phase.
            negative_prompts: per-user negative prompts (NPI), a list matching ``prompts``
                (``None`` entries use the empty prompt) or one string for everyone. Used only in
                the personal phase; the public phase's unconditional prompt stays empty.
            edge_steps: y, personal steps to run here, an int or one per user
                (``0 <= y <= T - x``, default ``T - x``). A branch with ``y < T - x`` is not
                finished: the output carries its :class:`HybridHandoff` instead of an image.
            height, width: image size in pixels (default: the transformer's sample size x 8).
            generator: a ``torch.Generator`` for the group's initial noise.
            latents: the group's initial noise ``(1, C, h, w)``; sampled with ``generator`` if
                ``None``.
            max_batch_size: most branches (images) per transformer call; with guidance a branch
                is 2 rows. ``None``: all branches in one call.
            output_type: ``"pil"``, ``"np"``, ``"pt"`` or ``"latent"``.
            return_dict: return a :class:`HybridSD3PipelineOutput` (else ``(images, handoffs)``).
            joint_attention_kwargs, clip_skip, max_sequence_length, mu: as in the stock pipeline.
        """
        t_start = time.perf_counter()
        prompts = [prompts] if isinstance(prompts, str) else prompts
        if (
            not prompts
            or not isinstance(prompts, list)
            or not all(isinstance(p, str) for p in prompts)
        ):
            raise ValueError("`prompts` must be a non-empty list of strings (one per user).")
        n = len(prompts)
        self._check_output(output_type, max_batch_size)
        total = num_inference_steps
        if isinstance(total, bool) or not isinstance(total, int) or total < 1:
            raise ValueError(f"`num_inference_steps` must be a positive int, got {total!r}.")
        if max_sequence_length > 512:
            raise ValueError(
                f"`max_sequence_length` cannot be greater than 512, got {max_sequence_length}."
            )
        x = common_steps
        if isinstance(x, bool) or not isinstance(x, int) or not 0 <= x < total:
            raise ValueError(f"`common_steps` must be an int in 0..{total - 1}, got {x!r}.")
        if x > 0 and not isinstance(public_prompt, str):
            raise ValueError("`public_prompt` must be a string when `common_steps` > 0.")
        if public_prompt is not None and not isinstance(public_prompt, str):
            raise ValueError(
                f"`public_prompt` must be a string or None, got {type(public_prompt).__name__}."
            )
        public_guidance_scale = (
            guidance_scale if public_guidance_scale is None else public_guidance_scale
        )
        if isinstance(negative_prompts, str):
            negative_prompts = [negative_prompts] * n
        if negative_prompts is None:
            negative_prompts = [None] * n
        if not isinstance(negative_prompts, list) or len(negative_prompts) != n:
            got = (
                len(negative_prompts)
                if isinstance(negative_prompts, list)
                else type(negative_prompts).__name__
            )
            raise ValueError(f"`negative_prompts` must have one entry per prompt ({n}), got {got}.")
        if not all(neg is None or isinstance(neg, str) for neg in negative_prompts):
            raise ValueError("`negative_prompts` entries must be strings or None.")
        personal_cfg = guidance_scale > 1
        if not personal_cfg and any(neg for neg in negative_prompts):
            raise ValueError(
                "`negative_prompts` need `guidance_scale` > 1 (no guidance uses no negative prompt)."
            )
        if edge_steps is None:
            edge_steps = [total - x] * n
        elif isinstance(edge_steps, int) and not isinstance(edge_steps, bool):
            edge_steps = [edge_steps] * n
        if not isinstance(edge_steps, list) or len(edge_steps) != n:
            raise ValueError(
                f"`edge_steps` must be an int or a list with one entry per prompt ({n})."
            )
        for y in edge_steps:
            if isinstance(y, bool) or not isinstance(y, int) or not 0 <= y <= total - x:
                raise ValueError(
                    f"`edge_steps` entries must be ints in 0..{total - x} (T - x), got {y!r}."
                )
        height, width = self._check_size(height, width, latents)

        self._guidance_scale = guidance_scale
        self._clip_skip = clip_skip
        self._joint_attention_kwargs = joint_attention_kwargs
        self._interrupt = False
        device = self._execution_device
        lora_scale = (joint_attention_kwargs or {}).get("scale")

        # 1. Encode every distinct prompt once (negatives without clip_skip, as the stock pipeline).
        public_cfg = x > 0 and public_guidance_scale > 1
        requests: list[tuple[str, int | None]] = [(p, clip_skip) for p in prompts]
        if x > 0:
            requests.append((public_prompt, clip_skip))
        if public_cfg:
            requests.append(("", None))
        if personal_cfg:
            requests += [(neg or "", None) for neg in negative_prompts]
        table = self._encode_texts(requests, device, max_sequence_length, lora_scale)
        dtype = next(iter(table.values()))[0].dtype
        self._sync(device)
        t_encoded = time.perf_counter()

        # 2. The group's noise and schedule (a fresh scheduler per call keeps step_index right).
        noise = self.prepare_latents(
            1, self.transformer.config.in_channels, height, width, dtype, device, generator, latents
        )
        scheduler, timesteps, mu = self._make_scheduler(
            self.scheduler.config, total, noise.shape, device, mu
        )
        self._num_timesteps = len(timesteps)
        public_rows = personal_rows = 0
        batches: list[int] = []
        with self.progress_bar(total=x + max(edge_steps)) as progress:
            # 3. Public phase: x steps at batch 1.
            shared = noise
            if x > 0:
                pos = table[(public_prompt, clip_skip)]
                embeds, pooled = pos
                if public_cfg:
                    neg = table[("", None)]
                    embeds, pooled = torch.cat([neg[0], pos[0]]), torch.cat([neg[1], pos[1]])
                for i in range(x):
                    t = timesteps[i]
                    pred = self._denoise(
                        shared, t, embeds, pooled, public_guidance_scale, joint_attention_kwargs
                    )
                    shared = scheduler.step(pred, t, shared, return_dict=False)[0]
                    public_rows += _rows_per_image(public_guidance_scale)
                    progress.update()
            self._sync(device)
            t_public = time.perf_counter()

            # 4. Personal phases: fork, then one batched transformer call per step.
            cond = _Conditioning(
                [table[(p, clip_skip)] for p in prompts],
                [table[(neg or "", None)] for neg in negative_prompts] if personal_cfg else None,
            )
            branches = shared.expand(n, *shared.shape[1:]).clone()
            branches, personal_rows = self._run_branches(
                branches,
                [x + y for y in edge_steps],
                x,
                scheduler,
                timesteps,
                cond,
                guidance_scale,
                max_batch_size,
                joint_attention_kwargs,
                progress,
                batches,
            )
            self._sync(device)
            t_personal = time.perf_counter()

        # 5. Hand-offs for branches stopped early; decode the finished ones.
        fingerprint = model_fingerprint(self.transformer)
        probe = weights_probe(self.transformer) if any(y < total - x for y in edge_steps) else None
        handoffs: list[HybridHandoff | None] = []
        for u, y in enumerate(edge_steps):
            if y == total - x:
                handoffs.append(None)
                continue
            pos = table[(prompts[u], clip_skip)]
            neg = table[(negative_prompts[u] or "", None)] if personal_cfg else (None, None)
            handoffs.append(
                HybridHandoff(
                    latents=branches[u : u + 1].clone(),
                    step_index=x + y,
                    num_inference_steps=total,
                    scheduler_config=json.loads(
                        json.dumps(dict(self.scheduler.config), default=list)
                    ),
                    guidance_scale=float(guidance_scale),
                    prompt=prompts[u],
                    negative_prompt=negative_prompts[u],
                    model_fingerprint=fingerprint,
                    weights_probe=probe,
                    height=height,
                    width=width,
                    common_steps=x,
                    mu=mu,
                    max_sequence_length=max_sequence_length,
                    clip_skip=clip_skip,
                    prompt_embeds=pos[0],
                    pooled_prompt_embeds=pos[1],
                    negative_prompt_embeds=neg[0],
                    negative_pooled_prompt_embeds=neg[1],
                )
            )
        finished = [u for u, h in enumerate(handoffs) if h is None]
        images = self._decode(branches[finished], output_type, max_batch_size)
        self._sync(device)
        t_end = time.perf_counter()
        self.maybe_free_model_hooks()

        if not return_dict:
            return images, handoffs
        return HybridSD3PipelineOutput(
            images=images,
            finished=finished,
            handoffs=handoffs,
            shared_latents=shared,
            initial_noise=noise,
            timings={
                "encode_s": t_encoded - t_start,
                "public_s": t_public - t_encoded,
                "personal_s": t_personal - t_public,
                "decode_s": t_end - t_personal,
                "total_s": t_end - t_start,
            },
            transformer_rows=public_rows + personal_rows,
            public_rows=public_rows,
            personal_rows=personal_rows,
            batch_sizes=batches,
        )

    def check_handoff(
        self,
        handoff: HybridHandoff,
        *,
        num_inference_steps: int | None = None,
        height: int | None = None,
        width: int | None = None,
        cast_dtype: bool = False,
    ) -> None:
        """Raise ``ValueError`` naming what differs if this pipeline cannot resume ``handoff``.

        Checks the model's identity (architecture fingerprint and weights probe, not the dtype),
        latent channels, dtype (unless ``cast_dtype``) and embedding widths, and, when given,
        the expected step count and image size.
        """
        fingerprint = model_fingerprint(self.transformer)
        if handoff.model_fingerprint != fingerprint:
            raise ValueError(
                f"hand-off comes from another model: fingerprint {handoff.model_fingerprint} "
                f"!= this pipeline's {fingerprint}."
            )
        if not same_weights(handoff.weights_probe, weights_probe(self.transformer)):
            raise ValueError(
                "hand-off comes from another model: same architecture, other weights "
                f"(fingerprint {fingerprint})."
            )
        if num_inference_steps is not None and handoff.num_inference_steps != num_inference_steps:
            raise ValueError(
                f"hand-off step count differs: T = {handoff.num_inference_steps}, expected "
                f"{num_inference_steps}."
            )
        if (height is not None and handoff.height != height) or (
            width is not None and handoff.width != width
        ):
            raise ValueError(
                f"hand-off shape differs: {handoff.height}x{handoff.width} px, expected "
                f"{height or handoff.height}x{width or handoff.width}."
            )
        expected = (
            1,
            self.transformer.config.in_channels,
            handoff.height // self.vae_scale_factor,
            handoff.width // self.vae_scale_factor,
        )
        if handoff.shape != expected:
            raise ValueError(
                f"hand-off latent shape differs: {handoff.shape}, expected {expected}."
            )
        if not cast_dtype and handoff.latents.dtype != self.transformer.dtype:
            raise ValueError(
                f"hand-off dtype differs: {handoff.dtype}, pipeline runs "
                f"{str(self.transformer.dtype).removeprefix('torch.')}."
            )
        if not 0 <= handoff.step_index < handoff.num_inference_steps:
            raise ValueError(
                f"hand-off step index {handoff.step_index} outside 0..{handoff.num_inference_steps - 1}."
            )
        if handoff.has_embeddings and (
            handoff.prompt_embeds.shape[-1] != self.transformer.config.joint_attention_dim
            or handoff.pooled_prompt_embeds.shape[-1]
            != self.transformer.config.pooled_projection_dim
        ):
            raise ValueError("hand-off prompt embeddings do not match this model's widths.")
        if (
            handoff.guidance_scale > 1
            and handoff.has_embeddings
            and handoff.negative_prompt_embeds is None
        ):
            raise ValueError("hand-off with guidance carries no negative prompt embeddings.")

    def _handoff_embeddings(
        self, handoff: HybridHandoff, device: torch.device, lora_scale: float | None
    ) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor] | None]:
        cfg = handoff.guidance_scale > 1
        if handoff.has_embeddings:
            dtype = self.transformer.dtype
            pos = (
                handoff.prompt_embeds.to(device, dtype),
                handoff.pooled_prompt_embeds.to(device, dtype),
            )
            neg = None
            if cfg:
                neg = (
                    handoff.negative_prompt_embeds.to(device, dtype),
                    handoff.negative_pooled_prompt_embeds.to(device, dtype),
                )
            return pos, neg
        if self.text_encoder is None or self.tokenizer is None:
            raise ValueError(
                "hand-off carries no prompt embeddings and this pipeline has no text encoders."
            )
        requests = [(handoff.prompt, handoff.clip_skip)]
        if cfg:
            requests.append((handoff.negative_prompt or "", None))
        table = self._encode_texts(requests, device, handoff.max_sequence_length, lora_scale)
        return table[requests[0]], (table[requests[1]] if cfg else None)

    @torch.no_grad()
    def resume(
        self,
        handoffs: HybridHandoff | Sequence[HybridHandoff],
        *,
        num_inference_steps: int | None = None,
        height: int | None = None,
        width: int | None = None,
        max_batch_size: int | None = 16,
        output_type: str = "pil",
        return_dict: bool = True,
        joint_attention_kwargs: dict[str, Any] | None = None,
        cast_dtype: bool = False,
    ) -> HybridSD3PipelineOutput | tuple:
        """Finish hand-off branches (personal phase II): run their remaining ``z`` steps.

        Branches with the same step index, schedule and guidance run batched. Resuming equals
        the unsplit run. ``num_inference_steps``, ``height`` and ``width``, when given, are
        checked against each hand-off. ``cast_dtype`` lets a pipeline of another dtype resume
        (latent and embeddings are cast to the transformer's dtype; results then differ by that
        dtype's rounding).
        """
        t_start = time.perf_counter()
        handoffs = [handoffs] if isinstance(handoffs, HybridHandoff) else list(handoffs)
        if not handoffs:
            raise ValueError("`handoffs` must hold at least one HybridHandoff.")
        self._check_output(output_type, max_batch_size)
        for handoff in handoffs:
            if not isinstance(handoff, HybridHandoff):
                raise ValueError(
                    f"`handoffs` entries must be HybridHandoff, got {type(handoff).__name__}."
                )
            self.check_handoff(
                handoff,
                num_inference_steps=num_inference_steps,
                height=height,
                width=width,
                cast_dtype=cast_dtype,
            )
        device = self._execution_device
        lora_scale = (joint_attention_kwargs or {}).get("scale")

        groups: dict[str, list[int]] = {}
        for k, h in enumerate(handoffs):
            key = json.dumps(
                [
                    h.step_index,
                    h.num_inference_steps,
                    h.mu,
                    h.guidance_scale,
                    h.shape,
                    h.scheduler_config,
                ],
                sort_keys=True,
            )
            groups.setdefault(key, []).append(k)
        embeddings = [self._handoff_embeddings(h, device, lora_scale) for h in handoffs]
        self._sync(device)
        t_encoded = time.perf_counter()

        results: list[torch.Tensor | None] = [None] * len(handoffs)
        rows = 0
        batches: list[int] = []
        with self.progress_bar(
            total=sum(handoffs[g[0]].remaining_steps for g in groups.values())
        ) as progress:
            for members in groups.values():
                first = handoffs[members[0]]
                scheduler, timesteps, _ = self._make_scheduler(
                    first.scheduler_config, first.num_inference_steps, first.shape, device, first.mu
                )
                scheduler.set_begin_index(first.step_index)
                cond = _Conditioning(
                    [embeddings[k][0] for k in members],
                    [embeddings[k][1] for k in members] if first.guidance_scale > 1 else None,
                )
                latents = torch.cat(
                    [handoffs[k].latents.to(device, self.transformer.dtype) for k in members]
                )
                latents, group_rows = self._run_branches(
                    latents,
                    [first.num_inference_steps] * len(members),
                    first.step_index,
                    scheduler,
                    timesteps,
                    cond,
                    first.guidance_scale,
                    max_batch_size,
                    joint_attention_kwargs,
                    progress,
                    batches,
                )
                rows += group_rows
                for j, k in enumerate(members):
                    results[k] = latents[j : j + 1]
        self._sync(device)
        t_personal = time.perf_counter()
        images = self._decode(torch.cat(results), output_type, max_batch_size)
        self._sync(device)
        t_end = time.perf_counter()
        self.maybe_free_model_hooks()
        if not return_dict:
            return images, [None] * len(handoffs)
        return HybridSD3PipelineOutput(
            images=images,
            finished=list(range(len(handoffs))),
            handoffs=[None] * len(handoffs),
            shared_latents=None,
            initial_noise=None,
            timings={
                "encode_s": t_encoded - t_start,
                "public_s": 0.0,
                "personal_s": t_personal - t_encoded,
                "decode_s": t_end - t_personal,
                "total_s": t_end - t_start,
            },
            transformer_rows=rows,
            public_rows=0,
            personal_rows=rows,
            batch_sizes=batches,
        )
