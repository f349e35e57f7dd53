"""The edge/device step split for a fixed grouping (public prompts, servers and ``x`` fixed).

Quality depends only on the grouping, so what remains is a knapsack in the edge steps ``y_n``:
the users' delay and energy terms and the groups' launch overhead against each server's GPU
budget, the step ranges and the deadlines (both encoded in the option table).

* :func:`greedy_split` (fast, feasible, near-optimal): bisection on the budget price ``lam``, each
  group's best response at the smallest feasible price, then the leftover budget spent on the
  most valuable single-user increases.
* :func:`optimal_split` (exact): the compact MILP restricted to the grouping, warm-started from
  the greedy split; :func:`optimize_split` is its public form on plans.
"""

from __future__ import annotations

import numpy as np

from ._decision import Decision
from ._highs import solve_highs
from ._instance import Instance
from ._options import OptionTable

__all__ = ["greedy_split", "optimal_split", "optimize_split"]


def _user_tables(inst: Instance, table: OptionTable, dec: Decision):  # noqa: ANN202
    g = dec.user_group
    s_u = dec.server[g]
    i_u = np.searchsorted(table.xs, dec.x[g])
    n = np.arange(inst.n_users)
    feas = table.feasible[n, s_u, i_u]
    return s_u, i_u, feas, table.value0[n, s_u, i_u], table.gpu[n, s_u, i_u]


def _gpu_per_server(inst: Instance, dec: Decision, y: np.ndarray, user_gpu: np.ndarray) -> np.ndarray:
    shared = dec.public >= 0
    launch = np.zeros(dec.n_groups)
    np.maximum.at(launch, dec.user_group, y)
    grp = np.where(shared, dec.x * inst.tau_pub[dec.server] + inst.alpha[dec.server] * launch, 0.0)
    s_u = dec.server[dec.user_group]
    return (np.bincount(dec.server, weights=grp, minlength=inst.n_servers)
            + np.bincount(s_u, weights=user_gpu, minlength=inst.n_servers))


def greedy_split(inst: Instance, table: OptionTable, dec: Decision) -> Decision | None:
    """A feasible, near-optimal ``y`` for the grouping of ``dec``; None if none exists."""
    N = inst.n_users
    we = inst.weights[2]
    s_u, i_u, feas, val, gpu = _user_tables(inst, table, dec)
    if not np.all(feas.any(axis=1)):
        return None
    G = dec.n_groups
    g = dec.user_group
    shared = dec.public >= 0
    ys = table.ys
    Y = len(ys)
    rho = np.where(shared, we * inst.power_w[dec.server] * inst.alpha[dec.server], 0.0)
    a_g = np.where(shared, inst.alpha[dec.server], 0.0)

    def respond(lam: np.ndarray) -> np.ndarray:
        """Each group's best response at price ``lam`` (per server)."""
        lam_u = lam[s_u]
        v = np.where(feas, val - lam_u[:, None] * gpu, -np.inf)
        H = np.maximum.accumulate(v, axis=1)
        arg = np.zeros((N, Y), dtype=int)
        for K in range(1, Y):
            arg[:, K] = np.where(v[:, K] > H[:, K - 1], K, arg[:, K - 1])
        # group value per K: sum of members' H[:, K] minus launch cost
        tot = np.zeros((G, Y))
        np.add.at(tot, g, H)
        lam_g = lam[dec.server]
        tot -= (rho + lam_g * a_g)[:, None] * ys[None, :]
        best_k = np.argmax(np.where(np.isfinite(tot), tot, -np.inf), axis=1)
        return arg[np.arange(N), best_k[g]]

    def used(y: np.ndarray) -> np.ndarray:
        return _gpu_per_server(inst, dec, y, gpu[np.arange(N), y])

    y_lo = np.argmax(feas, axis=1)
    if np.any(used(y_lo) > inst.budget_s + 1e-9):
        return None
    # bisection per server on the price (servers are independent given the grouping)
    lam_lo = np.zeros(inst.n_servers)
    y = respond(lam_lo)
    over = used(y) > inst.budget_s + 1e-12
    if over.any():
        lam_hi = np.where(over, 1.0, 0.0)
        for _ in range(60):
            y_hi = respond(lam_hi)
            bad = used(y_hi) > inst.budget_s + 1e-12
            if not (bad & over).any():
                break
            lam_hi = np.where(bad & over, lam_hi * 4.0, lam_hi)
        for _ in range(50):
            mid = np.where(over, 0.5 * (lam_lo + lam_hi), 0.0)
            ym = respond(mid)
            bad = used(ym) > inst.budget_s + 1e-12
            lam_hi = np.where(over & ~bad, mid, lam_hi)
            lam_lo = np.where(over & bad, mid, lam_lo)
        y = respond(lam_hi)
        y_ok = used(y) <= inst.budget_s + 1e-12
        if not y_ok.all():
            y = np.where(y_ok[s_u], y, y_lo)
    return dec.with_y(_fill(inst, dec, y, feas, val, gpu, rho, a_g))


