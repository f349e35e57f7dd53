"""Whole groups re-placed on the real servers by a small MILP, at any size.

A facility search at fixed server prices decides each group's server class all or nothing: at
one price ratio every group of 10,000 users lands on the fast servers and the slow ones stay
idle, at a slightly lower one too many move and their edge steps are cut to fit. This step
keeps the grouping (members, public prompt, common steps) and chooses, per group, its server
and its members' edge steps among a few price levels: ``y_n`` is user ``n``'s best edge-step
count at price ``t lam_s`` on server ``s``, so option ``(g, s, t)`` has an exact value (quality,
delay, energy, the group's public phase and launch overhead) and an exact GPU time. The MILP
picks one option per group within every server's budget: a multiple-choice knapsack with one
row per group and one per server, whose size is groups x servers x levels whatever the number
of users. The plan's own placement and split is one of the options (when every member's ``y``
meets the option table's deadlines, as in every plan the solver keeps), so the MILP starts
from it and returns no worse a plan. Levels whose steps equal the previous level's on a server
(all of them where its price is 0) are one option.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ._decision import Decision
from ._highs import solve_highs
from ._instance import Instance
from ._options import OptionTable

__all__ = ["place_by_milp"]


def _group_terms(inst: Instance, table: OptionTable, dec: Decision, s: int, y: np.ndarray,
                 base: np.ndarray, i_u: np.ndarray, ok_u: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every group of ``dec`` on server ``s`` with its users at ``y``: value, GPU seconds and
    whether every member's ``y`` is feasible there (``base``: each user's quality term)."""
    n = np.arange(inst.n_users)
    g = dec.user_group
    we = inst.weights[2]
    val_u = np.where(ok_u, table.value0[n, s, i_u, y], 0.0)
    gpu_u = table.gpu[n, s, i_u, y]
    launch = np.zeros(dec.n_groups)
    np.maximum.at(launch, g, y)
    shared = dec.public >= 0
    grp_t = np.where(shared, dec.x * inst.tau_pub[s] + inst.alpha[s] * launch, 0.0)
    value = (np.bincount(g, weights=base + val_u, minlength=dec.n_groups)
             - we * inst.power_w[s] * grp_t)
    gpu = np.bincount(g, weights=gpu_u, minlength=dec.n_groups) + grp_t
    ok = np.bincount(g, weights=~ok_u, minlength=dec.n_groups) == 0
    return value, gpu, ok


def place_by_milp(inst: Instance, table: OptionTable, dec: Decision, lam: np.ndarray, *,
                  levels: tuple[float, ...], max_vars: int, time_limit: float
                  ) -> Decision | None:
    """Re-place the groups of the feasible plan ``dec`` and re-choose their edge steps (module
    docstring) at per-server prices ``lam`` times ``levels``: the largest groups that keep the
    MILP within ``max_vars`` options move, the others stay as they are. None when the MILP
    finds nothing."""
    dec = dec.compact()
    G, S = dec.n_groups, inst.n_servers
    size = np.bincount(dec.user_group, minlength=G)
    free = np.zeros(G, dtype=bool)
    free[np.argsort(-size, kind="stable")[: max(max_vars // (S * (len(levels) + 1)), 0)]] = True
    wq = inst.weights[0]
    g = dec.user_group
    n = np.arange(inst.n_users)
    x_u, p_u = dec.x[g], dec.public[g]
    i_u = np.searchsorted(table.xs, x_u)
    q = inst.solo_quality.copy()
    sh = p_u >= 0
    q[sh] = inst.quality(p_u[sh], n[sh], x_u[sh])
    base = wq * q
    vals, gpus, opt_g, opt_s, ys = [], [], [], [], []
    for s in range(S):
        feas = table.feasible[n, s, i_u]  # (N, Y)
        has = feas.any(axis=1)
        val0, gpu0 = table.value0[n, s, i_u], table.gpu[n, s, i_u]
        choices = [np.where(dec.server[g] == s, dec.y, -1)]
        for t in levels:
            y = np.where(has, np.where(feas, val0 - t * lam[s] * gpu0, -np.inf).argmax(axis=1), 0)
            if len(choices) == 1 or not np.array_equal(y, choices[-1]):
                choices.append(y)  # a level whose steps equal the previous one's adds nothing
        for k, y in enumerate(choices):
            keep = y >= 0 if k == 0 else np.ones(inst.n_users, dtype=bool)
            y = np.maximum(y, 0)
            ok_u = feas[n, y] & has
            value, gpu, ok = _group_terms(inst, table, dec, s, y, base, i_u, ok_u)
            if k == 0:
                ok &= np.bincount(g, weights=~keep, minlength=G) == 0
            else:
                ok &= free
            cols = np.flatnonzero(ok)
            vals.append(value[cols])
            gpus.append(gpu[cols])
            opt_g.append(cols)
            opt_s.append(np.full(cols.size, s))
            ys.append((k, s, y.astype(np.int8)))
    value = np.concatenate(vals)
    gpu = np.concatenate(gpus)
    og = np.concatenate(opt_g)
    os_ = np.concatenate(opt_s)
    which = np.concatenate([np.full(len(c), j) for j, c in enumerate(opt_g)])
    nv = value.size
    rows = sp.vstack([
        sp.csr_matrix((np.ones(nv), (og, np.arange(nv))), shape=(G, nv)),
        sp.csr_matrix((gpu, (os_, np.arange(nv))), shape=(S, nv)),
    ]).tocsr()
    row_lo = np.concatenate([np.ones(G), np.full(S, -np.inf)])
    row_hi = np.concatenate([np.ones(G), inst.budget_s])
    start = np.zeros(nv)
    own = np.flatnonzero(np.isin(which, [j for j, (k, _, _) in enumerate(ys) if k == 0]))
    start[own] = 1.0
    out = solve_highs(value, rows, row_lo, row_hi, np.zeros(nv), np.ones(nv),
                      np.ones(nv, dtype=np.int8), time_limit=time_limit, mip_gap=1e-4,
                      start=start)
    if out.x is None:
        return None
    pick = np.flatnonzero(out.x > 0.5)
    server = dec.server.copy()
    server[og[pick]] = os_[pick]
    choice = np.full(G, -1)
    choice[og[pick]] = which[pick]
    if np.any(choice < 0):
        return None
    y_out = np.zeros(inst.n_users, dtype=int)
    user_choice = choice[g]
    for c in np.unique(user_choice):
        users = user_choice == c
        y_out[users] = ys[c][2][users]
    return Decision(server, dec.public, dec.x, g, y_out)
