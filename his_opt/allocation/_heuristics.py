"""Primal heuristics: a greedy grouping (similarity threshold, medoid publics, best ``x`` per group,
greedy split) and the rounding of an LP solution. Both return feasible decisions or None."""

from __future__ import annotations

import heapq
import time

import numpy as np

from ._decision import Decision
from ._evaluate import score_decision
from ._instance import Instance
from ._options import OptionTable
from ._settings import SolverSettings
from ._split import greedy_split

__all__ = ["assign_servers", "best_x", "greedy_grouping", "greedy_threshold_seconds", "round_lp"]


def _user_value(inst: Instance, table: OptionTable, s: int, lam: float) -> np.ndarray:
    """``(N, len(xs))``: each user's best user-only value at price ``lam`` (-inf: infeasible)."""
    return np.max(table.value0[:, s] - lam * table.gpu[0, s], axis=2, where=table.feasible[:, s],
                  initial=-np.inf)


def best_x(
    inst: Instance,
    table: OptionTable,
    p: int,
    members: np.ndarray,
    s: int,
    lam: float,
    uval: np.ndarray | None = None,
) -> int | None:
    """The ``x`` maximising a group's value at budget price ``lam`` (None if no ``x`` suits every
    member)."""
    wq, _, we = inst.weights
    xs = table.xs[1:]
    if uval is None:
        uval = _user_value(inst, table, s, lam)
    q = inst.quality(np.full((members.size, 1), p), members[:, None], xs[None, :])
    ok = q >= inst.min_quality[members][:, None]
    v = wq * q + uval[members][:, 1:]
    v = np.where(ok, v, -np.inf).sum(axis=0)
    rate = we * inst.power_w[s] + lam
    k = np.minimum(inst.y_range(xs)[1], table.ys[-1])
    v -= rate * (xs * inst.tau_pub[s] + inst.alpha[s] * k)
    if not np.isfinite(v).any():
        return None
    return int(xs[int(np.argmax(v))])


def assign_servers(inst: Instance, load: np.ndarray) -> np.ndarray:
    """Server per item (largest load first, onto the server with the largest budget share left)."""
    left = inst.budget_s.astype(float).copy()
    out = np.zeros(len(load), dtype=int)
    for k in np.argsort(-load, kind="stable"):
        s = int(np.argmax(left / np.maximum(inst.budget_s, 1e-12)))
        out[k] = s
        left[s] -= load[k]
    return out


def _complete(
    inst: Instance,
    table: OptionTable,
    groups: list[tuple[int, np.ndarray]],
    rest: np.ndarray,
    lam: np.ndarray,
    uvals: dict[int, np.ndarray] | None = None,
) -> Decision | None:
    """Turn (public, members) groups and leftover users into a decision with x, servers and y;
    ``uvals``: :func:`_user_value` per server at these ``lam``, filled as needed (a caller
    that keeps it across calls at the same prices computes each once)."""
    sc = inst.scenario
    items: list[tuple[int, np.ndarray]] = list(groups)
    if not inst.allow_solo and rest.size:
        # users that share nothing still need a group: join the most similar chosen public
        if sc.max_groups is not None and len(items) + rest.size > sc.max_groups:
            if not items:
                # one group around the candidate public closest to them on average
                items = [(int(np.argmax(inst.sim[:, rest].mean(axis=1))), np.zeros(0, dtype=int))]
            pubs = np.array([p for p, _ in items])
            best = pubs[np.argmax(inst.sim[np.ix_(pubs, rest)], axis=0)]
            items = [(p, np.concatenate([m, rest[best == p]])) for p, m in items]
        else:
            for n in rest:
                p = int(inst.own_public[n]) if inst.own_public[n] >= 0 else \
                    int(np.argmax(inst.sim[:, n]))
                items.append((p, np.array([n])))
        rest = np.zeros(0, dtype=int)
    # servers: balance an estimate of each item's GPU time
    est = []
    beta1 = float(np.mean(inst.beta + inst.alpha))
    ymax = sc.edge_steps_max
    for _, m in items:
        est.append(sc.common_steps_max * float(np.mean(inst.tau_pub)) + beta1 * ymax * m.size * 0.5)
    est += [beta1 * ymax * 0.5] * rest.size
    srv = assign_servers(inst, np.array(est)) if est else np.zeros(0, dtype=int)
    server, public, xs = [], [], []
    user_group = np.full(inst.n_users, -1)
    uvals = {} if uvals is None else uvals
    for k, (p, m) in enumerate(items):
        s = int(srv[k])
        if s not in uvals:
            uvals[s] = _user_value(inst, table, s, float(lam[s]))
        x = best_x(inst, table, p, m, s, float(lam[s]), uvals[s])
        if x is None:
            if not inst.allow_solo:
                return None
            rest = np.concatenate([rest, m])
            continue
        user_group[m] = len(server)
        server.append(s)
        public.append(p)
        xs.append(x)
    for j, n in enumerate(rest):
        user_group[n] = len(server)
        server.append(int(srv[len(items) + j]) if len(items) + j < len(srv) else 0)
        public.append(-1)
        xs.append(0)
    dec = Decision(np.array(server), np.array(public), np.array(xs), user_group,
                   np.zeros(inst.n_users, dtype=int))
    return greedy_split(inst, table, dec)


