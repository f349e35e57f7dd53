"""User-side costs: the device's per-step time and energy, and the latent's downlink."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Channel", "DeviceModel", "latent_bits"]


def latent_bits(height: int, width: int, *, channels: int = 16, bits_per_value: int = 16,
                compression: float = 1.0, vae_factor: int = 8) -> float:
    """Bits of the latent sent to the device: ``n_h * n_w * d_h * rho / tau``.

    SD3's VAE downsamples by 8 into 16 channels, so 1024 px gives the paper's 128 x 128 x 16.
    """
    if height % vae_factor or width % vae_factor:
        raise ValueError(f"height and width must be multiples of {vae_factor}.")
    if compression <= 0:
        raise ValueError("`compression` must be positive.")
    return (height // vae_factor) * (width // vae_factor) * channels * bits_per_value / compression


@dataclass(frozen=True)
class DeviceModel:
    """A user device: seconds and joules per denoising step of one image."""

    step_time_s: float
    step_energy_j: float

    def __post_init__(self) -> None:
        for key in ("step_time_s", "step_energy_j"):
            v = getattr(self, key)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"`{key}` must be finite and non-negative, got {v}.")

    @classmethod
    def from_cycles(cls, cycles_per_step: float, freq_hz: float, kappa: float) -> DeviceModel:
        """The paper's cycle model: time ``xi / f``, energy ``kappa * xi * f**2`` per step."""
        return cls(cycles_per_step / freq_hz, kappa * cycles_per_step * freq_hz**2)

    @classmethod
    def from_power(cls, step_time_s: float, power_w: float) -> DeviceModel:
        """A measured per-step time at a given power draw."""
        return cls(step_time_s, step_time_s * power_w)


@dataclass(frozen=True)
class Channel:
    """Downlink from the edge server to one user (Shannon rate, as in the paper)."""

    bandwidth_hz: float
    tx_power_w: float
    gain: float
    noise_psd_w_per_hz: float

    def __post_init__(self) -> None:
        for key in ("bandwidth_hz", "tx_power_w", "gain", "noise_psd_w_per_hz"):
            v = getattr(self, key)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"`{key}` must be finite and positive, got {v}.")

    @property
    def rate_bps(self) -> float:
        """``b * log2(1 + p g / (sigma0^2 b))``."""
        snr = self.tx_power_w * self.gain / (self.noise_psd_w_per_hz * self.bandwidth_hz)
        return self.bandwidth_hz * math.log2(1.0 + snr)

    def time_s(self, bits: float) -> float:
        return bits / self.rate_bps

    def energy_j(self, bits: float) -> float:
        return self.tx_power_w * self.time_s(bits)
