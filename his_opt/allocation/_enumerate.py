"""Exact optimum of a small instance by enumeration that uses the cost structure (tests).

A block (a subset ``M`` of the users) on server ``s`` with ``x`` common steps costs GPU time
``x tau_s + alpha_s K + beta_s S`` with ``K = max y`` and ``S = sum y`` of its members, and every
other term splits per member or depends only on the public prompt. So:

* **Edge steps.** For every cap ``K`` and total ``S`` the best edge-step vector is a knapsack over
  the members: ``max sum value0[n, s, x, y_n]`` with ``y_n <= K`` feasible and ``sum y_n = S``,
  built for ``M`` from ``M`` less its highest member by one (max, +) convolution. Charging ``K``
  for a vector whose largest ``y`` is below ``K`` over-states its cost, so such an entry is never
  better than the same vector under its true maximum, which is also tabulated: the optimum over
  all ``(K, S)`` is exact and every entry is a real plan no better than it claims.
* **Public prompt.** Quality depends on the public only, so per ``(M, x)`` the best public is the
  one meeting every member's ``min_quality`` with the largest quality sum.
* **Blocks to plans.** Per server, a dynamic programme over subsets keeps the non-dominated ways
  (at most the GPU time, at least the value, per group count) to cover a subset by blocks on
  that server, within its budget; budgets are per server, so the servers are then combined by
  a second programme over (subset, groups) with plain maxima.
* **Two passes.** Unless the caller knows a plan's value, a first pass keeping a few entries per
  front finds a good plan; the exact pass then also drops partial plans whose Lagrangian bound
  (one GPU price for all servers, shared costs dropped) is below that value.
* **Identical servers** (same figures, budget and options) share one computation.

Only dominated configurations and partial plans that cannot reach a known plan's value are
discarded, so the optimum is exact; ``-inf, None`` means no
plan meets every constraint (budgets at ``1e-9`` s tolerance, as in :func:`check_feasible`'s
stricter reading). Semantics are those of :mod:`his_opt.allocation`: solo users (``x = 0``, one
member, ``alpha + beta`` per step) only when ``common_steps_min == 0``, ``max_groups`` counts
groups with a public prompt.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from ._decision import Decision
from ._instance import Instance
from ._options import OptionTable, build_option_table

__all__ = ["exact_optimum"]

_MAX_USERS = 12
_BUDGET_TOL = 1e-9
_GPU_TOL = 1e-12
_THIN = 6  # entries kept per front in the first, incumbent-finding pass
_LAMBDAS = np.concatenate([[0.0], np.geomspace(1e-3, 1e5, 81)])  # GPU prices tried for the cut


@dataclass
class _Front:
    """Non-dominated (GPU time ascending, value strictly ascending) entries and their payload."""

    gpu: np.ndarray
    value: np.ndarray
    payload: np.ndarray  # (k, w) int: what each entry is made of


class _Clock:
    def __init__(self, time_limit: float | None) -> None:
        if time_limit is not None and not time_limit > 0:
            raise ValueError(f"time_limit must be positive, got {time_limit}")
        self.limit = time_limit
        self.t0 = time.perf_counter()

    def check(self) -> None:
        if self.limit is not None and time.perf_counter() - self.t0 > self.limit:
            raise TimeoutError(f"exact_optimum did not finish within {self.limit} s")


def _pareto_1d(gpu: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Indices of the entries no other entry beats (<= GPU and >= value), GPU ascending."""
    if len(gpu) == 0:
        return np.zeros(0, dtype=int)
    order = np.argsort(gpu, kind="stable")
    v = value[order]
    prev = np.maximum.accumulate(np.concatenate([[-np.inf], v[:-1]]))
    keep = order[v > prev]
    # of kept entries with equal GPU time only the last (largest value) is not dominated
    g = gpu[keep]
    return keep[np.append(g[1:] != g[:-1], True)]


