"""Why an instance is infeasible, and by how much.

Per user: a deadline below the fastest delay any option reaches (by how much), a ``min_quality``
above the best quality any option reaches, or both limits that hold alone but not together.
Globally: the GPU budgets. The smallest budgets that make the instance feasible come from the
min-GPU-time problem (the compact MILP with the budgets scaled by one factor ``t`` and ``t``
minimised); the message gives the budget per server that suffices.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

from ._highs import solve_highs
from ._instance import Instance
from ._milp import all_options, build_compact_model
from ._options import OptionTable

__all__ = ["diagnose", "smallest_budgets"]


def _user_reasons(inst: Instance, table: OptionTable) -> list[str]:
    sc = inst.scenario
    out: list[str] = []
    xs = table.xs
    lo, hi = inst.y_range(xs)
    if not np.any(lo <= hi):
        return [f"the step ranges admit no split of T = {sc.total_steps}: common "
                f"[{sc.common_steps_min}, {sc.common_steps_max}], edge "
                f"[{sc.edge_steps_min}, {sc.edge_steps_max}], device "
                f"[{sc.device_steps_min}, {sc.device_steps_max}]"]
    # fastest delay per user over every server, x and y in range (ignoring quality)
    n = np.arange(inst.n_users)[:, None, None, None]
    s = np.arange(inst.n_servers)[None, :, None, None]
    x = xs[None, None, :, None]
    y = table.ys[None, None, None, :]
    in_range = (y >= lo[None, None, :, None]) & (y <= hi[None, None, :, None])
    if not inst.allow_solo:
        in_range = in_range & (x > 0)
    delay = np.where(in_range, inst.delay(n, s, x, y), np.inf)
    fastest_x = delay.min(axis=(1, 3))  # (N, X)
    x_ok = table.any_y.any(axis=1)  # (N, X): some y meets the deadline
    for u in range(inst.n_users):
        uid = inst.user_ids[u]
        dl = inst.deadline_s[u]
        qmin = inst.min_quality[u]
        fastest = float(fastest_x[u].min())
        if fastest > dl * (1 + 1e-12):
            out.append(f"user {uid}: deadline {dl:.6g} s is below the fastest possible delay "
                       f"{fastest:.6g} s (short by {fastest - dl:.6g} s)")
            continue
        if not math.isfinite(qmin):
            continue
        qbest = np.full(len(xs), -np.inf)
        if inst.allow_solo:
            qbest[0] = float(inst.solo_quality[u])
        if len(xs) > 1:
            q = inst.quality(np.arange(inst.n_publics)[:, None], u, xs[None, 1:])
            qbest[1:] = q.max(axis=0)
        best_any = float(qbest.max())
        if best_any < qmin - 1e-12:
            out.append(f"user {uid}: min_quality {qmin:.6g} is above the best reachable quality "
                       f"{best_any:.6g} (by {qmin - best_any:.6g})")
            continue
        both = (qbest >= qmin) & x_ok[u]
        if not both.any():
            ok_q = qbest >= qmin
            fast = float(fastest_x[u][ok_q].min())
            out.append(f"user {uid}: deadline {dl:.6g} s and min_quality {qmin:.6g} cannot both "
                       f"hold: options reaching the quality take at least {fast:.6g} s "
                       f"(short by {fast - dl:.6g} s)")
    return out


def smallest_budgets(
    inst: Instance, table: OptionTable, *, time_limit: float = 30.0
) -> tuple[np.ndarray, float, bool] | None:
    """The smallest budgets ``t * budget_s`` (or a common budget ``t`` when some budget is 0)
    under which a plan exists. Returns ``(budgets, lower_bound_t, proven)`` or None if no budget
    helps (per-user limits or ``max_groups`` make the instance infeasible)."""
    scale = bool(np.all(inst.budget_s > 0))
    model = build_compact_model(inst, table, all_options(inst, table), None, symmetry=False)
    b_rows = model.rows["budget"]
    A = sp.csr_matrix(model.A)
    n_rows, nv = A.shape
    coef = -(inst.budget_s if scale else np.ones(inst.n_servers))
    t_col = sp.csr_matrix((coef, (b_rows, np.zeros(len(b_rows), dtype=int))), shape=(n_rows, 1))
    A2 = sp.hstack([A, t_col], format="csr")
    row_hi = model.row_hi.copy()
    row_hi[b_rows] = 0.0
    c = np.zeros(nv + 1)
    c[-1] = -1.0
    big = 1e9
    out = solve_highs(c, A2, model.row_lo, row_hi, np.append(model.col_lo, 0.0),
                      np.append(model.col_hi, big), np.append(model.integrality, 0),
                      time_limit=time_limit, mip_gap=1e-6)
    if out.x is None:
        return None
    t = float(out.x[-1])
    t = t * (1 + 1e-9) + 1e-9
    budgets = t * inst.budget_s if scale else np.full(inst.n_servers, t)
    return budgets, float(-out.bound), out.kind == "optimal"


def _round_up(value: float, digits: int = 6) -> float:
    """``value`` rounded up to ``digits`` significant digits (a budget quoted in a message must
    still suffice)."""
    if value <= 0 or not math.isfinite(value):
        return value
    step = 10.0 ** (math.floor(math.log10(value)) - digits + 1)
    return math.ceil(value / step - 1e-9) * step


def diagnose(inst: Instance, table: OptionTable | None = None, *, time_limit: float = 30.0,
             max_options: int | None = None) -> list[str]:
    """One line per reason the instance is infeasible (empty if no reason was found). The
    smallest-budget MILP runs only over at most ``max_options`` options (memory), else the
    budgets get no line."""
    if table is None:
        from ._options import build_option_table

        table = build_option_table(inst)
    reasons = _user_reasons(inst, table)
    if reasons:
        return reasons
    size = inst.n_users * inst.n_publics * inst.n_servers * len(inst.x_values)
    if max_options is not None and size > max_options:
        return []
    res = smallest_budgets(inst, table, time_limit=time_limit)
    sc = inst.scenario
    if res is None:
        if sc.max_groups is not None and not inst.allow_solo:
            return [f"no plan meets max_groups = {sc.max_groups} with every user in a group "
                    "(common_steps_min >= 1) under the users' quality and deadline limits"]
        return []
    budgets, _, proven = res
    lines = []
    for s in range(inst.n_servers):
        need, have = _round_up(float(budgets[s])), float(inst.budget_s[s])
        if need > have * (1 + 1e-9) + 1e-9:
            word = "the smallest feasible budget is" if proven else "a budget of"
            tail = "" if proven else " suffices (not proven smallest)"
            lines.append(f"server {inst.server_names[s]}: GPU budget {have:.6g} s is too small; "
                         f"{word} {need:.6g} s{tail} (short by {need - have:.6g} s)")
    return lines
