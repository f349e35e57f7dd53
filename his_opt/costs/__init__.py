"""Cost models: edge-server GPU profiles (measured, estimated, or the paper's cycle model),
user devices and the downlink channel."""

from ._estimate import A100_80GB, SD3_MEDIUM_CONFIG, GPUSpec, estimate_profile, sd3_step_flops
from ._link import Channel, DeviceModel, latent_bits
from ._payload import HANDOFF_MODES, downlink_bits, handoff_payload_bytes
from ._profile import (
    GPU_PROFILE_SCHEMA,
    CycleProfile,
    EdgeServer,
    GPUProfile,
    ServerProfile,
    default_profile_name,
    load_profile,
)

__all__ = [
    "A100_80GB",
    "GPU_PROFILE_SCHEMA",
    "HANDOFF_MODES",
    "SD3_MEDIUM_CONFIG",
    "Channel",
    "CycleProfile",
    "EdgeServer",
    "DeviceModel",
    "GPUProfile",
    "GPUSpec",
    "ServerProfile",
    "default_profile_name",
    "downlink_bits",
    "estimate_profile",
    "handoff_payload_bytes",
    "latent_bits",
    "load_profile",
    "sd3_step_flops",
]