def _front(gpu: np.ndarray, value: np.ndarray, payload: np.ndarray, budget: float) -> _Front:
    ok = np.flatnonzero((gpu <= budget + _BUDGET_TOL) & np.isfinite(value))
    keep = ok[_pareto_1d(gpu[ok], value[ok])]
    return _Front(gpu[keep], value[keep], payload[keep])


def _prune_across_groups(fronts: dict[int, _Front]) -> dict[int, _Front]:
    """Drop entries beaten by an entry with fewer groups (<= GPU time, >= value)."""
    out: dict[int, _Front] = {}
    lower_g = np.zeros(0)
    lower_v = np.zeros(0)
    for ng in sorted(fronts):
        f = fronts[ng]
        if len(lower_g):
            pos = np.searchsorted(lower_g, f.gpu + _GPU_TOL, side="right") - 1
            best = np.where(pos >= 0, lower_v[np.maximum(pos, 0)], -np.inf)
            keep = f.value > best
            f = _Front(f.gpu[keep], f.value[keep], f.payload[keep])
        if len(f.gpu):
            out[ng] = f
            g = np.concatenate([lower_g, f.gpu])
            v = np.concatenate([lower_v, f.value])
            order = np.argsort(g, kind="stable")
            lower_g, lower_v = g[order], np.maximum.accumulate(v[order])
    return out


