"""The compact MILP written in cvxpy (vectorised, ``solver=cp.HIGHS``): the same sparse model as
the ``highspy`` backend, for users who want the formulation as a cvxpy ``Problem``."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from ._highs import HighsOutcome
from ._milp import CompactModel

__all__ = ["cvxpy_problem", "solve_cvxpy"]


def cvxpy_problem(model: CompactModel) -> tuple[Any, Any, Any, np.ndarray, np.ndarray]:
    """``(problem, x_int, x_cont, int_index, cont_index)`` for ``model`` (minimises the negated
    objective without its constant ``model.offset``)."""
    import cvxpy as cp

    integ = model.integrality.astype(bool)
    ii, ci = np.flatnonzero(integ), np.flatnonzero(~integ)
    A = model.A.tocsc()
    xi = cp.Variable(len(ii), integer=True)
    xc = cp.Variable(len(ci))
    parts = []
    if len(ii):
        parts.append(A[:, ii] @ xi)
    if len(ci):
        parts.append(A[:, ci] @ xc)
    expr = parts[0] if len(parts) == 1 else parts[0] + parts[1]
    lo, hi = model.row_lo, model.row_hi
    eq = np.flatnonzero(np.isfinite(lo) & (lo == hi))
    ub = np.flatnonzero(np.isfinite(hi) & ~(lo == hi))
    lb = np.flatnonzero(np.isfinite(lo) & ~(lo == hi))
    cons = []
    if len(eq):
        cons.append(expr[eq] == lo[eq])
    if len(ub):
        cons.append(expr[ub] <= hi[ub])
    if len(lb):
        cons.append(expr[lb] >= lo[lb])
    for var, idx in ((xi, ii), (xc, ci)):
        if len(idx):
            cons += [var >= model.col_lo[idx], var <= model.col_hi[idx]]
    obj = 0
    if len(ii):
        obj = obj - model.c[ii] @ xi
    if len(ci):
        obj = obj - model.c[ci] @ xc
    return cp.Problem(cp.Minimize(obj), cons), xi, xc, ii, ci


def solve_cvxpy(model: CompactModel, *, time_limit: float, mip_gap: float) -> HighsOutcome:
    """Solve ``model`` through cvxpy with HiGHS (explicit time limit and gap)."""
    import cvxpy as cp

    t0 = time.perf_counter()
    prob, xi, xc, ii, ci = cvxpy_problem(model)
    prob.solve(solver=cp.HIGHS, time_limit=float(time_limit), mip_rel_gap=float(mip_gap))
    secs = time.perf_counter() - t0
    if prob.status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE):
        return HighsOutcome("infeasible", None, -math.inf, -math.inf, math.inf, secs, 0,
                            prob.status)
    x = None
    if xi.value is not None or xc.value is not None:
        x = np.zeros(model.n_vars)
        if len(ii):
            x[ii] = xi.value
        if len(ci):
            x[ci] = xc.value
    obj = -float(prob.value) + model.offset if x is not None else -math.inf
    info = prob.solver_stats.extra_stats
    bound = -float(info.mip_dual_bound) + model.offset if info is not None else math.inf
    kind = "optimal" if prob.status == cp.OPTIMAL else (
        "time_limit" if prob.status in (cp.USER_LIMIT, cp.OPTIMAL_INACCURATE) else "other")
    gap = max(bound - obj, 0.0) / max(abs(obj), 1e-9) if x is not None else math.inf
    return HighsOutcome(kind, x, obj, bound, gap, secs, 0, prob.status)
