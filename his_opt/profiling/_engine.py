"""The sweep engine: one public trajectory per block, every (personal prompt, x) branch from it.

``HybridSD3Pipeline`` runs one group at one common-step count ``x``. A quality sweep needs every
``x`` for the same public trajectory, so this engine runs the public phase once and forks a
branch per (personal prompt, x) at step ``x``. All live branches sit at the same timestep, so each
step is one batched transformer call (chunked by ``max_batch_size``) and one scheduler step, and
each branch computes what ``HybridSD3Pipeline(public_prompt, [prompt], common_steps=x)`` computes
with the same seed (the tests check this). The public phase's unconditional prompt is empty;
negative prompts (NPI) apply to the personal phase only, as in the pipeline.

The initial noise comes from ``torch.Generator("cpu").manual_seed(seed)``, so a seed names the
same noise on every device.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["BranchResult", "hybrid_rows", "per_image_rows", "run_branches", "sweep_rows"]


def _rows(scale: float) -> int:
    return 2 if scale > 1 else 1


def per_image_rows(
    common_steps: int, total_steps: int, public_guidance_scale: float, guidance_scale: float
) -> int:
    """Rows of one image computed on its own (the research code): x public + (T - x) personal."""
    return common_steps * _rows(public_guidance_scale) + (total_steps - common_steps) * _rows(
        guidance_scale
    )


def hybrid_rows(
    n_prompts: int,
    common_steps: int,
    total_steps: int,
    public_guidance_scale: float,
    guidance_scale: float,
) -> int:
    """Rows of one hybrid pipeline call: x public steps once, T - x for each prompt."""
    return common_steps * _rows(public_guidance_scale) + n_prompts * (
        total_steps - common_steps
    ) * _rows(guidance_scale)


def sweep_rows(
    n_prompts: int,
    common_steps: Sequence[int],
    total_steps: int,
    public_guidance_scale: float,
    guidance_scale: float,
) -> int:
    """Rows of one engine block: the public phase once up to max(x), then every branch."""
    public = max(common_steps, default=0) * _rows(public_guidance_scale)
    personal = n_prompts * sum(total_steps - x for x in common_steps) * _rows(guidance_scale)
    return public + personal


@dataclass
class BranchResult:
    """Images of one block, keyed by (prompt index, x), with the work and time it took."""

    images: dict[tuple[int, int], np.ndarray]
    public_rows: int
    personal_rows: int
    timings: dict[str, float] = field(default_factory=dict)
    transformer_calls: int = 0

    @property
    def transformer_rows(self) -> int:
        return self.public_rows + self.personal_rows


def _sync(device: Any) -> None:
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        torch.cuda.synchronize(device)


def _scheduler(
    pipe: Any, total_steps: int, latent_shape: Sequence[int], device: Any, begin: int
) -> Any:
    """A fresh scheduler at ``begin`` on the stock SD3 schedule (dynamic shifting included)."""
    from diffusers import FlowMatchEulerDiscreteScheduler
    from diffusers.pipelines.stable_diffusion_3.pipeline_stable_diffusion_3 import calculate_shift

    scheduler = FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config)
    if scheduler.config.get("stochastic_sampling", False):
        raise ValueError(
            "the sweep engine needs a deterministic scheduler (stochastic_sampling=False)."
        )
    kwargs = {}
    if scheduler.config.get("use_dynamic_shifting", None):
        patch = pipe.transformer.config.patch_size
        seq_len = (latent_shape[-2] // patch) * (latent_shape[-1] // patch)
        kwargs["mu"] = calculate_shift(
            seq_len,
            scheduler.config.get("base_image_seq_len", 256),
            scheduler.config.get("max_image_seq_len", 4096),
            scheduler.config.get("base_shift", 0.5),
            scheduler.config.get("max_shift", 1.16),
        )
    scheduler.set_timesteps(total_steps, device=device, **kwargs)
    scheduler.set_begin_index(begin)
    return scheduler


def _predict(
    pipe: Any,
    latents: Any,
    t: Any,
    embeds: Any,
    pooled: Any,
    guidance_scale: float,
) -> Any:
    """Guided velocity for ``latents``; ``embeds`` hold ``[neg; pos]`` rows when guided."""
    import torch

    cfg = guidance_scale > 1
    model_input = torch.cat([latents] * 2) if cfg else latents
    pred = pipe.transformer(
        hidden_states=model_input,
        timestep=t.expand(model_input.shape[0]),
        encoder_hidden_states=embeds,
        pooled_projections=pooled,
        return_dict=False,
    )[0]
    if cfg:
        uncond, text = pred.chunk(2)
        pred = uncond + guidance_scale * (text - uncond)
    return pred


def run_branches(
    pipe: Any,
    *,
    public_prompt: str,
    prompts: Sequence[str],
    common_steps: Sequence[int],
    num_inference_steps: int,
    public_guidance_scale: float,
    guidance_scale: float,
    negative_prompts: Sequence[str | None] | None = None,
    seed: int = 0,
    height: int | None = None,
    width: int | None = None,
    max_batch_size: int | None = 16,
    decode_batch_size: int = 4,
    max_sequence_length: int = 256,
    progress: Any = None,
) -> BranchResult:
    """Run the public trajectory once and a branch for every (prompt, x); decode every branch.

    Returns uint8 HxWx3 images keyed by ``(index in prompts, x)``. ``max_batch_size`` caps the
    images per transformer call (``None``: all live branches at once). ``progress``, if given,
    is called with the number of denoising steps done so far after each step.
    """
    import torch

    total = num_inference_steps
    xs = sorted(set(common_steps))
    if not prompts:
        raise ValueError("`prompts` must hold at least one prompt.")
    if not xs or xs[0] < 0 or xs[-1] >= total:
        raise ValueError(
            f"`common_steps` must be non-empty and within 0..{total - 1}, got {list(common_steps)}."
        )
    if max_batch_size is not None and max_batch_size < 1:
        raise ValueError(f"`max_batch_size` must be at least 1 or None, got {max_batch_size}.")
    negatives = [None] * len(prompts) if negative_prompts is None else list(negative_prompts)
    if len(negatives) != len(prompts):
        raise ValueError(
            f"`negative_prompts` must match `prompts` ({len(prompts)}), got {len(negatives)}."
        )
    public_cfg = public_guidance_scale > 1
    personal_cfg = guidance_scale > 1
    if not personal_cfg and any(negatives):
        raise ValueError("negative prompts need `guidance_scale` > 1.")

    t0 = time.perf_counter()
    device = pipe._execution_device
    texts = list(prompts)
    if xs[-1] > 0:
        texts.append(public_prompt)
        if public_cfg:
            texts.append("")
    if personal_cfg:
        texts += [neg or "" for neg in negatives]
    distinct = list(dict.fromkeys(texts))
    with torch.no_grad():
        embeds, _, pooled, _ = pipe.encode_prompt(
            prompt=distinct,
            prompt_2=None,
            prompt_3=None,
            device=device,
            do_classifier_free_guidance=False,
            max_sequence_length=max_sequence_length,
        )
    table = {text: (embeds[k : k + 1], pooled[k : k + 1]) for k, text in enumerate(distinct)}
    dtype = embeds.dtype
    _sync(device)
    t_encoded = time.perf_counter()

    height = height or pipe.default_sample_size * pipe.vae_scale_factor
    width = width or pipe.default_sample_size * pipe.vae_scale_factor
    generator = torch.Generator("cpu").manual_seed(int(seed))
    noise = pipe.prepare_latents(
        1, pipe.transformer.config.in_channels, height, width, dtype, device, generator, None
    )
    public_scheduler = _scheduler(pipe, total, noise.shape, device, 0)
    timesteps = public_scheduler.timesteps
    if xs[-1] > 0:
        pos = table[public_prompt]
        pub_embeds, pub_pooled = pos
        if public_cfg:
            neg = table[""]
            pub_embeds, pub_pooled = torch.cat([neg[0], pos[0]]), torch.cat([neg[1], pos[1]])

    n = len(prompts)
    branch_keys: list[tuple[int, int]] = []
    branch_latents = noise.new_zeros((0, *noise.shape[1:]))
    personal_scheduler = None
    cache: dict[tuple[int, int], tuple[Any, Any]] = {}
    public_rows = personal_rows = calls = 0
    public_time = personal_time = 0.0
    shared = noise
    with torch.no_grad():
        for i in range(total):
            if i in xs:
                # Branches with x == i fork from the public latent after i public steps.
                branch_keys += [(p, i) for p in range(n)]
                branch_latents = torch.cat([branch_latents, shared.expand(n, *shared.shape[1:])])
                cache.clear()
                if personal_scheduler is None:
                    personal_scheduler = _scheduler(pipe, total, noise.shape, device, i)
            t = timesteps[i]
            if i < xs[-1]:
                start = time.perf_counter()
                pred = _predict(pipe, shared, t, pub_embeds, pub_pooled, public_guidance_scale)
                shared = public_scheduler.step(pred, t, shared, return_dict=False)[0]
                public_rows += _rows(public_guidance_scale)
                calls += 1
                _sync(device)
                public_time += time.perf_counter() - start
            if personal_scheduler is None:
                continue
            start = time.perf_counter()
            live = len(branch_keys)
            chunk = max_batch_size or live
            preds = []
            for lo in range(0, live, chunk):
                members = tuple(p for p, _ in branch_keys[lo : lo + chunk])
                key = (lo, len(members))
                if key not in cache:
                    parts = [table[prompts[p]] for p in members]
                    if personal_cfg:
                        parts = [table[negatives[p] or ""] for p in members] + parts
                    cache[key] = (
                        torch.cat([e for e, _ in parts]),
                        torch.cat([q for _, q in parts]),
                    )
                emb, pool = cache[key]
                preds.append(
                    _predict(pipe, branch_latents[lo : lo + chunk], t, emb, pool, guidance_scale)
                )
                calls += 1
            branch_latents = personal_scheduler.step(
                torch.cat(preds), t, branch_latents, return_dict=False
            )[0]
            personal_rows += live * _rows(guidance_scale)
            _sync(device)
            personal_time += time.perf_counter() - start
            if progress is not None:
                progress(i + 1)

        start = time.perf_counter()
        images: dict[tuple[int, int], np.ndarray] = {}
        vae = pipe.vae
        for lo in range(0, len(branch_keys), decode_batch_size):
            part = branch_latents[lo : lo + decode_batch_size]
            part = part / vae.config.scaling_factor + vae.config.shift_factor
            decoded = vae.decode(part.to(vae.dtype), return_dict=False)[0]
            arr = pipe.image_processor.postprocess(decoded, output_type="np")
            for k, image in enumerate(arr):
                images[branch_keys[lo + k]] = (image * 255).round().astype(np.uint8)
        _sync(device)
        decode_time = time.perf_counter() - start
    return BranchResult(
        images=images,
        public_rows=public_rows,
        personal_rows=personal_rows,
        transformer_calls=calls,
        timings={
            "encode_s": t_encoded - t0,
            "public_s": public_time,
            "personal_s": personal_time,
            "decode_s": decode_time,
            "total_s": time.perf_counter() - t0,
        },
    )