class _Enumerator:
    """State of one enumeration; see the module docstring for the steps."""

    def __init__(self, inst: Instance, clock: _Clock) -> None:
        self.inst = inst
        self.clock = clock
        self.table: OptionTable = build_option_table(inst)
        self.N = inst.n_users
        self.full = (1 << self.N) - 1
        sc = inst.scenario
        self.count_groups = sc.max_groups is not None
        self.max_g = min(sc.max_groups, self.N) if self.count_groups else 0
        self.G = self.max_g + 1
        self.ymax = len(self.table.ys) - 1
        self.gx = self.table.xs[1:]  # common-step values of groups
        self.popcount = np.array([bin(m).count("1") for m in range(self.full + 1)])
        self.highest = np.array([0] + [m.bit_length() - 1 for m in range(1, self.full + 1)])
        self._public_quality()
        self._knapsack_cache: dict[int, tuple[list[np.ndarray], np.ndarray]] = {}
        self._raw_blocks: dict[int, list[dict[int, _Front]]] = {}
        self.server_class = self._server_classes()
        self.thin: int | None = None
        self.lower = -math.inf
        self._lagrange_cut()

    def _server_classes(self) -> list[int]:
        """Per server, the first server with the same figures, budget and options: identical
        servers share their knapsacks, block fronts and subset programme (computed once)."""
        inst, t = self.inst, self.table
        first: dict[bytes, int] = {}
        out = []
        for s in range(inst.n_servers):
            key = b"".join(np.ascontiguousarray(a).tobytes() for a in (
                np.array([inst.tau_pub[s], inst.alpha[s], inst.beta[s], inst.beta_raw[s],
                          inst.power_w[s], inst.budget_s[s], inst.batch_images[s]], dtype=float),
                t.feasible[:, s], t.value0[:, s], t.gpu[:, s]))
            out.append(first.setdefault(key, s))
        return out

    # ---------------------------------------------------------------- pruning by a bound
    def _lagrange_cut(self) -> None:
        """A bound for pruning: with one GPU price ``lam`` on every server, any plan is worth at
        most ``sum_n u_n + lam * sum(budgets)``, where ``u_n`` is user ``n``'s best option value
        less ``lam`` times its own GPU time (its group's shared costs dropped, its quality at its
        own best public). A partial plan worth ``v`` using ``g`` GPU seconds on users ``M`` thus
        leads to at most ``v - lam g + rest[M] + lam sum(budgets)``, ``rest[M]`` the sum of
        ``u_n`` off ``M``. ``lam`` minimises the whole-instance bound over a grid."""
        inst, t = self.inst, self.table
        wq = inst.weights[0]
        solo_ok = inst.allow_solo & (inst.solo_quality >= inst.min_quality)
        cols = [np.where(solo_ok, wq * inst.solo_quality, -np.inf)[:, None]]
        if len(self.gx):
            q = inst.hiqm.predict(inst.sim[None, :, :], self.gx[:, None, None])  # (g, P, N)
            ok = (q >= inst.min_quality[None, None, :]) & inst.share_allowed[None]
            cols.append(np.where(ok, wq * q, -np.inf).max(axis=1).T)
        quality = np.concatenate(cols, axis=1)  # (N, len(xs))
        val = np.where(t.feasible, quality[:, None, :, None] + t.value0, -np.inf)
        val = val.reshape(self.N, -1)
        gpu = t.gpu.reshape(self.N, -1)
        self.budget_total = float(np.sum(inst.budget_s + _BUDGET_TOL))
        ubs = [np.max(val - lam * gpu, axis=1).sum() + lam * self.budget_total for lam in _LAMBDAS]
        k = int(np.argmin(ubs))
        self.lam = float(_LAMBDAS[k])
        u = np.max(val - self.lam * gpu, axis=1)
        inside = np.zeros(self.full + 1)
        for m in range(1, self.full + 1):
            n = self.highest[m]
            inside[m] = inside[m ^ (1 << n)] + u[n]
        self.rest = inside[self.full] - inside if np.all(np.isfinite(u)) else None

    def _reaches(self, gpu: np.ndarray, value: np.ndarray, m: int) -> np.ndarray:
        """Mask of partial plans covering ``m`` whose bound reaches ``self.lower``."""
        if self.rest is None or not math.isfinite(self.lower):
            return np.ones(len(gpu), dtype=bool)
        ub = value - self.lam * gpu + self.rest[m] + self.lam * self.budget_total
        return ub >= self.lower - 1e-9 * max(1.0, abs(self.lower))

    def _cut(self, fronts: dict[int, _Front], m: int) -> dict[int, _Front]:
        """Drop entries covering ``m`` that cannot reach ``self.lower``; thin them in the first
        pass; then drop entries beaten by one with fewer groups."""
        out: dict[int, _Front] = {}
        for ng, f in fronts.items():
            if self.rest is not None and math.isfinite(self.lower):
                keep = self._reaches(f.gpu, f.value, m)
                f = _Front(f.gpu[keep], f.value[keep], f.payload[keep])
            if self.thin is not None and len(f.gpu) > self.thin:
                idx = np.unique(np.linspace(0, len(f.gpu) - 1, self.thin).round().astype(int))
                f = _Front(f.gpu[idx], f.value[idx], f.payload[idx])
            if len(f.gpu):
                out[ng] = f
        return _prune_across_groups(out)

    # ---------------------------------------------------------------- public prompt per block
    def _public_quality(self) -> None:
        """``qbest[M, g]``: best weighted quality sum of block ``M`` at ``x = gx[g]`` over the
        publics meeting every member's ``min_quality`` (-inf if none), ``pbest`` its public."""
        inst = self.inst
        wq = inst.weights[0]
        n_gx, P = len(self.gx), inst.n_publics
        if n_gx == 0:
            self.qbest = np.full((self.full + 1, 0), -np.inf)
            self.pbest = np.zeros((self.full + 1, 0), dtype=int)
            return
        q = inst.hiqm.predict(inst.sim[None, :, :], self.gx[:, None, None])  # (g, P, N)
        ok = (q >= inst.min_quality[None, None, :]) & inst.share_allowed[None]
        qw = np.where(ok, wq * q, -np.inf)
        acc = np.zeros((self.full + 1, n_gx, P))
        for m in range(1, self.full + 1):
            n = self.highest[m]
            acc[m] = acc[m ^ (1 << n)] + qw[:, :, n]
        self.pbest = np.argmax(acc, axis=2)
        self.qbest = np.take_along_axis(acc, self.pbest[:, :, None], axis=2)[:, :, 0]
        self.qbest[0] = -np.inf

    # ---------------------------------------------------------------- blocks on one server
    def _knapsacks(self, s: int) -> tuple[list[np.ndarray], np.ndarray]:
        """Per block ``M``: ``val[M][g, K, S]`` best member value with ``y <= K``, ``sum y = S``
        (``S < |M| ymax + 1``), and the member values ``vm[n, g, K, y]`` it was built from (the
        edge steps behind an entry are recovered from them, see :meth:`_edge_steps`)."""
        t = self.table
        Y = self.ymax + 1
        n_gx = len(self.gx)
        caps = np.arange(Y)
        allowed = t.feasible[:, s, 1:, None, :] & (t.ys[None, None, None, :] <= caps[None, None, :, None])
        vm = np.where(allowed, t.value0[:, s, 1:, None, :], -np.inf)  # (N, g, K, y)
        empty = np.full((n_gx, Y, 1), -np.inf)
        empty[:, :, 0] = 0.0
        vals: list[np.ndarray] = [empty]
        for m in range(1, self.full + 1):
            if m & 0xFF == 0:
                self.clock.check()
            n = self.highest[m]
            parent = vals[m ^ (1 << n)]
            L = parent.shape[2]
            out = np.full((n_gx, Y, L + self.ymax), -np.inf)
            for y in range(Y):  # caps K >= y only: below, y is not allowed
                cur = out[:, y:, y:y + L]
                np.maximum(cur, parent[:, y:, :] + vm[n, :, y:, y, None], out=cur)
            vals.append(out)
        return vals, vm

    def _block_fronts(self, s: int, vals: list[np.ndarray]) -> list[dict[int, _Front]]:
        """Per block, per group count, the non-dominated configurations on server ``s``, cut
        by the current pass's bound and thinning (the uncut fronts are computed once)."""
        if s not in self._raw_blocks:
            self._raw_blocks[s] = self._raw_block_fronts(s, vals)
        raw = self._raw_blocks[s]
        return [{}] + [self._cut(raw[m], m) for m in range(1, self.full + 1)]

    def _raw_block_fronts(self, s: int, vals: list[np.ndarray]) -> list[dict[int, _Front]]:
        """Per block, per group count, the non-dominated configurations on server ``s``.
        Payload ``(g, K, S, p)``; a solo user has ``g = -1`` and ``y = S``."""
        inst, t = self.inst, self.table
        we = inst.weights[2]
        Y = self.ymax + 1
        caps = np.arange(Y)
        ng_group = 1 if self.count_groups else 0
        budget = float(inst.budget_s[s])
        out: list[dict[int, _Front]] = [{}]
        for m in range(1, self.full + 1):
            fronts: dict[int, _Front] = {}
            kn = vals[m]
            if len(self.gx):
                n_gx, _, L = kn.shape
                sums = np.arange(L)
                pub = self.gx[:, None, None] * inst.tau_pub[s] + inst.alpha[s] * caps[None, :, None]
                gpu = pub + inst.beta[s] * sums[None, None, :]
                value = self.qbest[m][:, None, None] + kn - we * inst.power_w[s] * pub
                gi, ki, si = np.meshgrid(np.arange(n_gx), caps, sums, indexing="ij")
                payload = np.stack([gi, ki, si, self.pbest[m][gi]], axis=-1).reshape(-1, 4)
                fronts[ng_group] = _front(np.broadcast_to(gpu, kn.shape).ravel(), value.ravel(),
                                          payload, budget)
            if self.popcount[m] == 1 and inst.allow_solo:
                n = self.highest[m]
                if not inst.solo_quality[n] < inst.min_quality[n]:
                    ok = t.feasible[n, s, 0]
                    value = np.where(ok, inst.weights[0] * inst.solo_quality[n] + t.value0[n, s, 0],
                                     -np.inf)
                    ys = t.ys
                    payload = np.stack([np.full(Y, -1), ys, ys, np.full(Y, -1)], axis=1)
                    solo = _front(t.gpu[n, s, 0].copy(), value, payload, budget)
                    fronts[0] = solo if 0 not in fronts else _merge([fronts[0], solo], budget)
            out.append(fronts)
        return out

    # ---------------------------------------------------------------- subsets on one server
    def _server_dp(self, s: int, blocks: list[dict[int, _Front]]) -> list[dict[int, _Front]]:
        """``H[M][ng]``: non-dominated ways to cover exactly ``M`` by ``ng`` groups on ``s``.
        Payload ``(block, ng_block, block entry, rest entry)``; the rest has ``ng - ng_block``."""
        budget = float(self.inst.budget_s[s])
        H: list[dict[int, _Front]] = [{0: _Front(np.zeros(1), np.zeros(1), np.zeros((1, 4), int))}]
        for m in range(1, self.full + 1):
            if m & 0x3F == 0:
                self.clock.check()
            low = m & -m
            rest_bits = m ^ low
            parts: dict[int, list[_Front]] = {}
            sub = rest_bits
            while True:
                block = sub | low
                rest = m ^ block
                for nb, bf in blocks[block].items():
                    for nr, rf in H[rest].items():
                        ng = nb + nr
                        if ng > self.max_g:
                            continue
                        a, b = _pairs_within(bf.gpu, rf.gpu, budget + _BUDGET_TOL)
                        gpu, value = bf.gpu[a] + rf.gpu[b], bf.value[a] + rf.value[b]
                        keep = self._reaches(gpu, value, m)
                        if not keep.any():
                            continue
                        a, b = a[keep], b[keep]
                        payload = np.stack([np.full(len(a), block), np.full(len(a), nb), a, b],
                                           axis=1)
                        parts.setdefault(ng, []).append(_Front(gpu[keep], value[keep], payload))
                if sub == 0:
                    break
                sub = (sub - 1) & rest_bits
            H.append(self._cut({ng: _merge(fs, budget) for ng, fs in parts.items()}, m))
        return H

    # ---------------------------------------------------------------- servers together
    def solve(self, *, thin: int | None = None, lower: float = -math.inf
              ) -> tuple[float, Decision | None]:
        """Best value and plan; ``thin``: keep at most that many entries per front (a feasible
        plan, not proven best); ``lower``: the value of a known plan, to prune by the bound."""
        self.thin, self.lower = thin, lower
        S = self.inst.n_servers
        M1 = self.full + 1
        per_server = []
        best = np.full((S, M1, self.G), -np.inf)
        for s in range(S):
            rep = self.server_class[s]
            if rep < s:
                per_server.append(per_server[rep])
                best[s] = best[rep]
                continue
            if s not in self._knapsack_cache:
                self._knapsack_cache[s] = self._knapsacks(s)
            vals, vm = self._knapsack_cache[s]
            blocks = self._block_fronts(s, vals)
            H = self._server_dp(s, blocks)
            for m in range(M1):
                for ng, f in H[m].items():
                    best[s, m, ng] = f.value[-1]
            per_server.append((vals, vm, blocks, H))
        # C[k][M, ng]: best value covering M with servers 0..k; choice[k]: server k's share
        C = best[0].copy()
        choices = []
        for k in range(1, S):
            self.clock.check()
            new = np.full_like(C, -np.inf)
            ch_sub = np.zeros((M1, self.G), dtype=int)
            ch_ng = np.zeros((M1, self.G), dtype=int)
            for m in range(M1):
                subs = _submasks(m)
                A, B = C[m ^ subs], best[k, subs]
                for ng1 in range(self.G):
                    cand = A[:, ng1, None] + B[:, : self.G - ng1]  # (nsub, ng2)
                    j = np.argmax(cand, axis=0)
                    v = cand[j, np.arange(self.G - ng1)]
                    tgt = new[m, ng1:]
                    better = v > tgt
                    idx = np.flatnonzero(better)
                    tgt[idx] = v[idx]
                    ch_sub[m, ng1 + idx] = subs[j[idx]]
                    ch_ng[m, ng1 + idx] = idx
            C = new
            choices.append((ch_sub, ch_ng))
        ng = int(np.argmax(C[self.full]))
        value = float(C[self.full, ng])
        if not math.isfinite(value):
            return -math.inf, None
        return value, self._decision(per_server, choices, ng)

    # ---------------------------------------------------------------- the plan behind it
    def _decision(self, per_server: list, choices: list, ng: int) -> Decision:
        share = {}
        m = self.full
        for k in range(len(choices), 0, -1):
            ch_sub, ch_ng = choices[k - 1]
            sub, ng2 = int(ch_sub[m, ng]), int(ch_ng[m, ng])
            share[k] = (sub, ng2)
            m ^= sub
            ng -= ng2
        share[0] = (m, ng)
        groups: list[tuple[int, int, int, list[int]]] = []
        y = np.zeros(self.N, dtype=int)
        for s, (mask, n_g) in share.items():
            vals, vm, blocks, H = per_server[s]
            if mask == 0:
                continue
            idx = len(H[mask][n_g].value) - 1
            while mask:
                block, nb, bi, ri = (int(v) for v in H[mask][n_g].payload[idx])
                g, K, tot, p = (int(v) for v in blocks[block][nb].payload[bi])
                members = [n for n in range(self.N) if block >> n & 1]
                if g < 0:
                    groups.append((s, -1, 0, members))
                    y[members[0]] = tot
                else:
                    groups.append((s, p, int(self.gx[g]), members))
                    self._edge_steps(vals, vm, block, g, K, tot, y)
                mask ^= block
                n_g -= nb
                idx = ri
        return Decision.from_groups(groups, y, self.N)

    def _edge_steps(self, vals: list[np.ndarray], vm: np.ndarray, block: int, g: int, K: int,
                    tot: int, y: np.ndarray) -> None:
        """The members' edge steps behind ``vals[block][g, K, tot]``: peel the highest member
        off, taking the ``y`` whose parent entry plus its own value reaches the entry."""
        m = block
        while m:
            n = self.highest[m]
            parent = vals[m ^ (1 << n)][g, K]
            ys = np.arange(min(K, tot) + 1)
            ys = ys[tot - ys < len(parent)]
            cand = parent[tot - ys] + vm[n, g, K, ys]
            y[n] = int(ys[int(np.argmax(cand))])
            tot -= y[n]
            m ^= 1 << n


