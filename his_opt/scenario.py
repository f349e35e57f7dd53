"""The scenario: objective weights, step ranges, image and latent size, and default user figures.

Defaults follow the conference paper's Table I where it publishes a figure (T = 28, x <= 13,
y in [0, 16], 128 x 128 x 16 latent at 16 bits, the UE cycle model). The paper publishes no
objective weights and no channel figures; the defaults here are this project's and say why.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ._errors import InputError

__all__ = ["MAX_STEP_S", "VARIANTS", "Scenario", "load_scenario"]

MAX_STEP_S = 3600.0
"""Longest plausible time of one denoising step on any device (1 h): guards against typos."""

VARIANTS: dict[str, dict[str, float]] = {
    # as measured in the reference data (SD3 Medium, 1024 px, 28 steps)
    "plain": {"public_guidance_scale": 7.0, "guidance_scale": 7.0},
    "sim_npi": {"public_guidance_scale": 2.0, "guidance_scale": 8.0},
}


@dataclass(frozen=True)
class Scenario:
    """Everything the optimizer needs besides the users, the servers and the quality model.

    Objective: maximise ``w_quality * sum(Q) - w_delay * sum(delay_s) - w_energy * energy_j``.
    Default weights make the three terms comparable for SD3 Medium at 1024 px on an A100-class
    edge GPU: one user's unshared CLIP alignment (~0.32) is worth 32 points, one second of delay
    one point, and 100 J one point (an A100 step with guidance draws ~50 J, so a full 28-step
    image on the edge is ~14 points of energy). A 1-point quality drop (0.01 CLIP) thus trades
    against one second of delay or 100 J.
    """

    total_steps: int = 28
    common_steps_min: int = 0
    common_steps_max: int = 13
    edge_steps_min: int = 0
    edge_steps_max: int = 16
    device_steps_min: int = 0
    device_steps_max: int = 28
    w_quality: float = 100.0
    w_delay: float = 1.0
    w_energy: float = 0.01
    variant: str = "sim_npi"
    public_guidance_scale: float = 2.0
    guidance_scale: float = 8.0
    height: int = 1024
    width: int = 1024
    latent_channels: int = 16
    latent_bits_per_value: int = 16
    latent_compression: float = 1.0
    # What the hand-off file sends (his_opt.costs._payload): "latent" (the device encodes its
    # prompts) or "embeddings" (for devices without text encoders, ~11x the bytes at SD3 sizes).
    handoff: str = "latent"
    # Downlink defaults (the paper's channel figures are not published): 10 MHz, 1 W,
    # gain 1e-9 (about 90 dB path loss), thermal noise -174 dBm/Hz.
    bandwidth_hz: float = 10e6
    tx_power_w: float = 1.0
    channel_gain: float = 1e-9
    noise_psd_w_per_hz: float = 3.98e-21
    # Device defaults: a laptop-class GPU running SD3 Medium at 1024 px (~1.5 s/step, 15 W).
    device_step_s: float = 1.5
    device_power_w: float = 15.0
    # Paper's UE cycle model, used when device_model == "cycles".
    device_model: str = "measured"
    device_cycles_per_step: float = 14e6
    device_freq_min_hz: float = 1.4e9
    device_freq_max_hz: float = 1.6e9
    device_kappa: float = 1e-27
    # Server defaults when no servers file is given.
    server_profile: str = "sd3-medium-1024-fp16-a100-estimate"
    server_budget_s: float = 60.0
    server_max_batch_images: int | None = None
    default_power_w: float = 300.0
    max_groups: int | None = None
    min_share_similarity: float | None = None
    """Lowest prompt similarity at which a user may share a public prompt; None: the lowest
    similarity the quality model was fitted on (below it HIQM only extrapolates)."""
    notes: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        def fail(key: str, why: str) -> None:
            raise ValueError(f"scenario field '{key}': {why}")

        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and not math.isfinite(v):
                fail(f.name, f"must be finite, got {v}")
            if (isinstance(v, (int, float)) and not isinstance(v, bool) and v < 0
                    and f.name != "min_share_similarity"):
                fail(f.name, f"must be non-negative, got {v}")
        if self.total_steps < 1:
            fail("total_steps", "must be at least 1")
        for lo, hi in (
            ("common_steps_min", "common_steps_max"),
            ("edge_steps_min", "edge_steps_max"),
            ("device_steps_min", "device_steps_max"),
        ):
            if getattr(self, lo) > getattr(self, hi):
                fail(lo, f"exceeds {hi}")
        if self.common_steps_max > self.total_steps - 1:
            fail("common_steps_max", f"must be at most total_steps - 1 = {self.total_steps - 1}")
        if self.variant not in VARIANTS and self.variant != "custom":
            fail("variant", f"unknown {self.variant!r}; use one of {sorted(VARIANTS)} or 'custom'")
        if self.handoff not in ("latent", "embeddings"):
            fail("handoff", f"must be 'latent' or 'embeddings', got {self.handoff!r}")
        if self.device_model not in ("measured", "cycles"):
            fail("device_model", "must be 'measured' or 'cycles'")
        if self.device_freq_min_hz > self.device_freq_max_hz:
            fail("device_freq_min_hz", "exceeds device_freq_max_hz")
        for side in ("height", "width"):
            if getattr(self, side) < 16 or getattr(self, side) % 16:
                fail(side, f"must be a positive multiple of 16 (the latent patch), got {getattr(self, side)}")
        if self.device_step_s > MAX_STEP_S:
            fail("device_step_s", f"must be at most {MAX_STEP_S:g} s per step, got {self.device_step_s:g}")
        if self.min_share_similarity is not None and not -1 <= self.min_share_similarity <= 1:
            fail("min_share_similarity", "must lie in [-1, 1] (a cosine similarity)")
        if self.max_groups is not None and self.max_groups < 1:
            fail("max_groups", "must be at least 1")

    @property
    def common_step_values(self) -> range:
        return range(self.common_steps_min, self.common_steps_max + 1)

    @property
    def public_guided(self) -> bool:
        """Classifier-free guidance in the public phase (off at scale <= 1: half the rows)."""
        return self.public_guidance_scale > 1.0

    @property
    def personal_guided(self) -> bool:
        return self.guidance_scale > 1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_(self, **changes: Any) -> Scenario:
        return replace(self, **changes)


def load_scenario(path: str | Path | None = None, **overrides: Any) -> Scenario:
    """Read a YAML or TOML scenario file (any subset of ``Scenario`` fields).

    ``variant: plain|sim_npi`` sets both guidance scales unless they are given explicitly.
    Raises ``InputError`` naming the file and field on any problem.
    """
    data: dict[str, Any] = {}
    source: str | Path = path if path is not None else "<scenario>"
    if path is not None:
        from ._read import read_mapping

        data = read_mapping(path, what="config")
    data = {**data, **overrides}
    known = {f.name: f for f in fields(Scenario)}
    for key in data:
        if key not in known:
            raise InputError(f"unknown scenario field (known: {', '.join(sorted(known))})",
                             file=source, field=key)
    variant = data.get("variant", Scenario.variant)
    if variant in VARIANTS:
        for k, v in VARIANTS[variant].items():
            data.setdefault(k, v)
    defaults = Scenario()
    for key, value in list(data.items()):
        expected = type(getattr(defaults, key))
        if key in ("server_max_batch_images", "max_groups"):
            expected = int if value is not None else type(None)
        if key == "min_share_similarity":
            expected = float if value is not None else type(None)
        if key == "notes":
            if not isinstance(value, dict):
                raise InputError("must be a mapping", file=source, field=key)
            continue
        if expected is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise InputError(f"must be an integer, got {value!r}", file=source, field=key)
        elif expected is float:
            if isinstance(value, str):
                # PyYAML (YAML 1.1) reads "1e-27" as a string; accept plain numeric text.
                with contextlib.suppress(ValueError):
                    value = float(value)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InputError(f"must be a number, got {value!r}", file=source, field=key)
            data[key] = float(value)
        elif expected is str and not isinstance(value, str):
            raise InputError(f"must be a string, got {value!r}", file=source, field=key)
    try:
        return Scenario(**data)
    except ValueError as err:
        field_name = str(err).split("'")[1] if "'" in str(err) else None
        raise InputError(str(err).split(": ", 1)[-1], file=source, field=field_name) from err
