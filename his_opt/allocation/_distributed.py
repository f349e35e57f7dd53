"""Spreading the Lagrangian dual's price evaluations over a Ray cluster.

Each evaluation of the dual at one vector of server prices is independent of the others and
returns a valid bound, so the line search's grid of prices runs as Ray tasks (the dual's data
shipped once with ``ray.put``) and the driver keeps the smallest: the bound guarantee is the
same as in one process, only the wall time changes. Ray is the optional extra ``his-opt[ray]``.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from ._settings import SolverSettings

__all__ = ["RayPriceEvaluator"]


def _evaluate(dual: Any, z: np.ndarray, n_classes: int, with_mu: bool, target: float,
              settings: SolverSettings, seconds: float) -> tuple[float, np.ndarray]:
    """Body of one Ray task: the dual at prices ``z`` within ``seconds``."""
    lam, mu = z[:n_classes], (z[-1] if with_mu else 0.0)
    val, g_lam, g_mu = dual.evaluate(lam, mu, target=target, settings=settings,
                                     deadline=time.perf_counter() + seconds)
    return val, np.concatenate([g_lam, [g_mu] if with_mu else []])


class RayPriceEvaluator:
    """Evaluates the dual at many price vectors at once on a Ray cluster (``address``:
    ``"local"`` starts a private instance)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._ray: Any = None
        self._ref: Any = None
        self._task: Any = None
        self.tasks = 0

    def bind(self, dual: Any) -> None:
        """Ship ``dual``'s data to the cluster once."""
        from .._ray import connect_ray

        self._ray = connect_ray(self.address)
        self._ref = self._ray.put(dual)
        self._task = self._ray.remote(_evaluate)

    @property
    def workers(self) -> int:
        return int(self._ray.cluster_resources().get("CPU", 1)) if self._ray else 0

    def map(self, points: list[np.ndarray], *, n_classes: int, with_mu: bool, target: float,
            settings: SolverSettings, deadline: float) -> list[tuple[float, np.ndarray]]:
        """The dual at each of ``points``; an evaluation not back by ``deadline`` counts as
        no bound (``inf``)."""
        seconds = max(deadline - time.perf_counter(), 0.05)
        refs = [self._task.remote(self._ref, z, n_classes, with_mu, target, settings, seconds)
                for z in points]
        self.tasks += len(refs)
        ready, pending = self._ray.wait(refs, num_returns=len(refs),
                                        timeout=max(deadline - time.perf_counter(), 0.0))
        for ref in pending:
            self._ray.cancel(ref, force=True)
        done = set(ready)
        out = []
        for ref in refs:
            out.append(self._ray.get(ref) if ref in done else (math.inf, np.zeros(0)))
        return out
