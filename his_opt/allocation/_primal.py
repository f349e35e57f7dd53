"""Primal plans built per server: facility searches at server prices, placement of groups on
the servers of a class, the price-raising repair of over-budget servers, and the re-placement
MILP that moves users and groups between servers.

Every step returns a :class:`Decision` that respects each server's budget (the edge/device
split of :func:`greedy_split` enforces it; launches beyond a batch cap are chunked and charged
in ``beta'``), or None.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from ._decision import Decision
from ._dual import ServerDual
from ._heuristics import assign_servers, ufl_search
from ._highs import solve_highs
from ._instance import Instance, user_chunks
from ._milp import build_compact_model, usable_options
from ._options import OptionTable
from ._settings import SolverSettings
from ._split import greedy_split

__all__ = ["column_milp", "dense_search", "solo_plan", "place_groups", "price_guess", "priced_plan",
           "sparse_search"]

_BIG = 1e9


def price_guess(inst: Instance) -> np.ndarray:
    """A budget price per server: the value of moving one device step of a median user to the
    edge, per GPU second, when the server's budget is short (else 0)."""
    wd, we = inst.weights[1], inst.weights[2]
    d = float(np.median(inst.device_step_s))
    e = float(np.median(inst.device_step_j))
    gain = wd * (d - inst.tau_one) + we * (e - inst.power_w * inst.beta)
    need = inst.n_users * inst.scenario.edge_steps_max * inst.beta
    short = inst.budget_s < need / max(inst.n_servers, 1)
    return np.where(short, np.maximum(gain, 0.0) / np.maximum(inst.beta, 1e-12), 0.0)


def solo_plan(inst: Instance, table: OptionTable) -> Decision | None:
    """Every user alone (no sharing), spread over the servers by budget, steps split greedily:
    a plan in O(users x servers) that exists whenever sharing is optional."""
    if not inst.allow_solo:
        return None
    n = inst.n_users
    est = np.full(n, float(np.mean(inst.alpha + inst.beta)) * inst.scenario.edge_steps_max)
    server = assign_servers(inst, est)
    dec = Decision(server, np.full(n, -1), np.zeros(n, dtype=int), np.arange(n),
                   np.zeros(n, dtype=int))
    return greedy_split(inst, table, dec)


def _central_publics(inst: Instance, pair_mask: np.ndarray | None,
                     settings: SolverSettings) -> np.ndarray | None:
    """Public candidates for the dense facility search when all of them would not fit (the
    ones with the largest summed similarity excess over the median); None: all fit."""
    cols_per_public = inst.n_servers * len(inst.x_values)
    if inst.n_publics * cols_per_public * inst.n_users <= settings.max_dense_cells:
        return None
    keep = settings.max_dense_cells // (cols_per_public * inst.n_users)
    if keep < 8:
        return np.zeros(0, dtype=int)
    score = np.zeros(inst.n_publics)
    for cols in user_chunks(inst.n_users, inst.n_publics):  # bounded temporaries
        sim = inst.sim[:, cols]
        if pair_mask is not None:
            sim = np.where(pair_mask[:, cols], sim, -1.0)
        score += np.maximum(sim - np.median(sim, axis=0)[None, :], 0.0).sum(axis=1)
    return np.sort(np.argsort(-score)[:keep])


def dense_search(inst: Instance, table: OptionTable, lam: np.ndarray, *,
                 pair_mask: np.ndarray | None, settings: SolverSettings,
                 deadline: float) -> Decision | None:
    """The facility local search (drop / add / swap) on the real servers at prices ``lam``;
    None when its dense table would not fit the memory plan."""
    pubs = _central_publics(inst, pair_mask, settings)
    if pubs is not None and pubs.size == 0:
        return None
    n_pub = inst.n_publics if pubs is None else pubs.size
    cells = n_pub * inst.n_servers * len(inst.x_values) * inst.n_users
    if cells * settings.dense_seconds_per_cell > deadline - time.perf_counter():
        return None  # its table alone would outlast the time it may use
    return ufl_search(inst, table, lam, publics=pubs, pair_mask=pair_mask, deadline=deadline)


