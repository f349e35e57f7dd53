"""``profile-gpu``: per-step transformer latency against batch rows, and the other costs of a run.

Measures, on one device: the latency of one denoising step (transformer forward, guidance
combination and scheduler step) for each batch size (warm-up, then timed steps: median and
interquartile range), peak memory per batch, VAE decode time for one image, text-encoding time for
one prompt (with its negative when guided), and the board power through NVML when available.
Writes the GPU profile JSON (schema ``his-opt/gpu-profile/1``) that ``his_opt.costs`` reads.

``arch="sd3-medium"`` builds the published SD3-Medium transformer and VAE with random weights
directly on the device in the target dtype: latency does not depend on weight values. Its text
encoders are built at their published sizes too (CLIP-L, OpenCLIP bigG, T5-XXL encoder) when
``text_encoders="published"`` (the default for that arch on CUDA), so the text-encoding time is
the real one.
"""

from __future__ import annotations

import math
import platform
import re
import statistics
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._atomic import atomic_write_json
from .._errors import InputError

__all__ = ["GpuProfileResult", "PowerMeter", "default_profile_name", "profile_gpu"]

SCHEMA = "his-opt/gpu-profile/1"
_TEXT_TOKENS = 77 + 256  # CLIP + T5 tokens of the stock SD3 pipeline (max_sequence_length 256)
_DTYPE_SHORT = {"float16": "fp16", "bfloat16": "bf16", "float32": "fp32"}


@dataclass
class GpuProfileResult:
    """The profile written (``profile``, the JSON object), where, and what went wrong."""

    profile: dict[str, Any]
    path: Path | None
    warnings: list[str] = field(default_factory=list)
    complete: bool = True
    """False when a batch size did not fit in memory and larger ones were skipped."""

    def table(self) -> str:
        """A plain-text table of the measured rows."""
        p = self.profile
        lines = [f"{'rows':>5} {'step ms':>9} {'IQR ms':>8} {'peak GiB':>9} {'W':>6}"]
        for k, rows in enumerate(p["rows"]):
            peak = p["peak_memory_gib"][k] if p.get("peak_memory_gib") else None
            power = (p.get("power_w_by_rows") or [None] * len(p["rows"]))[k]
            lines.append(
                f"{rows:>5} {p['step_latency_s'][k] * 1e3:>9.2f} "
                f"{p['step_latency_iqr_s'][k] * 1e3:>8.2f} "
                f"{'-' if peak is None else f'{peak:.2f}':>9} "
                f"{'-' if power is None else f'{power:.0f}':>6}"
            )
        return "\n".join(lines)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _device_slug(device_name: str) -> str:
    slug = _slug(device_name.replace("NVIDIA", "").replace("GeForce", ""))
    return slug or "gpu"


def default_profile_name(model: str, resolution: int, dtype: str, device_name: str) -> str:
    """``MODEL-RES-DTYPE-DEVICE``, e.g. ``sd3-medium-1024-fp16-h200``."""
    return (
        f"{_slug(model)}-{resolution}-{_DTYPE_SHORT.get(dtype, dtype)}-{_device_slug(device_name)}"
    )


