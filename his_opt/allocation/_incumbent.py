"""The best plan found so far: every primal step offers its plans here, and only feasible plans
inside the bound's scope are kept."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ._decision import Decision
from ._evaluate import Evaluation, score_decision
from ._instance import Instance
from ._settings import TimeBudget

__all__ = ["Incumbent", "violations"]

_TOL = 1e-6


def violations(inst: Instance, dec: Decision, ev: Evaluation) -> int:
    """How many constraints ``dec`` breaks (vectorised twin of ``check_feasible`` for the
    solver's hot path; ``check_feasible`` stays the readable reference)."""
    sc = inst.scenario
    g = dec.user_group
    x_u, p_u = dec.x[g], dec.public[g]
    z = sc.total_steps - x_u - dec.y
    shared = p_u >= 0
    bad = int(np.sum((dec.y < sc.edge_steps_min) | (dec.y > sc.edge_steps_max)))
    bad += int(np.sum((z < sc.device_steps_min) | (z > sc.device_steps_max)))
    bad += int(np.sum(ev.user_delay_s > inst.deadline_s * (1 + _TOL) + _TOL))
    bad += int(np.sum(ev.user_quality < inst.min_quality - _TOL))
    bad += int(np.sum(ev.gpu_time_s > inst.budget_s * (1 + _TOL) + _TOL))
    n = np.flatnonzero(shared)
    bad += int(np.sum(inst.sim[p_u[n], n] < inst.min_share_similarity))
    used = np.unique(g)
    grp_x, grp_p = dec.x[used], dec.public[used]
    x_lo = max(1, sc.common_steps_min)
    bad += int(np.sum((grp_p >= 0) & ((grp_x < x_lo) | (grp_x > sc.common_steps_max))))
    solo = grp_p < 0
    if solo.any():
        size = np.bincount(g, minlength=dec.n_groups)[used]
        bad += int(np.sum(solo & ((grp_x != 0) | (size != 1) | (not inst.allow_solo))))
    if sc.max_groups is not None and int(np.sum(~solo)) > sc.max_groups:
        bad += 1
    return bad


class Incumbent:
    """Keeps the best feasible plan whose shared pairs lie in ``pair_mask`` (the problem the
    bound covers); reports each improvement to ``progress``."""

    def __init__(self, inst: Instance, pair_mask: np.ndarray | None, budget: TimeBudget,
                 progress: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.inst, self.pair_mask, self.budget, self.progress = inst, pair_mask, budget, progress
        self.decision: Decision | None = None
        self.objective = -math.inf
        self.source = ""

    def offer(self, dec: Decision | None, source: str) -> bool:
        """Keep ``dec`` if it is feasible, in scope and better; True when it was kept."""
        if dec is None or dec.user_group.shape != (self.inst.n_users,):
            return False
        if self.pair_mask is not None:
            p_u = dec.public[dec.user_group]
            n = np.flatnonzero(p_u >= 0)
            if not np.all(self.pair_mask[p_u[n], n]):
                return False
        ev = score_decision(self.inst, dec)
        if ev.objective <= self.objective + 1e-12 * max(1.0, abs(self.objective)):
            return False
        if violations(self.inst, dec, ev):
            return False
        self.decision, self.objective, self.source = dec, ev.objective, source
        self.note("incumbent", objective=ev.objective, source=source)
        return True

    def note(self, event: str, **kw: Any) -> None:
        if self.progress is not None:
            self.progress({"event": event, "seconds": self.budget.elapsed(), **kw})
