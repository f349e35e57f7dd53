"""The canonical users table's columns: written by ``his_opt.io.load_users``, read by
``his_opt.allocation.build_instance`` (one list, so the two layers cannot drift apart)."""

from __future__ import annotations

__all__ = ["USER_TABLE_COLUMNS"]

USER_TABLE_COLUMNS: tuple[str, ...] = (
    "user_id",
    "prompt",
    "negative_prompt",
    "device_step_s",
    "device_step_energy_j",
    "bandwidth_hz",
    "tx_power_w",
    "channel_gain",
    "deadline_s",
    "min_quality",
    "subject",
)
