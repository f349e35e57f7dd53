"""Spread profile-quality blocks over a Ray cluster: one task per block, gathered by the driver.

Each task runs :class:`BlockRunner` on one block and returns its rows (and PNGs when images are
kept); the driver writes them to the dataset as they arrive, so resuming works as for a local run.
Workers keep their loaded models between tasks (``max_calls=0``), so a model loads once per
worker process, not once per block.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from typing import Any

from .._ray import connect_ray
from ._quality_run import BlockOutput, BlockRunner, BlockTask
from ._sweep import Sweep

__all__ = ["connect_ray", "ray_block_outputs"]

_RUNNERS: dict[str, BlockRunner] = {}


def _run_task(
    runner_kwargs: dict[str, Any], task: BlockTask, sweep: Sweep, keep_images: bool
) -> BlockOutput:
    """Body of a Ray task: reuse this worker's runner for the same settings."""
    import json

    key = json.dumps(runner_kwargs, sort_keys=True, default=str)
    runner = _RUNNERS.get(key)
    if runner is None:
        runner = BlockRunner(**runner_kwargs)
        runner.check_memory(sweep)
        _RUNNERS[key] = runner
    return runner.run(task, sweep, keep_images=keep_images)


def ray_block_outputs(
    address: str,
    tasks: Sequence[BlockTask],
    sweep: Sweep,
    runner_kwargs: dict[str, Any],
    keep_images: bool,
    gpus_per_task: float | None = None,
) -> Iterator[tuple[BlockTask, BlockOutput]]:
    """Submit one Ray task per block and yield (task, output) in completion order.

    ``gpus_per_task`` defaults to 1 when the cluster has GPUs, else 0 (tasks then run on CPU,
    with a warning).
    """
    ray = connect_ray(address)
    if gpus_per_task is None:
        gpus = ray.cluster_resources().get("GPU", 0)
        gpus_per_task = 1.0 if gpus > 0 else 0.0
        if not gpus:
            warnings.warn(
                "the Ray cluster has no GPUs; blocks run on CPU", UserWarning, stacklevel=2
            )
    kwargs = dict(runner_kwargs)
    if not gpus_per_task and kwargs.get("device") is None:
        kwargs["device"] = "cpu"
    remote = ray.remote(num_gpus=gpus_per_task, num_cpus=1, max_calls=0)(_run_task)
    sweep_ref = ray.put(sweep)
    pending = {remote.remote(kwargs, task, sweep_ref, keep_images): task for task in tasks}
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                task = pending.pop(ref)
                yield task, ray.get(ref)
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