def _price(inst: Instance, table: OptionTable, dec: Decision) -> np.ndarray:
    """A budget price per server from a plan: the best marginal value per GPU second of one more
    edge step among its users."""
    s_u = dec.server[dec.user_group]
    i_u = np.searchsorted(table.xs, dec.x[dec.user_group])
    n = np.arange(inst.n_users)
    y = dec.y
    nxt = np.minimum(y + 1, table.ys[-1])
    ok = table.feasible[n, s_u, i_u, nxt] & (nxt > y)
    dv = table.value0[n, s_u, i_u, nxt] - table.value0[n, s_u, i_u, y]
    dg = table.gpu[n, s_u, i_u, nxt] - table.gpu[n, s_u, i_u, y]
    ratio = np.where(ok & (dg > 0), dv / np.where(dg > 0, dg, 1.0), 0.0)
    lam = np.zeros(inst.n_servers)
    np.maximum.at(lam, s_u, np.maximum(ratio, 0.0))
    return lam


def greedy_threshold_seconds(inst: Instance, settings: SolverSettings | None = None) -> float:
    """Estimated seconds of one greedy threshold on ``inst`` (its split included), from the
    measured ``SolverSettings.greedy_seconds_per_pair``: a greedy that cannot afford even one
    is not started."""
    return inst.n_publics * inst.n_users * (settings or SolverSettings()).greedy_seconds_per_pair


def greedy_grouping(
    inst: Instance,
    table: OptionTable,
    thresholds: tuple[float, ...] = (0.4, 0.5, 0.6, 0.7, 0.8),
    min_size: int = 2,
    deadline: float | None = None,
) -> Decision | None:
    """The greedy baseline: for each similarity threshold, repeatedly open the public prompt that
    covers the most unassigned users at similarity >= threshold (its medoid), give each group its
    best ``x`` at the current budget price, split greedily; keep the best plan. Once a plan
    is found, no further threshold starts that would end past ``deadline`` (a
    ``time.perf_counter()`` value) if it took as long as the one before (50,000 users, the
    greedy baseline on a 10 s limit: the first took 9.9 s, and a second one begun then ended
    it at 13.4 s; now 10.4 s)."""
    sc = inst.scenario
    best, best_obj = None, -np.inf
    at_zero: dict[int, np.ndarray] = {}  # user values at price 0: the same every threshold
    last = 0.0  # seconds the previous threshold took
    for t in thresholds:
        began = time.perf_counter()
        if deadline is not None and best is not None and began + last > deadline:
            break
        free = np.ones(inst.n_users, dtype=bool)
        groups: list[tuple[int, np.ndarray]] = []
        close = inst.sim >= t
        cover = close.sum(axis=1)
        while sc.max_groups is None or len(groups) < sc.max_groups:
            p = int(np.argmax(cover))
            if cover[p] < min_size:
                break
            m = np.flatnonzero(close[p] & free)
            groups.append((p, m))
            free[m] = False
            cover = cover - close[:, m].sum(axis=1)
        rest = np.flatnonzero(free)
        lam = np.zeros(inst.n_servers)
        dec = None
        for _ in range(2):
            cand = _complete(inst, table, groups, rest, lam, None if lam.any() else at_zero)
            if cand is None:
                break
            dec = cand
            lam = _price(inst, table, dec)
        last = time.perf_counter() - began
        if dec is None:
            continue
        obj = score_decision(inst, dec).objective
        if obj > best_obj:
            best, best_obj = dec, obj
    return best


