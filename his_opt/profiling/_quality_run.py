"""``profile-quality``: run a sweep with the hybrid engine, score every image, write the dataset.

Per block (public prompt, seed, variant) the public trajectory runs once and every (personal
prompt, x) branch continues from it (see ``_engine``). Each image gets its CLIP alignment with its
personal prompt, its CLIP image similarity with the unshared (x = 0) image of the same personal
prompt, and its BRISQUE score; the block's rows go to the dataset in one append, so a killed run
resumes with nothing lost or duplicated.
"""

from __future__ import annotations

import io
import math
import os
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_write_bytes
from .._errors import InputError
from ._dataset import QualityDataset, row_key
from ._engine import hybrid_rows, per_image_rows, run_branches, sweep_rows
from ._sweep import Block, Sweep

__all__ = [
    "BlockOutput",
    "BlockRunner",
    "BlockTask",
    "QualityRunReport",
    "block_rows_estimate",
    "largest_batch_that_fits",
    "load_sd3_pipeline",
    "plan_tasks",
    "run_quality_sweep",
]


@dataclass(frozen=True)
class BlockTask:
    """A block and the personal prompts (indices into ``block.personal``) still to compute."""

    block: Block
    prompts: tuple[int, ...]
    missing: frozenset[tuple[int, int]]
    """(prompt index, x) pairs whose rows are not in the dataset yet."""


@dataclass
class BlockOutput:
    """What a block run returns: dataset rows (similarity not yet filled) and optional PNGs."""

    rows: list[dict[str, Any]]
    images: dict[str, bytes] = field(default_factory=dict)
    engine_rows: int = 0


@dataclass
class QualityRunReport:
    """Outcome of :func:`run_quality_sweep`."""

    dataset: Path
    images_written: int
    images_already_done: int
    blocks_run: int
    blocks_skipped: int
    engine_rows: int
    per_image_rows: int
    per_call_rows: int
    elapsed_s: float

    @property
    def rows_saved_fraction(self) -> float:
        """Share of the per-image approach's transformer rows the engine did not compute."""
        return 0.0 if self.per_image_rows == 0 else 1.0 - self.engine_rows / self.per_image_rows

    def summary(self) -> str:
        lines = [
            f"dataset: {self.dataset}",
            f"images written: {self.images_written} (already there: {self.images_already_done}); "
            f"blocks run: {self.blocks_run}, skipped: {self.blocks_skipped}; {self.elapsed_s:.1f} s",
        ]
        if self.per_image_rows:
            lines.append(
                f"transformer rows: {self.engine_rows} with the hybrid sweep engine vs "
                f"{self.per_image_rows} computing each image on its own "
                f"({self.per_image_rows / max(self.engine_rows, 1):.2f}x fewer, "
                f"{self.rows_saved_fraction:.1%} saved); one hybrid pipeline call per x would "
                f"compute {self.per_call_rows}"
            )
        return "\n".join(lines)


def _similarity_bin(value: float) -> float:
    return round(math.floor(value * 10 + 0.5) / 10, 1)


def plan_tasks(
    sweep: Sweep, done: set[tuple[str, str, int, str, int]]
) -> tuple[list[BlockTask], int]:
    """The blocks with rows still missing, and how many blocks are already complete."""
    tasks: list[BlockTask] = []
    skipped = 0
    for block in sweep.blocks():
        missing = set()
        for p, personal in enumerate(block.personal):
            for x in sweep.common_steps:
                key = (block.public_prompt, personal.prompt, block.seed, block.variant.name, x)
                if key not in done:
                    missing.add((p, x))
        if not missing:
            skipped += 1
            continue
        prompts = tuple(sorted({p for p, _ in missing}))
        tasks.append(BlockTask(block, prompts, frozenset(missing)))
    return tasks, skipped


