"""Execute a plan on Ray: one actor per edge server, each running its server's groups.

Each actor loads the pipeline once (on its own GPU when the cluster has GPUs, on a CPU worker
otherwise) and runs its groups in plan order with its server's batch cap; the driver writes every
image, hand-off file and the manifest as groups finish, so a killed run resumes like a local one.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from .._errors import InputError
from ._executor import (
    GenerateResult,
    GroupOutput,
    Plan,
    _new_manifest,
    _Recorder,
    _run_identity,
    check_manifest,
    execute_group,
    pending_users,
)

__all__ = ["ServerWorker", "run_plan_ray"]


class ServerWorker:
    """Body of one server's Ray actor: a pipeline loaded once, groups run on request."""

    def __init__(self, model: str, dtype: str, device: str | None) -> None:
        import os
        import platform

        import torch

        from ._pipeline import HybridSD3Pipeline

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.pipe = HybridSD3Pipeline.from_pretrained(model, dtype=getattr(torch, dtype))
        self.pipe.to(device)
        self.pipe.set_progress_bar_config(disable=True)
        self.info = {
            "worker": f"{platform.node()}:{os.getpid()}",
            "device": str(self.pipe._execution_device),
        }

    def run(
        self,
        plan: Plan,
        group_id: str,
        pending: list[str],
        height: int,
        width: int,
        max_batch_size: int | None,
        keep_handoffs: bool,
    ) -> tuple[GroupOutput, dict[str, Any]]:
        group = next(g for g in plan.groups if g.group_id == group_id)
        output = execute_group(
            self.pipe,
            plan,
            group,
            pending,
            height=height,
            width=width,
            max_batch_size=max_batch_size,
            keep_handoffs=keep_handoffs,
        )
        return output, self.info


def run_plan_ray(
    plan: Plan,
    out_dir: str | Path,
    *,
    address: str,
    model: str,
    dtype: str | None,
    height: int,
    width: int,
    device: str | None = None,
    max_batch_size: int | None = 16,
    handoff_dir: str | Path | None = None,
    gpus_per_server: float | None = None,
) -> GenerateResult:
    """Run ``plan`` with one Ray actor per server that has work left.

    ``gpus_per_server`` defaults to 1 when the cluster has GPUs, else 0 (CPU actors, with a
    warning); ``dtype`` defaults to float16 on GPUs, float32 on CPU. Images equal a local
    run's: each group's noise comes from its seed.
    """
    from .._ray import connect_ray

    ray = None
    if dtype is None:
        ray = connect_ray(address)
        dtype = "float16" if ray.cluster_resources().get("GPU", 0) > 0 else "float32"
    out_dir = Path(out_dir)
    manifest = check_manifest(out_dir, plan, model=model, height=height, width=width, dtype=dtype)
    manifest = manifest or _new_manifest(
        plan, _run_identity(plan, model, height, width, dtype), f"ray:{address}"
    )
    recorder = _Recorder(
        plan, out_dir, manifest, None if handoff_dir is None else Path(handoff_dir)
    )
    pending = pending_users(plan, out_dir, manifest)
    for group in plan.groups:
        recorder.result.skipped += [u for u in group.members if u not in pending[group.group_id]]
    work = {
        server: [g for g in groups if pending[g.group_id]]
        for server, groups in plan.server_groups().items()
    }
    work = {server: groups for server, groups in work.items() if groups}
    if not work:
        return recorder.result

    ray = ray or connect_ray(address)
    if gpus_per_server is None:
        gpus_per_server = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
        if not gpus_per_server:
            warnings.warn(
                "the Ray cluster has no GPUs; servers run on CPU", UserWarning, stacklevel=2
            )
    actor_class = ray.remote(num_gpus=gpus_per_server, num_cpus=1)(ServerWorker)
    actor_device = device if gpus_per_server or device else "cpu"
    actors = {server: actor_class.remote(model, dtype, actor_device) for server in work}
    plan_ref = ray.put(plan)
    refs = {}
    for server, groups in work.items():
        for group in groups:
            ref = actors[server].run.remote(
                plan_ref,
                group.group_id,
                pending[group.group_id],
                height,
                width,
                max_batch_size,
                handoff_dir is not None,
            )
            refs[ref] = group
    try:
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1)
            for ref in ready:
                group = refs.pop(ref)
                try:
                    output, info = ray.get(ref)
                except ray.exceptions.RayError as err:
                    cause = getattr(err, "cause", None)
                    cause = cause if isinstance(cause, ValueError) else None
                    if cause is None:
                        raise
                    raise InputError(str(cause).splitlines()[0], file=plan.path) from None
                recorder.record(group, output, info)
    finally:
        for actor in actors.values():
            ray.kill(actor)
    return recorder.result