def round_lp(inst: Instance, table: OptionTable, model, x: np.ndarray) -> Decision | None:  # noqa: ANN001
    """Each user takes its largest LP option; then the greedy split."""
    a = x[model.block("a")]
    b = x[model.block("b")]
    n_u = inst.n_users
    best_v = np.full(n_u, -1.0)
    best_k = np.full(n_u, -1)
    order = np.argsort(a, kind="stable")
    best_v[model.e_n[order]] = a[order]
    best_k[model.e_n[order]] = order
    solo_v = np.full(n_u, -1.0)
    solo_k = np.full(n_u, -1)
    if len(b):
        order = np.argsort(b, kind="stable")
        solo_v[model.solo_n[order]] = b[order]
        solo_k[model.solo_n[order]] = order
    cols: dict[tuple[int, int, int], int] = {}
    server, public, xs = [], [], []
    user_group = np.full(n_u, -1)
    for n in range(n_u):
        if solo_v[n] >= best_v[n] and solo_k[n] >= 0:
            k = solo_k[n]
            user_group[n] = len(server)
            server.append(int(model.solo_s[k]))
            public.append(-1)
            xs.append(0)
        elif best_k[n] >= 0:
            c0 = int(model.e_c[best_k[n]])
            c = (int(model.col_p[c0]), int(model.col_s[c0]), int(model.col_x[c0]))
            if c not in cols:
                cols[c] = len(server)
                server.append(c[1])
                public.append(c[0])
                xs.append(c[2])
            user_group[n] = cols[c]
        else:
            return None
    dec = Decision(np.array(server), np.array(public), np.array(xs), user_group,
                   np.zeros(n_u, dtype=int))
    return greedy_split(inst, table, dec)