class PowerMeter:
    """Mean board power over an interval, sampled in a background thread.

    ``reader`` returns the current power in watts (default: NVML for ``device_index``). If
    reading fails mid-run the meter stops, :attr:`error` says why, and :meth:`stop` returns
    ``None`` from then on.
    """

    def __init__(self, reader: Callable[[], float] | None = None, interval_s: float = 0.01) -> None:
        self.reader = reader
        self.interval_s = interval_s
        self.error: str | None = None
        self._samples: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def nvml(cls, device: Any) -> tuple[PowerMeter | None, str | None]:
        """A meter reading NVML for a torch CUDA device, or ``(None, reason)``."""
        try:
            import pynvml
        except ImportError:
            return None, "NVML not available (install nvidia-ml-py)"
        try:
            import torch

            pynvml.nvmlInit()
            handle = None
            if torch.cuda.device_count() == 1 and pynvml.nvmlDeviceGetCount() == 1:
                handle = pynvml.nvmlDeviceGetHandleByIndex(0)
            else:
                props = torch.cuda.get_device_properties(device)
                domain = getattr(props, "pci_domain_id", 0)
                bus, dev = getattr(props, "pci_bus_id", 0), getattr(props, "pci_device_id", 0)
                for pci in (
                    f"{domain:08X}:{bus:02X}:{dev:02X}.0",
                    f"{domain:04x}:{bus:02x}:{dev:02x}.0",
                ):
                    try:
                        handle = pynvml.nvmlDeviceGetHandleByPciBusId(pci)
                        break
                    except pynvml.NVMLError:
                        continue
            if handle is None:
                return None, "NVML could not match the CUDA device"
            pynvml.nvmlDeviceGetPowerUsage(handle)
        except Exception as err:  # noqa: BLE001 - any NVML failure means "no power reading"
            return None, f"NVML failed: {err}"
        return cls(lambda: pynvml.nvmlDeviceGetPowerUsage(handle) / 1000.0), None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._samples.append(float(self.reader()))
            except Exception as err:  # noqa: BLE001 - report, never crash the timing run
                self.error = f"power reading failed mid-run: {err}"
                return
            self._stop.wait(self.interval_s)

    def start(self) -> None:
        if self.reader is None or self.error is not None:
            return
        self._samples = []
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def stop(self) -> float | None:
        """Mean power (W) since :meth:`start`, or ``None`` if unavailable or failed."""
        if self._thread is None:
            return None
        self._stop.set()
        self._thread.join()
        self._thread = None
        if self.error is not None or not self._samples:
            return None
        return statistics.fmean(self._samples)


def _images(rows: int, guidance: bool) -> int:
    """Images of a step of ``rows`` rows (2 rows per guided image; 1 row is one unguided image)."""
    return rows // 2 if guidance and rows % 2 == 0 else rows


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _quartiles(values: Sequence[float]) -> tuple[float, float]:
    import numpy as np

    q1, q3 = np.percentile(np.asarray(values, dtype=float), [25, 75])
    return float(q1), float(q3)


def _published_text_encoders(pipe: Any, device: Any, dtype: Any) -> None:
    """Replace the pipeline's text encoders by random ones at SD3's published sizes."""
    import torch
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, T5Config, T5EncoderModel

    special = {
        "vocab_size": len(pipe.tokenizer),
        "max_position_embeddings": 77,
        "bos_token_id": pipe.tokenizer.bos_token_id,
        "eos_token_id": pipe.tokenizer.eos_token_id,
        "pad_token_id": pipe.tokenizer.pad_token_id,
    }
    clip_l = CLIPTextConfig(
        hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
        projection_dim=768, hidden_act="quick_gelu", **special,
    )  # fmt: skip
    clip_g = CLIPTextConfig(
        hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
        projection_dim=1280, hidden_act="gelu", **special,
    )  # fmt: skip
    t5 = T5Config(
        vocab_size=len(pipe.tokenizer_3), d_model=4096, d_ff=10240, d_kv=64, num_heads=64,
        num_layers=24, feed_forward_proj="gated-gelu", relative_attention_num_buckets=32,
        dropout_rate=0.0, pad_token_id=pipe.tokenizer_3.pad_token_id,
        eos_token_id=pipe.tokenizer_3.eos_token_id, decoder_start_token_id=0,
    )  # fmt: skip
    with torch.device(device):
        pipe.text_encoder = CLIPTextModelWithProjection._from_config(clip_l, dtype=dtype)
        pipe.text_encoder_2 = CLIPTextModelWithProjection._from_config(clip_g, dtype=dtype)
        pipe.text_encoder_3 = T5EncoderModel._from_config(t5, dtype=dtype)
    for module in (pipe.text_encoder, pipe.text_encoder_2, pipe.text_encoder_3):
        module.eval().requires_grad_(False)


