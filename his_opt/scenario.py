"""The scenario: objective weights, step ranges, image and latent size, and default user figures.

Defaults follow the conference paper's Table I where it publishes a figure (T = 28, x <= 13,
y in [0, 16], 128 x 128 x 16 latent at 16 bits, the UE cycle model). The paper publishes no
objective weights and no channel figures; the defaults here are this project's and say why.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
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
        """Check every field against the scenario schema (``his_opt._scenario_schema``); a bad
        value raises ``ValueError("scenario field 'F': what")``. Numbers given as ints or as
        numeric text are stored as the field's type."""
        from ._scenario_schema import checked

        try:
            values = checked(self.__dict__, source=None)
        except InputError as err:
            raise ValueError(f"scenario field '{err.field}': {err.message}") from None
        for key, value in values.items():
            object.__setattr__(self, key, value)

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
    from ._scenario_schema import checked

    data: dict[str, Any] = {}
    if path is not None:
        from ._read import read_mapping

        data = read_mapping(path, what="config")
    data = {**data, **overrides}
    variant = data.get("variant", Scenario.variant)
    if isinstance(variant, str) and variant in VARIANTS:
        for k, v in VARIANTS[variant].items():
            data.setdefault(k, v)
    return Scenario(**checked(data, source=path))