def _pairs_within(g1: np.ndarray, g2: np.ndarray, cap: float) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs ``(a, b)`` with ``g1[a] + g2[b] <= cap``; ``g2`` ascending."""
    counts = np.searchsorted(g2, cap - g1, side="right")
    total = int(counts.sum())
    a = np.repeat(np.arange(len(g1)), counts)
    starts = np.cumsum(counts) - counts
    b = np.arange(total) - np.repeat(starts, counts)
    return a, b


def _merge(fronts: list[_Front], budget: float) -> _Front:
    return _front(np.concatenate([f.gpu for f in fronts]), np.concatenate([f.value for f in fronts]),
                  np.concatenate([f.payload for f in fronts]), budget)


def _submasks(m: int) -> np.ndarray:
    out = []
    sub = m
    while True:
        out.append(sub)
        if sub == 0:
            break
        sub = (sub - 1) & m
    return np.array(out, dtype=int)


def exact_optimum(inst: Instance, *, time_limit: float | None = None,
                  lower: float = -math.inf) -> tuple[float, Decision | None]:
    """The optimal objective and a plan (``-inf, None`` if no plan is feasible), by exact
    enumeration; for instances of at most 12 users. ``time_limit`` (s): raise ``TimeoutError``
    when it passes. ``lower``: the value of a known feasible plan, which prunes; then
    ``-inf, None`` means no plan is worth more than ``lower`` (up to a 1e-9 relative tolerance)."""
    if inst.n_users > _MAX_USERS:
        raise ValueError(f"exact_optimum enumerates subsets; use at most {_MAX_USERS} users")
    enum = _Enumerator(inst, _Clock(time_limit))
    if not math.isfinite(lower):  # no plan known: a thinned pass finds one to prune by
        lower, _ = enum.solve(thin=_THIN)
    return enum.solve(lower=lower)