def place_groups(inst: Instance, table: OptionTable, dec: Decision,
                 classes: list[list[int]]) -> Decision | None:
    """Place the groups of a plan made on server classes (``dec.server`` = class index) on
    the class's real servers (largest estimated load first, on the server with most budget
    left) and split each user's steps there."""
    dec = dec.compact()
    y_sum = np.bincount(dec.user_group, weights=dec.y, minlength=dec.n_groups)
    launch = np.zeros(dec.n_groups)
    np.maximum.at(launch, dec.user_group, dec.y)
    rep = np.array([c[0] for c in classes])[dec.server]
    est = (np.where(dec.public >= 0, dec.x * inst.tau_pub[rep], 0.0)
           + inst.alpha[rep] * launch + inst.beta[rep] * y_sum)
    server = np.zeros(dec.n_groups, dtype=int)
    for k, cls in enumerate(classes):
        gk = np.flatnonzero(dec.server == k)
        if len(cls) == 1:
            server[gk] = cls[0]
            continue
        sub = replace(inst, budget_s=inst.budget_s[cls])
        server[gk] = np.array(cls)[assign_servers(sub, est[gk])]
    placed = Decision(server, dec.public, dec.x, dec.user_group, dec.y)
    return greedy_split(inst, table, placed)


def _min_load(inst: Instance, table: OptionTable, dec: Decision) -> np.ndarray:
    """GPU seconds per server of ``dec`` with every user at its smallest feasible ``y``."""
    g = dec.user_group
    n = np.arange(inst.n_users)
    s_u = dec.server[g]
    i_u = np.searchsorted(table.xs, dec.x[g])
    feas = table.feasible[n, s_u, i_u]
    y_lo = np.where(feas.any(axis=1), feas.argmax(axis=1), 0)
    launch = np.zeros(dec.n_groups)
    np.maximum.at(launch, g, y_lo)
    shared = dec.public >= 0
    grp = np.where(shared, dec.x * inst.tau_pub[dec.server] + inst.alpha[dec.server] * launch, 0.0)
    users = table.gpu[n, s_u, i_u, y_lo]
    return (np.bincount(dec.server, weights=grp, minlength=inst.n_servers)
            + np.bincount(s_u, weights=users, minlength=inst.n_servers))


