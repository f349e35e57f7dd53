"""Connecting to Ray, the optional extra ``his-opt[ray]``, for every command that spreads work
over a cluster (quality sweeps, plan execution, the solver's dual)."""

from __future__ import annotations

from typing import Any

__all__ = ["connect_ray"]


def connect_ray(address: str, *, num_cpus: int | None = None) -> Any:
    """Connect to Ray: ``"local"`` starts a private instance, anything else is ``ray.init(address)``.

    Ray is the optional extra ``his-opt[ray]``; without it this is one ``InputError`` line.
    """
    try:
        import ray
    except ImportError:
        from ._errors import InputError

        raise InputError(
            "running over Ray needs the optional extra: pip install 'his-opt[ray]'",
            field="--ray-address",
        ) from None

    if ray.is_initialized():
        return ray
    if address == "local":
        ray.init(
            num_cpus=num_cpus, include_dashboard=False, logging_level="ERROR", log_to_driver=False
        )
    else:
        ray.init(address=address, logging_level="ERROR")
    return ray