def _fill(inst: Instance, dec: Decision, y: np.ndarray, feas: np.ndarray, val: np.ndarray,
          gpu: np.ndarray, rho: np.ndarray, a_g: np.ndarray) -> np.ndarray:
    """Spend leftover budget on single-user increases, largest gain first: each pass takes,
    per server, the users' best increases in order of gain while they fit (one per user; a
    group's launch overhead is charged to each riser against the launch count before the
    pass, never less than it adds), until a pass takes none: a few passes over the users
    where one step at a time took one pass per step (50,000 users: minutes)."""
    N = inst.n_users
    g = dec.user_group
    s_u = dec.server[g]
    ys = np.arange(feas.shape[1])
    y = y.copy()
    rows = np.arange(N)
    for _ in range(4 * N + 10):
        launch = np.zeros(dec.n_groups, dtype=int)
        np.maximum.at(launch, g, y)
        left = inst.budget_s - _gpu_per_server(inst, dec, y, gpu[rows, y])
        up = np.maximum(ys[None, :] - launch[g][:, None], 0)
        dv = val - val[rows, y][:, None] - rho[g][:, None] * up
        dg = gpu - gpu[rows, y][:, None] + a_g[g][:, None] * up
        ok = feas & (ys[None, :] > y[:, None]) & (dg <= left[s_u][:, None] + 1e-12) & (dv > 1e-12)
        dv = np.where(ok, dv, -np.inf)
        k = np.argmax(dv, axis=1)
        gain, cost = dv[rows, k], dg[rows, k]
        cand = np.flatnonzero(np.isfinite(gain))
        if cand.size == 0:
            break
        cand = cand[np.lexsort((-gain[cand], s_u[cand]))]  # per server, largest gain first
        srv = s_u[cand]
        cum = np.cumsum(cost[cand])
        first = np.searchsorted(srv, srv)  # each server's first position in ``cand``
        cum -= np.where(first > 0, cum[np.maximum(first - 1, 0)], 0.0)
        take = cand[cum <= left[srv] + 1e-12]  # each server's first fits: every pass takes one
        y[take] = k[take]
    return y


def optimal_split(
    inst: Instance,
    table: OptionTable,
    dec: Decision,
    *,
    time_limit: float = 30.0,
    mip_gap: float = 1e-9,
) -> Decision | None:
    """Optimal ``y`` for the grouping of ``dec`` (its ``y`` is ignored); None if infeasible.
    Groups with the same public prompt, server and ``x`` are merged (never worse). Falls back to
    the greedy split if the MILP stops without a better plan."""
    from ._evaluate import score_decision
    from ._milp import build_compact_model

    dec = dec.compact()
    start = greedy_split(inst, table, dec)
    if start is None:
        return None
    g = dec.user_group
    shared = dec.public[g] >= 0
    n = np.arange(inst.n_users)
    i_u = np.searchsorted(table.xs, dec.x[g])
    opts = (dec.public[g][shared], n[shared], dec.server[g][shared], i_u[shared])
    solo = np.zeros((inst.n_users, inst.n_servers), dtype=bool)
    solo[n[~shared], dec.server[g][~shared]] = True
    model = build_compact_model(inst, table, opts, solo)
    warm = model.encode(start, inst.total_steps)
    out = solve_highs(model.c, model.A, model.row_lo, model.row_hi, model.col_lo, model.col_hi,
                      model.integrality, time_limit=time_limit, mip_gap=mip_gap,
                      offset=model.offset, start=warm)
    if out.x is None:
        return start
    best = model.decode(out.x)
    if score_decision(inst, best).objective >= score_decision(inst, start).objective - 1e-9:
        return best
    return start



def optimize_split(inst: Instance, plan, *, time_limit: float = 30.0):  # noqa: ANN001, ANN201
    """The plan with the optimal edge/device split for its grouping (None if its grouping admits
    no split within the budgets and deadlines)."""
    from ._options import build_option_table
    from ._result import make_plan

    dec = plan if isinstance(plan, Decision) else plan.to_decision(inst)
    best = optimal_split(inst, build_option_table(inst), dec, time_limit=time_limit)
    return None if best is None else make_plan(inst, best)