def _resolve_dtype(dtype: Any, device: str) -> Any:
    import torch

    if dtype is None:
        return torch.float16 if device.startswith("cuda") else torch.float32
    if isinstance(dtype, str):
        if dtype not in ("float16", "bfloat16", "float32"):
            raise ValueError(f"`dtype` must be float16, bfloat16 or float32, got {dtype!r}.")
        return getattr(torch, dtype)
    return dtype


def _device_name(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return "cpu"


def load_sd3_pipeline(model: str, *, device: str, dtype: Any) -> Any:
    """Load an SD3 pipeline folder or hub id onto ``device``; ``InputError`` if it cannot load."""
    from diffusers import StableDiffusion3Pipeline

    from ..quality._source import check_model_source, load_error

    source = check_model_source(model, "SD3 model")
    try:
        pipe = StableDiffusion3Pipeline.from_pretrained(source, dtype=dtype)
    except (OSError, ValueError, KeyError) as err:
        raise load_error(source, "SD3 model", err) from err
    for name in ("transformer", "vae", "text_encoder", "text_encoder_2", "text_encoder_3"):
        module = getattr(pipe, name, None)
        if module is not None:
            module.eval()
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def largest_batch_that_fits(
    pipe: Any,
    max_batch_size: int,
    guided: bool,
    height: int | None = None,
    width: int | None = None,
) -> int:
    """Largest images-per-call <= ``max_batch_size`` whose transformer forward fits in memory.

    Probes one forward pass at ``max_batch_size`` and halves on CUDA out-of-memory; returns
    ``max_batch_size`` itself when it fits (and on CPU, which is not probed).
    """
    import torch

    device = pipe._execution_device
    if device.type != "cuda":
        return max_batch_size
    cfg = pipe.transformer.config
    h = (height or pipe.default_sample_size * pipe.vae_scale_factor) // pipe.vae_scale_factor
    w = (width or pipe.default_sample_size * pipe.vae_scale_factor) // pipe.vae_scale_factor
    batch = max_batch_size
    while batch >= 1:
        rows = batch * (2 if guided else 1)
        try:
            with torch.no_grad():
                dtype = pipe.transformer.dtype
                pipe.transformer(
                    hidden_states=torch.randn(
                        rows, cfg.in_channels, h, w, device=device, dtype=dtype
                    ),
                    timestep=torch.full((rows,), 500.0, device=device, dtype=dtype),
                    encoder_hidden_states=torch.randn(
                        rows, 333, cfg.joint_attention_dim, device=device, dtype=dtype
                    ),
                    pooled_projections=torch.randn(
                        rows, cfg.pooled_projection_dim, device=device, dtype=dtype
                    ),
                    return_dict=False,
                )
            torch.cuda.synchronize(device)
            return batch
        except torch.OutOfMemoryError:
            torch.cuda.empty_cache()
            batch //= 2
    return 0


class BlockRunner:
    """Loaded models and settings; :meth:`run` computes and scores one block's branches."""

    def __init__(
        self,
        *,
        model: str,
        clip_model: str,
        device: str | None = None,
        dtype: Any = None,
        max_batch_size: int | None = 16,
        decode_batch_size: int = 4,
        brisque: bool = True,
        brisque_jobs: int = 1,
    ) -> None:
        import torch

        from ..quality import BrisqueScorer, ClipScorer

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = _resolve_dtype(dtype, self.device)
        self.model = model
        self.max_batch_size = max_batch_size
        self.decode_batch_size = decode_batch_size
        self.pipe = load_sd3_pipeline(model, device=self.device, dtype=self.dtype)
        self.clip = ClipScorer(clip_model, device=self.device)
        self.brisque = BrisqueScorer(n_jobs=brisque_jobs) if brisque else None
        self.device_name = _device_name(self.device)
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def close(self) -> None:
        if self.brisque is not None:
            self.brisque.close()

    def check_memory(self, sweep: Sweep) -> None:
        """Fail before any work if ``max_batch_size`` images per call do not fit on the GPU."""
        if self.max_batch_size is None:
            return
        guided = any(v.guidance_scale > 1 or v.public_guidance_scale > 1 for v in sweep.variants)
        fits = largest_batch_that_fits(
            self.pipe, self.max_batch_size, guided, sweep.height, sweep.width
        )
        if fits < self.max_batch_size:
            import torch

            total = (
                torch.cuda.get_device_properties(self.pipe._execution_device).total_memory / 2**30
            )
            hint = f"the largest that fits is {fits}" if fits else "not even 1 image fits"
            raise InputError(
                f"max_batch_size {self.max_batch_size} images does not fit in GPU memory "
                f"({total:.1f} GiB) at {sweep.height}x{sweep.width}; {hint} (use --max-batch-size {fits})"
            )

    def run(
        self,
        task: BlockTask,
        sweep: Sweep,
        *,
        keep_images: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> BlockOutput:
        """Generate and score the missing branches of one block."""
        import torch

        block = task.block
        variant = block.variant
        personal = [block.personal[p] for p in task.prompts]
        xs = sorted(set(sweep.common_steps) | {0})
        negatives = [p.negative_prompt if variant.negative_prompts else None for p in personal]
        try:
            result = run_branches(
                self.pipe,
                public_prompt=block.public_prompt,
                prompts=[p.prompt for p in personal],
                negative_prompts=negatives,
                common_steps=xs,
                num_inference_steps=sweep.total_steps,
                public_guidance_scale=variant.public_guidance_scale,
                guidance_scale=variant.guidance_scale,
                seed=block.seed,
                height=sweep.height,
                width=sweep.width,
                max_batch_size=self.max_batch_size,
                decode_batch_size=self.decode_batch_size,
                progress=progress,
            )
        except torch.OutOfMemoryError as err:
            raise RuntimeError(
                f"out of GPU memory in block {block.block_id} ({len(personal)} prompts x {len(xs)} "
                f"common steps, max_batch_size {self.max_batch_size}, decode batch "
                f"{self.decode_batch_size}); nothing of this block was written; lower "
                "--max-batch-size or --decode-batch-size"
            ) from err

        t_metrics = time.perf_counter()
        keys = [(i, x) for i in range(len(personal)) for x in xs]
        images = [result.images[k] for k in keys]
        image_emb = self.clip.image_embeddings(images)
        text_emb = self.clip.text_embeddings([p.prompt for p in personal])
        index = {k: j for j, k in enumerate(keys)}
        wanted = [
            (i, x)
            for i, x in keys
            if (task.prompts[i], x) in task.missing and x in sweep.common_steps
        ]
        brisque = (
            dict(zip(wanted, self.brisque.scores([result.images[k] for k in wanted]), strict=True))
            if self.brisque is not None
            else {}
        )
        metrics_s = time.perf_counter() - t_metrics

        n_images = len(keys)
        gen_s = result.timings["total_s"]
        rows: list[dict[str, Any]] = []
        pngs: dict[str, bytes] = {}
        for i, x in wanted:
            p = personal[i]
            emb = image_emb[index[(i, x)]]
            image_path = ""
            if keep_images:
                image_path = f"{block.block_id}/{_prompt_slug(p.prompt)}_x{x:02d}.png"
                pngs[image_path] = _png(result.images[(i, x)])
            rows.append(
                {
                    "public_prompt": block.public_prompt,
                    "personal_prompt": p.prompt,
                    "seed": block.seed,
                    "variant": variant.name,
                    "common_steps": x,
                    "negative_prompt": negatives[i],
                    "similarity": None,
                    "similarity_bin": None,
                    "total_steps": sweep.total_steps,
                    "public_guidance_scale": variant.public_guidance_scale,
                    "guidance_scale": variant.guidance_scale,
                    "height": sweep.height,
                    "width": sweep.width,
                    "model": self.model,
                    "dtype": str(self.dtype).removeprefix("torch."),
                    "clip_alignment": float(emb @ text_emb[i]),
                    "clip_image_similarity": float(emb @ image_emb[index[(i, 0)]]),
                    "brisque": float(brisque[(i, x)]) if brisque else None,
                    "image_rows": per_image_rows(
                        x, sweep.total_steps, variant.public_guidance_scale, variant.guidance_scale
                    ),
                    "block_id": block.block_id,
                    "block_images": n_images,
                    "block_rows": result.transformer_rows,
                    "block_encode_s": result.timings["encode_s"],
                    "block_public_s": result.timings["public_s"],
                    "block_personal_s": result.timings["personal_s"],
                    "block_decode_s": result.timings["decode_s"],
                    "block_metrics_s": metrics_s,
                    "image_s": gen_s / n_images,
                    "image_path": image_path,
                    "device": self.device_name,
                    "worker": self.worker,
                }
            )
        return BlockOutput(rows=rows, images=pngs, engine_rows=result.transformer_rows)


def _prompt_slug(prompt: str) -> str:
    import hashlib

    return hashlib.sha1(prompt.encode("utf-8")).hexdigest()[:10]


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def _local_outputs(
    tasks: Sequence[BlockTask],
    sweep: Sweep,
    runner_kwargs: dict[str, Any],
    keep_images: bool,
    bar: Any,
) -> Iterator[tuple[BlockTask, BlockOutput]]:
    runner = BlockRunner(**runner_kwargs)
    try:
        runner.check_memory(sweep)
        for task in tasks:
            n_images = len(task.missing)
            done_before = bar.n

            def step(i: int, done_before: float = done_before, n_images: int = n_images) -> None:
                # Spread the block's images over its denoising steps so the ETA moves.
                bar.n = done_before + n_images * 0.9 * i / sweep.total_steps
                bar.refresh()

            out = runner.run(task, sweep, keep_images=keep_images, progress=step)
            bar.n = done_before
            yield task, out
    finally:
        runner.close()


def run_quality_sweep(
    sweep: Sweep,
    out: str | Path,
    *,
    model: str | None = None,
    clip_model: str | None = None,
    similarity_model: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    max_batch_size: int | None = None,
    decode_batch_size: int = 4,
    save_images: str | Path | None = None,
    brisque: bool = True,
    brisque_jobs: int = 1,
    overwrite: bool = False,
    ray_address: str | None = None,
    ray_gpus_per_task: float | None = None,
    progress: bool = True,
) -> QualityRunReport:
    """Run (or resume) ``sweep`` and append its rows to the CSV ``out``.

    ``model``, ``clip_model``, ``similarity_model``, ``dtype`` and ``max_batch_size`` override the
    sweep file's. With ``ray_address`` (``"local"``, ``"auto"`` or an address) each block is one
    Ray task; results are written by this process as they arrive.
    """
    from tqdm.auto import tqdm

    from ..quality import DEFAULT_CLIP_MODEL
    from ..similarity import PromptSimilarity

    t0 = time.perf_counter()
    model = model or sweep.model
    if not model:
        raise InputError(
            "no SD3 model: give --model or set 'model' in the sweep", file=sweep.source
        )
    clip_model = clip_model or sweep.clip_model or DEFAULT_CLIP_MODEL
    similarity_model = similarity_model or sweep.similarity_model
    batch = max_batch_size if max_batch_size is not None else (sweep.max_batch_size or 16)
    if batch < 1:
        raise ValueError(f"`max_batch_size` must be at least 1, got {batch}.")
    if decode_batch_size < 1:
        raise ValueError(f"`decode_batch_size` must be at least 1, got {decode_batch_size}.")
    runner_kwargs = {
        "model": model,
        "clip_model": clip_model,
        "device": device,
        "dtype": dtype or sweep.dtype,
        "max_batch_size": batch,
        "decode_batch_size": decode_batch_size,
        "brisque": brisque,
        "brisque_jobs": brisque_jobs,
    }
    _resolve_dtype(runner_kwargs["dtype"], "cpu")  # validate early
    from ..quality._source import check_model_source

    check_model_source(model, "SD3 model")
    check_model_source(clip_model, "CLIP model")

    dataset = QualityDataset(out, sweep)
    done = set() if overwrite else dataset.read()
    tasks, skipped = plan_tasks(sweep, done)
    already = sum(1 for k in done if _in_sweep(k, sweep))

    pairs = sweep.prompt_pairs()
    sims = PromptSimilarity(similarity_model).pairwise([a for a, _ in pairs], [b for _, b in pairs])
    similarity = {pair: float(s) for pair, s in zip(pairs, sims, strict=True)}
    if overwrite or not dataset.path.exists():
        dataset.create()

    images_dir = None if save_images is None else Path(save_images)
    written = 0
    engine_rows = per_image = per_call = 0
    total_missing = sum(len(t.missing) for t in tasks)
    bar = tqdm(
        total=total_missing, unit="img", desc=f"profile-quality {sweep.name}", disable=not progress
    )
    try:
        if not tasks:
            outputs = iter(())
        elif ray_address:
            from ._ray import ray_block_outputs

            outputs = ray_block_outputs(
                ray_address, tasks, sweep, runner_kwargs, images_dir is not None, ray_gpus_per_task
            )
        else:
            outputs = _local_outputs(tasks, sweep, runner_kwargs, images_dir is not None, bar)
        for task, output in outputs:
            for row in output.rows:
                s = similarity[(row["public_prompt"], row["personal_prompt"])]
                row["similarity"] = s
                row["similarity_bin"] = _similarity_bin(s)
            if images_dir is not None:
                for rel, data in output.images.items():
                    atomic_write_bytes(images_dir / rel, data)
                for row in output.rows:
                    row["image_path"] = str(images_dir / row["image_path"])
            rows = [r for r in output.rows if row_key(r) not in dataset.done]
            written += dataset.append(rows)
            engine_rows += output.engine_rows
            per_image += sum(int(r["image_rows"]) for r in rows)
            per_call += _per_call_rows(task, sweep)
            bar.update(len(task.missing))
    finally:
        bar.close()
    return QualityRunReport(
        dataset=Path(out),
        images_written=written,
        images_already_done=already,
        blocks_run=len(tasks),
        blocks_skipped=skipped,
        engine_rows=engine_rows,
        per_image_rows=per_image,
        per_call_rows=per_call,
        elapsed_s=time.perf_counter() - t0,
    )


def _per_call_rows(task: BlockTask, sweep: Sweep) -> int:
    """Rows if each x of the task were one ``HybridSD3Pipeline`` call over its prompts."""
    v = task.block.variant
    xs = sorted(set(sweep.common_steps) | {0})
    return sum(
        hybrid_rows(
            len(task.prompts), x, sweep.total_steps, v.public_guidance_scale, v.guidance_scale
        )
        for x in xs
    )


def _in_sweep(key: tuple[str, str, int, str, int], sweep: Sweep) -> bool:
    return key[4] in sweep.common_steps and key[2] in sweep.seeds


def block_rows_estimate(sweep: Sweep) -> tuple[int, int]:
    """(engine rows, per-image rows) of the whole sweep, computed without running it."""
    engine = per_image = 0
    xs = sorted(set(sweep.common_steps) | {0})
    for block in sweep.blocks():
        v = block.variant
        n = len(block.personal)
        engine += sweep_rows(n, xs, sweep.total_steps, v.public_guidance_scale, v.guidance_scale)
        per_image += n * sum(
            per_image_rows(x, sweep.total_steps, v.public_guidance_scale, v.guidance_scale)
            for x in sweep.common_steps
        )
    return engine, per_image