def _load(
    model: str | None,
    arch: str | None,
    resolution: int,
    dtype: Any,
    device: Any,
    text_encoders: str,
) -> tuple[Any, str]:
    """The pipeline to profile, and its model label."""
    if (model is None) == (arch is None):
        raise ValueError("give exactly one of `model` (a path or hub id) and `arch`.")
    if arch is not None:
        from ..inference._arch import ARCHES, build_random_sd3_pipeline

        if arch not in ARCHES:
            raise InputError(f"unknown arch {arch!r}; choose from {', '.join(ARCHES)}")
        pipe = build_random_sd3_pipeline(arch, resolution=resolution, dtype=dtype, device=device)
        if text_encoders == "published":
            _published_text_encoders(pipe, device, dtype)
        label = arch
    else:
        from ._quality_run import load_sd3_pipeline

        pipe = load_sd3_pipeline(model, device=str(device), dtype=dtype)
        label = Path(model).name if Path(model).exists() else model.split("/")[-1]
    pipe.set_progress_bar_config(disable=True)
    return pipe, label


def _step_inputs(
    pipe: Any, images: int, rows: int, resolution: int, device: Any, dtype: Any
) -> tuple[Any, Any, Any]:
    import torch

    cfg = pipe.transformer.config
    side = resolution // pipe.vae_scale_factor
    g = torch.Generator(device="cpu").manual_seed(0)
    latents = torch.randn(images, cfg.in_channels, side, side, generator=g).to(device, dtype)
    embeds = torch.randn(rows, _TEXT_TOKENS, cfg.joint_attention_dim, generator=g).to(device, dtype)
    pooled = torch.randn(rows, cfg.pooled_projection_dim, generator=g).to(device, dtype)
    return latents, embeds, pooled