def ufl_search(
    inst: Instance,
    table: OptionTable,
    lam: np.ndarray,
    *,
    publics: np.ndarray | None = None,
    pair_mask: np.ndarray | None = None,
    max_rounds: int = 200,
    swap_cells: float = 4e9,
    deadline: float | None = None,
) -> Decision | None:
    """Facility-location local search at budget price ``lam`` (per server).

    Each column (public, server, x) is a facility costing ``(w_e P + lam)(x tau_pub + alpha
    K)`` (``K`` its largest edge-step count); a user served by it is worth ``w_q Q`` plus its best
    user-only value at price ``lam``; solo users are worth their solo value. Greedy opening, then
    drop / add / swap moves while they gain (until ``deadline``, a ``time.perf_counter()``
    value); users join their best open column; the real split comes from :func:`greedy_split`.
    """
    wq, _, we = inst.weights
    sc = inst.scenario
    N, S = inst.n_users, inst.n_servers
    xs = table.xs
    pubs = np.arange(inst.n_publics) if publics is None else np.asarray(publics)
    u = np.stack([_user_value(inst, table, s, float(lam[s])) for s in range(S)], axis=1)  # N,S,X
    big = 1e6
    # solo value per user (best server)
    solo = np.full(N, -big)
    if inst.allow_solo:
        sv = wq * inst.solo_quality[:, None] + u[:, :, 0]
        ok = np.isfinite(sv) & (inst.solo_quality >= inst.min_quality)[:, None]
        solo = np.where(ok.any(axis=1), np.where(ok, sv, -np.inf).max(axis=1), -big)
    # facility values r[c, n] and costs f[c], c = (public, server, x index >= 1)
    gx = xs[1:]
    q = inst.quality(pubs[:, None, None], np.arange(N)[None, :, None], gx[None, None, :])  # P,N,X
    q_ok = q >= inst.min_quality[None, :, None]
    if pair_mask is not None:
        q_ok &= pair_mask[pubs][:, :, None]
    r = wq * q[:, None, :, :] + np.transpose(u[:, :, 1:], (1, 0, 2))[None]  # P,S,N,X
    r = np.where(q_ok[:, None] & np.isfinite(r), r, -np.inf)
    r = np.transpose(r, (0, 1, 3, 2)).reshape(-1, N)  # (P*S*X, N)
    hi = np.minimum(inst.y_range(gx)[1], table.ys[-1])
    cost = ((we * inst.power_w + lam)[:, None]
            * (gx[None, :] * inst.tau_pub[:, None] + inst.alpha[:, None] * hi[None, :]))  # S,X
    f = np.broadcast_to(cost[None], (len(pubs), S, len(gx))).reshape(-1)
    r = np.where(np.isfinite(r), r, -big)
    n_cols = r.shape[0]
    limit = sc.max_groups if sc.max_groups is not None else n_cols
    is_open = np.zeros(n_cols, dtype=bool)

    def total(open_mask: np.ndarray) -> float:
        best = solo if not open_mask.any() else np.maximum(solo, r[open_mask].max(axis=0))
        return float(best.sum() - f[open_mask].sum())

    # lazy greedy opening: a column's gain only shrinks as others open (submodular), so stale
    # gains are upper bounds and only the top one needs recomputing
    cur = solo.copy()
    gain0 = np.maximum(r - cur[None, :], 0.0).sum(axis=1) - f
    heap = [(-g, int(c)) for c, g in enumerate(gain0) if g > 1e-9]
    heapq.heapify(heap)
    while heap and is_open.sum() < limit:
        _, c = heapq.heappop(heap)
        g = float(np.maximum(r[c] - cur, 0.0).sum() - f[c])
        if g <= 1e-9:
            continue
        if heap and g < -heap[0][0] - 1e-12:
            heapq.heappush(heap, (-g, c))
            continue
        is_open[c] = True
        cur = np.maximum(cur, r[c])
    cur_val = total(is_open)
    for _ in range(max_rounds):
        if deadline is not None and time.perf_counter() > deadline:
            break
        improved = False
        best_now = solo if not is_open.any() else np.maximum(solo, r[is_open].max(axis=0))
        # add
        if is_open.sum() < limit:
            gain = np.maximum(r - best_now[None, :], 0.0).sum(axis=1) - f
            gain[is_open] = -np.inf
            c = int(np.argmax(gain))
            if gain[c] > 1e-9:
                is_open[c] = True
                cur_val = total(is_open)
                improved = True
                continue
        # drop
        for c in np.flatnonzero(is_open):
            trial = is_open.copy()
            trial[c] = False
            v = total(trial)
            if v > cur_val + 1e-9:
                is_open, cur_val, improved = trial, v, True
                break
        if improved:
            continue
        # swap: close one, open the best replacement (skipped when too large to evaluate)
        opened = np.flatnonzero(is_open)
        if opened.size * r.size > swap_cells:
            break
        for c in opened:
            if deadline is not None and time.perf_counter() > deadline:
                break
            trial = is_open.copy()
            trial[c] = False
            base = solo if not trial.any() else np.maximum(solo, r[trial].max(axis=0))
            gain = np.maximum(r - base[None, :], 0.0).sum(axis=1) - f
            gain[is_open] = -np.inf
            c2 = int(np.argmax(gain))
            trial[c2] = True
            v = total(trial)
            if v > cur_val + 1e-9:
                is_open, cur_val, improved = trial, v, True
                break
        if not improved:
            break
    opened = np.flatnonzero(is_open)
    if opened.size == 0 and not inst.allow_solo:
        return None
    vals = r[opened] if opened.size else np.zeros((0, N))
    choice = np.argmax(vals, axis=0) if opened.size else np.zeros(N, dtype=int)
    use_solo = (solo >= (vals.max(axis=0) if opened.size else -np.inf))
    if not inst.allow_solo:
        use_solo[:] = False
    if np.any(~use_solo & ((vals.max(axis=0) if opened.size else np.full(N, -big)) <= -big / 2)):
        return None
    n_x = len(gx)
    server, public, xv = [], [], []
    user_group = np.full(N, -1)
    col_group: dict[int, int] = {}
    solo_server = np.argmax(np.where(np.isfinite(u[:, :, 0]), u[:, :, 0], -np.inf), axis=1)
    for n in range(N):
        if use_solo[n]:
            user_group[n] = len(server)
            server.append(int(solo_server[n]))
            public.append(-1)
            xv.append(0)
            continue
        c = int(opened[choice[n]])
        if c not in col_group:
            pi, rest = divmod(c, S * n_x)
            s, xi = divmod(rest, n_x)
            col_group[c] = len(server)
            server.append(s)
            public.append(int(pubs[pi]))
            xv.append(int(gx[xi]))
        user_group[n] = col_group[c]
    dec = Decision(np.array(server), np.array(public), np.array(xv), user_group,
                   np.zeros(N, dtype=int))
    return greedy_split(inst, table, dec)
