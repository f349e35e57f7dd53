"""Exhaustive enumeration for tiny instances (tests).

:func:`brute_force` is :func:`._enumerate.exact_optimum` (subsets and the cost structure, 8 users
on 3 servers in about a second). :func:`grid_enumeration` is the older, independent reference the
enumerator was checked against: every set partition of the users, every public prompt, server
and ``x`` per block (or solo), every edge-step vector (a ``(y_max + 1)^|block|`` grid).

To stay tractable the grid enumerates per block (a subset of users) all of its configurations
once and combines blocks by dynamic programming over subsets; both steps only discard
configurations that are *dominated* (another one with at least the value, at most the GPU time
on every server and at most as many groups), which never loses the optimum.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from ._decision import Decision
from ._enumerate import exact_optimum
from ._instance import Instance
from ._options import build_option_table

__all__ = ["brute_force", "grid_enumeration"]

_MAX_USERS = 10


def _pareto(value: np.ndarray, gpu: np.ndarray, ng: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated points (max value, min GPU time per server, min groups)."""
    if len(value) == 0:
        return np.zeros(0, dtype=int)
    if gpu.shape[1] == 1 and np.all(ng == ng[0]):
        order = np.lexsort((-value, gpu[:, 0]))
        v = value[order]
        prev = np.maximum.accumulate(np.concatenate([[-np.inf], v[:-1]]))
        return order[v > prev]
    order = np.lexsort((gpu.sum(axis=1), -value))
    g, n_ = gpu[order], ng[order]
    k = len(order)
    dominated = np.zeros(k, dtype=bool)
    chunk = max(1, 4_000_000 // max(k * gpu.shape[1], 1))
    for a in range(0, k, chunk):
        b = min(a + chunk, k)
        le = np.all(g[None, :, :] <= g[a:b, None, :] + 1e-12, axis=2) & (n_[None, :] <= n_[a:b, None])
        earlier = np.arange(k)[None, :] < np.arange(a, b)[:, None]
        dominated[a:b] = np.any(le & earlier, axis=1)
    return order[~dominated]


def brute_force(inst: Instance, *, time_limit: float | None = None) -> tuple[float, Decision | None]:
    """The optimal objective and a plan (``-inf, None`` if infeasible): :func:`exact_optimum`."""
    return exact_optimum(inst, time_limit=time_limit)


def grid_enumeration(inst: Instance) -> tuple[float, Decision | None]:
    """The optimal objective and a plan by the edge-step grid (``-inf, None`` if infeasible).
    Only for instances of at most 10 users; slow beyond 5."""
    N, S = inst.n_users, inst.n_servers
    if N > _MAX_USERS:
        raise ValueError(f"grid_enumeration enumerates set partitions; use at most {_MAX_USERS} users")
    table = build_option_table(inst)
    wq, _, we = inst.weights
    sc = inst.scenario
    max_g = sc.max_groups if sc.max_groups is not None else N + 1
    budget = inst.budget_s
    ys = table.ys
    # every configuration of every block (subset of users), dominated ones dropped
    blocks: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, list]] = {}
    for mask in range(1, 1 << N):
        m = np.array([n for n in range(N) if mask >> n & 1])
        vals, gpus, ngs, items = [], [], [], []
        for s in range(S):
            for i, x in enumerate(table.xs):
                if i == 0 and (len(m) > 1 or not inst.allow_solo):
                    continue
                y_sets = [ys[table.feasible[n, s, i]] for n in m]
                if any(len(v) == 0 for v in y_sets):
                    continue
                grid = np.array(list(itertools.product(*y_sets)), dtype=int)  # (V, |M|)
                user_v = table.value0[m[None, :], s, i, grid].sum(axis=1)
                user_g = table.gpu[m[None, :], s, i, grid].sum(axis=1)
                if i == 0:
                    if np.any(inst.solo_quality[m] < inst.min_quality[m]):
                        continue
                    configs = [(-1, wq * inst.solo_quality[m].sum() + user_v, user_g, 0)]
                else:
                    K = grid.max(axis=1)
                    pub = x * inst.tau_pub[s] + inst.alpha[s] * K
                    configs = []
                    for p in range(inst.n_publics):
                        q = inst.quality(np.full(len(m), p), m, x)
                        if np.any(q < inst.min_quality[m]) or not inst.share_allowed[p, m].all():
                            continue
                        v = wq * q.sum() + user_v - we * inst.power_w[s] * pub
                        configs.append((p, v, user_g + pub, 1))
                for p, v, g1, ng in configs:
                    ok = (g1 <= budget[s] + 1e-9) & (ng <= max_g)
                    idx = np.flatnonzero(ok)
                    g = np.zeros((len(idx), S))
                    g[:, s] = g1[idx]
                    keep = idx[_pareto(v[idx], g, np.full(len(idx), ng))]
                    for k in keep:
                        gg = np.zeros(S)
                        gg[s] = g1[k]
                        vals.append(float(v[k]))
                        gpus.append(gg)
                        ngs.append(ng)
                        items.append((tuple(m.tolist()), p, s, int(x), tuple(grid[k].tolist())))
        if vals:
            v, g, n_ = np.array(vals), np.array(gpus), np.array(ngs)
            keep = _pareto(v, g, n_)
            blocks[mask] = (v[keep], g[keep], n_[keep], [items[k] for k in keep])
    # dynamic programming over subsets: F[mask] holds the non-dominated ways to cover mask,
    # each with a back-pointer (block mask, block config, rest config)
    F: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {
        0: (np.zeros(1), np.zeros((1, S)), np.zeros(1, dtype=int), np.zeros((1, 3), dtype=int))}
    full = (1 << N) - 1
    for mask in range(1, full + 1):
        low = mask & -mask
        rest_bits = mask ^ low
        parts = []
        sub = rest_bits
        while True:
            block = sub | low
            if block in blocks and (mask ^ block) in F:
                bv, bg, bn, _ = blocks[block]
                fv, fg, fn, _ = F[mask ^ block]
                v = (bv[:, None] + fv[None, :]).ravel()
                g = (bg[:, None, :] + fg[None, :, :]).reshape(-1, S)
                n_ = (bn[:, None] + fn[None, :]).ravel()
                ok = np.flatnonzero(np.all(g <= budget + 1e-9, axis=1) & (n_ <= max_g))
                a, b = np.divmod(ok, len(fv))
                ptr = np.stack([np.full(len(ok), block), a, b], axis=1)
                parts.append((v[ok], g[ok], n_[ok], ptr))
            if sub == 0:
                break
            sub = (sub - 1) & rest_bits
        if parts:
            v = np.concatenate([p_[0] for p_ in parts])
            g = np.concatenate([p_[1] for p_ in parts])
            n_ = np.concatenate([p_[2] for p_ in parts])
            ptr = np.concatenate([p_[3] for p_ in parts])
            keep = _pareto(v, g, n_)
            F[mask] = (v[keep], g[keep], n_[keep], ptr[keep])
    if full not in F or len(F[full][0]) == 0:
        return -math.inf, None
    fv = F[full][0]
    k = int(np.argmax(fv))
    best = float(fv[k])
    groups = []
    y = np.zeros(N, dtype=int)
    mask = full
    while mask:
        block, a, b = (int(t) for t in F[mask][3][k])
        members, p, s, x, yv = blocks[block][3][a]
        groups.append((s, p, x, list(members)))
        y[list(members)] = yv
        mask ^= block
        k = b
    return best, Decision.from_groups(groups, y, N)