def _time_steps(
    pipe: Any, rows: int, guided: bool, resolution: int, warmup: int, repeats: int
) -> list[float]:
    """Seconds of each timed denoising step at ``rows`` transformer rows."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler

    from ._engine import _predict

    device = pipe._execution_device
    dtype = pipe.transformer.dtype
    cfg = guided and rows % 2 == 0
    images = _images(rows, guided)
    latents, embeds, pooled = _step_inputs(pipe, images, rows, resolution, device, dtype)
    scheduler = FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config)
    scheduler.set_timesteps(warmup + repeats, device=device)
    times = []
    with torch.no_grad():
        for k, t in enumerate(scheduler.timesteps):
            _sync(device)
            start = time.perf_counter()
            pred = _predict(pipe, latents, t, embeds, pooled, 7.0 if cfg else 1.0)
            latents = scheduler.step(pred, t, latents, return_dict=False)[0]
            _sync(device)
            if k >= warmup:
                times.append(time.perf_counter() - start)
    return times


def _time_call(fn: Callable[[], Any], device: Any, warmup: int, repeats: int) -> float:
    import torch

    times = []
    with torch.no_grad():
        for k in range(warmup + repeats):
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            if k >= warmup:
                times.append(time.perf_counter() - start)
    return statistics.median(times)


def _time_vae_decode(pipe: Any, resolution: int, device: Any) -> float:
    """Median seconds to decode one latent to a ``resolution`` image (1 warm-up, 3 timed)."""
    import torch

    side = resolution // pipe.vae_scale_factor
    latent = torch.randn(
        1, pipe.vae.config.latent_channels, side, side, device=device, dtype=pipe.vae.dtype
    )
    return _time_call(lambda: pipe.vae.decode(latent, return_dict=False), device, 1, 3)


def _software(device: Any) -> dict[str, Any]:
    import diffusers
    import torch
    import transformers

    info: dict[str, Any] = {
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
    }
    if device.type == "cuda":
        info["cudnn"] = torch.backends.cudnn.version()
        try:
            import pynvml

            pynvml.nvmlInit()
            driver = pynvml.nvmlSystemGetDriverVersion()
            info["driver"] = driver.decode() if isinstance(driver, bytes) else driver
        except Exception:  # noqa: BLE001 - the driver version is informative only
            pass
    return info


def profile_gpu(
    *,
    model: str | None = None,
    arch: str | None = None,
    resolution: int = 1024,
    batch_sizes: Sequence[int] = (1, 2, 4, 8, 16),
    dtype: str = "float16",
    guidance: bool = True,
    device: str | None = None,
    warmup: int = 3,
    repeats: int = 10,
    text_encoders: str = "auto",
    name: str | None = None,
    out: str | Path | None = None,
    power_reader: Callable[[], float] | None = None,
    log: Callable[[str], None] | None = None,
) -> GpuProfileResult:
    """Measure one device and write its GPU profile JSON (atomically).

    ``batch_sizes`` are images per step; with ``guidance`` an image is 2 transformer rows, and a
    1-row step (one unguided image) is measured too when 1 is among the batch sizes. A batch that
    runs out of memory ends the sweep with a warning naming the largest batch that fit; the
    profile of the batches that ran is still written. ``out`` defaults to
    ``NAME.json`` in the working directory (never the installed package); ``name`` to :func:`default_profile_name`. ``text_encoders``:
    ``"published"`` (SD3's real encoder sizes, random weights; only with ``arch``), ``"model"``
    (the pipeline's own) or ``"auto"`` (published for ``arch="sd3-medium"`` on CUDA).
    """
    import torch

    say = log or (lambda message: None)
    if dtype not in _DTYPE_SHORT:
        raise ValueError(f"`dtype` must be one of {', '.join(_DTYPE_SHORT)}, got {dtype!r}.")
    sizes = list(batch_sizes)
    if not sizes or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in sizes):
        raise ValueError(f"`batch_sizes` must be positive integers, got {sizes}.")
    if sorted(set(sizes)) != sizes:
        raise ValueError(f"`batch_sizes` must be strictly increasing, got {sizes}.")
    if warmup < 0 or repeats < 1:
        raise ValueError("`warmup` must be >= 0 and `repeats` >= 1.")
    if text_encoders not in ("auto", "published", "model"):
        raise ValueError("`text_encoders` must be 'auto', 'published' or 'model'.")
    if model is not None and text_encoders == "published":
        raise ValueError(
            "`text_encoders='published'` replaces random encoders; use it with `arch` only."
        )
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError("CUDA device requested but torch sees no GPU")
    if text_encoders == "auto":
        text_encoders = "published" if arch == "sd3-medium" and dev.type == "cuda" else "model"
    if resolution <= 0 or resolution % 16:
        raise InputError(f"resolution must be a positive multiple of 16, got {resolution}")
    torch_dtype = getattr(torch, dtype)

    t0 = time.perf_counter()
    say(f"building {'arch ' + arch if arch else model} ({dtype}, {resolution} px) on {dev}")
    pipe, label = _load(model, arch, resolution, torch_dtype, dev, text_encoders)
    if dev.type == "cpu" and dtype == "float16":
        warnings.warn(
            "float16 on CPU is slow and not representative; use float32 or bfloat16", stacklevel=2
        )
    device_name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    say(f"built in {time.perf_counter() - t0:.1f} s; device {device_name}")
    messages: list[str] = []

    def warn(message: str) -> None:
        messages.append(message)
        warnings.warn(message, UserWarning, stacklevel=3)
        say(f"warning: {message}")

    meter: PowerMeter | None
    if power_reader is not None:
        meter = PowerMeter(power_reader)
    elif dev.type == "cuda":
        meter, reason = PowerMeter.nvml(dev)
        if meter is None:
            say(f"power: {reason}; power_w will be null")
    else:
        meter = None

    # Text encoding of one prompt (and its negative with guidance), as a pipeline call does it.
    def encode() -> Any:
        return pipe.encode_prompt(
            prompt=["a photo of a golden retriever running on a beach at sunset"],
            prompt_2=None,
            prompt_3=None,
            device=dev,
            do_classifier_free_guidance=guidance,
            negative_prompt=[""] if guidance else None,
        )

    text_encode_s = _time_call(encode, dev, 1, 3)
    say(f"text encode: {text_encode_s * 1e3:.1f} ms ({text_encoders} text encoders)")

    vae_decode_s = _time_vae_decode(pipe, resolution, dev)
    say(f"VAE decode ({resolution} px): {vae_decode_s * 1e3:.1f} ms")

    row_list = sorted(
        {b * (2 if guidance else 1) for b in sizes} | ({1} if guidance and 1 in sizes else set())
    )
    measured: list[tuple[int, float, float, float | None, float | None]] = []
    complete = True
    power_failed = False
    for rows in row_list:
        if dev.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(dev)
        try:
            if meter is not None and not power_failed:
                meter.start()
            times = _time_steps(pipe, rows, guidance, resolution, warmup, repeats)
        except torch.OutOfMemoryError:
            if meter is not None:
                meter.stop()
            torch.cuda.empty_cache()
            fit = measured[-1][0] if measured else 0
            total = (
                f" ({torch.cuda.get_device_properties(dev).total_memory / 2**30:.1f} GiB)"
                if dev.type == "cuda"
                else ""
            )
            warn(
                f"a batch of {_images(rows, guidance)} images ({rows} rows) does not fit in "
                f"memory{total}; "
                + (
                    f"the largest batch that fits is {_images(fit, guidance)} images ({fit} rows); "
                    "larger batches skipped"
                    if fit
                    else "nothing fits"
                )
            )
            complete = False
            break
        power = meter.stop() if meter is not None and not power_failed else None
        if meter is not None and meter.error is not None and not power_failed:
            power_failed = True
            warn(f"{meter.error}; power_w is null")
        peak = torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else None
        q1, q3 = _quartiles(times)
        median = statistics.median(times)
        measured.append((rows, median, q3 - q1, peak, power))
        say(
            f"rows {rows:>3}: {median * 1e3:8.2f} ms/step (IQR {(q3 - q1) * 1e3:.2f} ms)"
            + (f", peak {peak:.2f} GiB" if peak is not None else "")
            + (f", {power:.0f} W" if power is not None else "")
        )
    if not measured:
        raise RuntimeError(messages[-1] if messages else "no batch size could be measured")

    powers = [m[4] for m in measured]
    have_power = not power_failed and all(p is not None for p in powers)
    total_time = sum(m[1] for m in measured)
    power_w = sum(m[1] * m[4] for m in measured) / total_time if have_power else None
    name = name or default_profile_name(label, resolution, dtype, device_name)
    memory_limit = (
        torch.cuda.get_device_properties(dev).total_memory / 2**30 if dev.type == "cuda" else None
    )
    profile: dict[str, Any] = {
        "schema": SCHEMA,
        "name": name,
        "kind": "measured",
        "device": device_name,
        "model": label,
        "resolution": resolution,
        "dtype": dtype,
        "rows": [m[0] for m in measured],
        "step_latency_s": [m[1] for m in measured],
        "step_latency_iqr_s": [m[2] for m in measured],
        "peak_memory_gib": [m[3] for m in measured] if dev.type == "cuda" else None,
        "memory_limit_gib": memory_limit,
        "power_w": power_w,
        "power_w_by_rows": [m[4] for m in measured] if have_power else None,
        "step_energy_j": [m[1] * m[4] for m in measured] if have_power else None,
        "vae_decode_s": vae_decode_s,
        "text_encode_s": text_encode_s,
        "software": _software(dev),
        "provenance": (
            f"Measured by `his-opt profile-gpu` on {device_name}: "
            + (f"SD3 architecture '{arch}' with random weights" if arch else f"model {model}")
            + f", {dtype}, {resolution}x{resolution} px, eager PyTorch; per step = transformer "
            f"forward with {_TEXT_TOKENS} text tokens + guidance combination + flow-match Euler "
            f"step; {warmup} warm-up and {repeats} timed steps per batch (median, IQR); "
            f"{'guided (2 rows per image)' if guidance else 'unguided (1 row per image)'}; "
            f"text encoders: {text_encoders}; peak memory with every pipeline module resident; "
            + (
                "power: NVML board power sampled every 10 ms while stepping"
                if have_power
                else "power: not measured"
            )
            + (f". Incomplete: {messages[0]}" if not complete else "")
            + f". Run took {time.perf_counter() - t0:.0f} s."
        ),
    }
    _validate(profile)
    path = Path(out) if out is not None else Path.cwd() / f"{name}.json"
    atomic_write_json(path, profile)
    say(f"wrote {path}")
    return GpuProfileResult(profile=profile, path=path, warnings=messages, complete=complete)


def _validate(profile: dict[str, Any]) -> None:
    """Check the profile against the reader in ``his_opt.costs`` before writing it."""
    for value in profile["step_latency_s"]:
        if not (math.isfinite(value) and value > 0):
            raise RuntimeError(f"measured a non-positive or non-finite step latency: {value}")
    from ..costs import GPUProfile

    GPUProfile.from_dict(profile, source=profile["name"])