def sparse_search(dual: ServerDual, lam: np.ndarray, *, max_passes: int = 60,
                  deadline: float) -> Decision | None:
    """Facility opening on the dual's sparse entries at class prices ``lam``: batches of the
    columns of largest gain open while they gain, then columns whose users would be nearly as
    well off elsewhere close. Returns a plan on server classes (``server`` = class index),
    with ``y`` still to be split (see :func:`place_groups`)."""
    inst = dual.inst
    dual._entries(np.asarray(lam, dtype=float), 0.0)
    en, ec, ew, f = dual.en, dual.ec, dual.ew, dual.f
    v0 = np.where(np.isfinite(dual.v0), dual.v0, -_BIG)
    cur = v0.copy()
    is_open = np.zeros(dual.n_cols, dtype=bool)
    for _ in range(max_passes):
        d = ew - cur[en]
        gain = np.bincount(ec, weights=np.maximum(d, 0.0), minlength=dual.n_cols) - f
        gain[is_open] = -np.inf
        cand = np.flatnonzero(gain > 1e-9)
        if cand.size == 0 or time.perf_counter() > deadline:
            break
        take = cand[np.argsort(-gain[cand])[: max(1, cand.size // 20)]]
        is_open[take] = True
        sel = is_open[ec]
        np.maximum.at(cur, en[sel], ew[sel])
    for _ in range(8):
        sel = np.flatnonzero(is_open[ec])
        if sel.size == 0:
            break
        users, first = np.unique(en[sel], return_index=True)
        best_e = sel[first]
        nxt = np.full(inst.n_users, -np.inf)
        second = first + 1
        ok = (second < sel.size)
        ok[ok] = en[sel[second[ok]]] == users[ok]
        nxt[users[ok]] = ew[sel[second[ok]]]
        alt = np.maximum(nxt[users], v0[users])
        contrib = np.bincount(ec[best_e], weights=ew[best_e] - alt, minlength=dual.n_cols) - f
        drop = is_open & (contrib < 0)
        cap = inst.scenario.max_groups
        if cap is not None and is_open.sum() > cap:
            order = np.flatnonzero(is_open)[np.argsort(-contrib[is_open])]
            drop[order[cap:]] = True
        if not drop.any():
            break
        is_open &= ~drop
    return _decision_from_columns(dual, is_open, v0)


def _decision_from_columns(dual: ServerDual, is_open: np.ndarray, v0: np.ndarray) -> Decision | None:
    inst = dual.inst
    K, X = len(dual.classes), len(dual.gx)
    sel = np.flatnonzero(is_open[dual.ec])
    best_col = np.full(inst.n_users, -1, dtype=np.int64)
    best_val = np.full(inst.n_users, -np.inf)
    if sel.size:
        users, first = np.unique(dual.en[sel], return_index=True)
        best_col[users] = dual.ec[sel[first]]
        best_val[users] = dual.ew[sel[first]]
    solo = best_val <= v0
    if np.any(solo & (v0 <= -_BIG / 2)):
        return None
    cols, user_col = np.unique(np.where(solo, -1, best_col), return_inverse=True)
    server, public, xs = [], [], []
    group_of_col = {}
    for j, c in enumerate(cols):
        if c < 0:
            continue
        p, rest = divmod(int(c), K * X)
        k, i = divmod(rest, X)
        group_of_col[j] = len(server)
        server.append(k)
        public.append(p)
        xs.append(int(dual.gx[i]))
    user_group = np.empty(inst.n_users, dtype=int)
    for n in np.flatnonzero(~solo):
        user_group[n] = group_of_col[int(user_col[n])]
    solo_idx = np.flatnonzero(solo)
    user_group[solo_idx] = len(server) + np.arange(solo_idx.size)
    server += dual.v0_class[solo_idx].tolist()
    public += [-1] * solo_idx.size
    xs += [0] * solo_idx.size
    return Decision(np.array(server), np.array(public), np.array(xs), user_group,
                    np.zeros(inst.n_users, dtype=int))


def priced_plan(dual: ServerDual, table: OptionTable, lam: np.ndarray, *,
                settings: SolverSettings, deadline: float) -> Decision | None:
    """A feasible plan from :func:`sparse_search` at class prices ``lam``: while the plan's
    smallest load exceeds a server's budget, that class's price rises and the search reruns."""
    inst, classes = dual.inst, dual.classes
    lam = np.asarray(lam, dtype=float).copy()
    for _ in range(settings.repair_rounds):
        if time.perf_counter() > deadline:
            return None
        on_classes = sparse_search(dual, lam, deadline=deadline)
        if on_classes is None:
            return None
        placed = place_groups(inst, table, on_classes, classes)
        if placed is not None:
            return placed
        real = Decision(np.array([c[0] for c in classes])[on_classes.server], on_classes.public,
                        on_classes.x, on_classes.user_group, on_classes.y)
        load = _min_load(inst, table, real)
        over = np.array([load[c].sum() > inst.budget_s[c].sum() * (1 - 1e-9) for c in classes])
        if not over.any():
            over[:] = True
        lam = np.where(over, np.maximum(lam * 1.6, 1e-3 + lam), lam)
    return None


def column_milp(inst: Instance, table: OptionTable, dec: Decision, mask: np.ndarray | None, *,
                settings: SolverSettings, time_limit: float, mip_gap: float) -> Decision | None:
    """Re-optimise ``dec`` over its own (public, x) pairs: every user may join any of them on
    any server, or go solo; an exact MILP over that restriction, warm started from ``dec``
    (None when the restriction is too large or ``dec`` shares nothing)."""
    used = np.unique(dec.user_group)
    shared = used[dec.public[used] >= 0]
    pairs = {(int(dec.public[g]), int(np.searchsorted(table.xs, dec.x[g]))) for g in shared}
    N, S = inst.n_users, inst.n_servers
    if not pairs or len(pairs) * N * S > settings.max_milp_options:
        return None
    pp = np.array([p for p, _ in pairs])
    pi = np.array([i for _, i in pairs])
    p_, n_, s_ = (a.ravel() for a in np.meshgrid(np.arange(len(pp)), np.arange(N), np.arange(S),
                                                  indexing="ij"))
    p, i = pp[p_], pi[p_]
    ok = usable_options(inst, table, p, n_, s_, i)
    if mask is not None:
        ok &= mask[p, n_]
    model = build_compact_model(inst, table, (p[ok], n_[ok], s_[ok], i[ok]))
    if model.n_vars * settings.milp_seconds_per_var > time_limit:
        return None  # HiGHS could not start it in the time given
    warm = model.encode(dec, inst.total_steps)
    out = solve_highs(model.c, model.A, model.row_lo, model.row_hi, model.col_lo, model.col_hi,
                      model.integrality, time_limit=max(time_limit, 0.05), mip_gap=mip_gap,
                      offset=model.offset, start=warm)
    return model.decode(out.x) if out.x is not None else None
