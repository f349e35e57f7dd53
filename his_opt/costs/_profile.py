"""Edge-server cost models: a GPU profile (per-step latency against batch rows) or the paper's cycle model.

Both expose the same interface to the solver: the latency of one denoising step for a launch of
``images`` images, the affine upper bound of that latency used in the GPU-time budget, and the
board power that turns GPU time into energy.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_write_json
from .._errors import InputError

__all__ = [
    "GPU_PROFILE_SCHEMA",
    "CycleProfile",
    "EdgeServer",
    "GPUProfile",
    "ServerProfile",
    "default_profile_name",
    "load_profile",
]

GPU_PROFILE_SCHEMA = "his-opt/gpu-profile/1"
_DEFAULT_PROFILE = "sd3-medium-1024-fp16-a100-estimate"


def default_profile_name() -> str:
    """Name of the GPU profile used when a server names none."""
    return _DEFAULT_PROFILE


def _rows_per_image(guided: bool) -> int:
    return 2 if guided else 1


@dataclass(frozen=True)
class GPUProfile:
    """Measured or estimated per-step latency of a diffusion transformer on one GPU.

    ``rows[i]`` transformer batch rows (an image under classifier-free guidance is 2 rows) take
    ``step_latency_s[i]`` seconds per denoising step. Latency between measured points is linearly
    interpolated; launches larger than the largest measured one are split into chunks.
    """

    name: str
    rows: tuple[int, ...]
    step_latency_s: tuple[float, ...]
    kind: str = "estimate"
    device: str = "unknown"
    model: str = "sd3-medium"
    resolution: int = 1024
    dtype: str = "float16"
    memory_limit_gib: float | None = None
    peak_memory_gib: tuple[float, ...] | None = None
    power_w: float | None = None
    vae_decode_s: float | None = None
    text_encode_s: float | None = None
    step_latency_iqr_s: tuple[float, ...] | None = None
    software: dict[str, Any] = field(default_factory=dict)
    provenance: str = ""

    def __post_init__(self) -> None:
        if len(self.rows) == 0 or len(self.rows) != len(self.step_latency_s):
            raise ValueError("`rows` and `step_latency_s` must be non-empty and of equal length.")
        if list(self.rows) != sorted(set(self.rows)) or self.rows[0] < 1:
            raise ValueError("`rows` must be strictly increasing positive integers.")
        if any(not (math.isfinite(t) and t > 0) for t in self.step_latency_s):
            raise ValueError("`step_latency_s` must be finite and positive.")
        if self.power_w is not None and not (math.isfinite(self.power_w) and self.power_w >= 0):
            raise ValueError("`power_w` must be finite and non-negative.")

    @property
    def max_rows(self) -> int:
        """Largest launch measured (the chunk size for larger batches)."""
        return self.rows[-1]

    def max_images(self, guided: bool = True) -> int:
        """Images per launch before chunking."""
        return max(1, self.max_rows // _rows_per_image(guided))

    def _rows_time(self, rows: float) -> float:
        r = np.asarray(self.rows, dtype=float)
        t = np.asarray(self.step_latency_s, dtype=float)
        if rows <= r[0]:
            return float(t[0])
        return float(np.interp(rows, r, t))

    def step_time(self, images: int, guided: bool = True) -> float:
        """Seconds for one denoising step of a launch of ``images`` images (chunked if large)."""
        if images <= 0:
            return 0.0
        rows = images * _rows_per_image(guided)
        full, rest = divmod(rows, self.max_rows)
        total = full * float(self.step_latency_s[-1])
        if rest:
            total += self._rows_time(rest)
        return total

    def affine_bound(self, guided: bool = True) -> tuple[float, float]:
        """``(alpha, beta)`` with ``alpha + beta * b >= step_time(b)`` for 1 <= b <= max_images.

        The tightest such line in total slack (a small LP); the budget constraint charges
        ``alpha`` per launch and ``beta`` per image-step, so it never underestimates GPU time.
        """
        from scipy.optimize import linprog

        b = np.arange(1, self.max_images(guided) + 1, dtype=float)
        t = np.array([self.step_time(int(k), guided) for k in b])
        if len(b) == 1:
            return 0.0, float(t[0])
        # minimise sum(alpha + beta*b - t) s.t. alpha + beta*b >= t, alpha >= 0, beta >= 0
        res = linprog(
            c=[len(b), b.sum()],
            A_ub=-np.column_stack([np.ones_like(b), b]),
            b_ub=-t,
            bounds=[(0, None), (0, None)],
            method="highs",
        )
        if res.status != 0:
            raise RuntimeError(f"affine bound LP failed: {res.message}")
        alpha, beta = (float(v) for v in res.x)
        # Guard against LP round-off so the bound stays an upper bound.
        slack = float(np.max(t - (alpha + beta * b)))
        return alpha + max(slack, 0.0), beta

    def energy_power_w(self, default_w: float) -> float:
        """Board power while stepping; ``default_w`` when the profile has none."""
        return float(self.power_w) if self.power_w is not None else float(default_w)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d = {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}
        return {"schema": GPU_PROFILE_SCHEMA, **d}

    def save(self, path: str | Path) -> None:
        """Write the profile JSON atomically."""
        atomic_write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str | Path = "<profile>") -> GPUProfile:
        """Build from the JSON contract; raise ``InputError`` naming ``source`` on any problem."""
        if not isinstance(data, dict):
            raise InputError("profile must be a JSON object", file=source)
        if data.get("schema") != GPU_PROFILE_SCHEMA:
            raise InputError(
                f"unknown schema {data.get('schema')!r}, expected {GPU_PROFILE_SCHEMA!r}",
                file=source,
                field="schema",
            )
        from .._validate import GPUProfileFile, validate

        validate(GPUProfileFile, data, source=source)
        known = set(cls.__dataclass_fields__)
        kwargs = {k: v for k, v in data.items() if k in known}
        for key in ("rows", "step_latency_s", "peak_memory_gib", "step_latency_iqr_s"):
            if kwargs.get(key) is not None:
                if not isinstance(kwargs[key], list):
                    raise InputError("must be a list", file=source, field=key)
                kwargs[key] = tuple(kwargs[key])
        try:
            kwargs["rows"] = tuple(int(r) for r in kwargs["rows"])
            kwargs["step_latency_s"] = tuple(float(t) for t in kwargs["step_latency_s"])
            return cls(**kwargs)
        except (TypeError, ValueError) as err:
            raise InputError(str(err), file=source) from err

    @classmethod
    def load(cls, path: str | Path) -> GPUProfile:
        """Read a profile JSON file (shared reader: a directory or bad JSON is one line)."""
        from .._read import read_json

        return cls.from_dict(read_json(path), source=path)


@dataclass(frozen=True)
class CycleProfile:
    """The conference paper's cycle model: ``cycles_per_step / freq_hz`` seconds per image-step.

    Energy per image-step is ``kappa * cycles_per_step * freq_hz**2``, i.e. a constant power of
    ``kappa * freq_hz**3`` while busy. Batching brings no gain in this model.
    """

    name: str = "paper-cycle-es"
    cycles_per_step: float = 15e6
    freq_hz: float = 2e9
    kappa: float = 1e-27
    kind: str = "cycle-model"
    provenance: str = "Zhuang et al., ICC 2025, Table I (ES: 15e6 cycles/step, 2 GHz, kappa 1e-27)"

    def __post_init__(self) -> None:
        for key in ("cycles_per_step", "freq_hz", "kappa"):
            v = getattr(self, key)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"`{key}` must be finite and positive, got {v}.")

    @property
    def power_w(self) -> float:
        return self.kappa * self.freq_hz**3

    def max_images(self, guided: bool = True) -> int:
        return 1_000_000

    def step_time(self, images: int, guided: bool = True) -> float:
        return max(images, 0) * self.cycles_per_step / self.freq_hz

    def affine_bound(self, guided: bool = True) -> tuple[float, float]:
        return 0.0, self.cycles_per_step / self.freq_hz

    def energy_power_w(self, default_w: float) -> float:
        return self.power_w

    def to_dict(self) -> dict[str, Any]:
        return {"schema": "his-opt/cycle-profile/1", **asdict(self)}


ServerProfile = GPUProfile | CycleProfile


def load_profile(name_or_path: str | Path) -> GPUProfile:
    """Load a GPU profile by file path or by name (``HIS_OPT_MODELS``/gpu, then the shipped ones)."""
    from ..resources import find_model, known_models

    p = Path(name_or_path)
    if p.suffix == ".json" or p.exists() or "/" in str(name_or_path):
        return GPUProfile.load(p)
    try:
        candidate = find_model("gpu", str(name_or_path))
    except ValueError as err:
        raise InputError(str(err), field="profile") from None
    if candidate is None:
        known = known_models("gpu")
        raise InputError(
            f"unknown GPU profile {str(name_or_path)!r}; known: {', '.join(known) or 'none'}",
            field="profile",
        )
    return GPUProfile.load(candidate)


@dataclass(frozen=True)
class EdgeServer:
    """An edge server: its cost profile, its GPU-time budget per round, its launch size."""

    name: str
    profile: GPUProfile | CycleProfile
    budget_s: float
    max_batch_images: int | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("server `name` must be non-empty.")
        if not (math.isfinite(self.budget_s) and self.budget_s >= 0):
            raise ValueError(f"server `budget_s` must be finite and non-negative, got {self.budget_s}.")
        if self.max_batch_images is not None and self.max_batch_images < 1:
            raise ValueError("server `max_batch_images` must be at least 1.")

    def batch_images(self, guided: bool = True) -> int:
        """Images per personal-phase launch: the configured cap, within what the profile measured."""
        cap = self.profile.max_images(guided)
        return cap if self.max_batch_images is None else min(cap, self.max_batch_images)
