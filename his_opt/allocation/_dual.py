"""The Lagrangian bound with one price per server budget, at any size and server mix.

Dualise every server class's GPU budget with a price ``lam_k >= 0`` (and ``max_groups`` with a
price ``mu >= 0``) and drop the groups' launch overhead (a cost: the value can only rise). What
is left decomposes into facility-location choices: a column ``c = (public p, class k, x)`` costs
``f_c = (w_e P_k + lam_k) x tau_pub_k + mu`` to open, user ``n`` served by it is worth
``w_nc = w_q Q(p, n, x) + H_nk(x)`` with ``H_nk(x) = max_y (value0 - lam_k gpu)`` on class
``k``, and a solo user is worth ``v0_n = max_k (w_q Q_solo + H_nk(0))``. For ANY user prices
``pi`` the facility-location LP dual

    D(pi, lam, mu) = sum_k lam_k B_k + mu G + sum_n pi_n + sum_n (v0_n - pi_n)^+
                     + sum_c (sum_n (w_nc - pi_n)^+ - f_c)^+

bounds the optimum (weak duality), and ``D`` is jointly convex in ``(pi, lam, mu)``. The inner
minimisation over ``pi`` is Erlenkotter's dual ascent (all users at once, a column's slack shared
by the users still moving in it; the rounds run on the entries of the users still moving, since
most stop within a few dozen rounds), with subgradient polishing once at the best prices (on the
entries that can be positive near the current prices, re-selected whenever a price leaves
that margin, so every value is exact). The outer minimisation over the server prices starts
with a line search along the start prices (bracketed by factors of 1.5 while the value falls,
then golden section) and goes on with a trust-region bundle method: a cutting-plane model of
the evaluated points, minimised by an LP (HiGHS) inside a box around the best point, serious
steps when the true decrease reaches a share of the predicted one, the box shrinking
otherwise. The inner minimisation is inexact, so the values are noisy (by up to a few percent
between nearby prices) and the price subgradients biased: the search steers by values. The
reported bound is the smallest ``D`` (or ``D_L``) evaluated, which is valid whatever the
method's convergence.

The launch overhead: a group whose members run at most ``L`` edge steps pays ``alpha L`` of GPU
time (and its energy) once for the group. Once the price search ends, the polish finishes on
``D_L``, in which a column's term is ``(max_L (sum_n (w_ncL - pi_n)^+ - a_cL) - f_c)^+``
with ``w_ncL`` the user's best value with ``y <= L`` and ``a_cL = (lam_k + w_e P_k) alpha_k
L``: the value of the best group the column can open at those prices, overhead included, so
``D_L <= D`` and it is still an upper bound (1,000 users / 4 identical, same prices: 8154 ->
8136). It costs ``L`` values per entry, so it runs on the entries near the active ones only
(exact, as the polish), within ``max_launch_cells``; the price search keeps ``D``.

Servers of one class (equal figures and budgets) are pooled with their summed budget: a
relaxation, so the bound stays valid and the dual shrinks. Memory is planned: the entries
``(user, public, class, x)`` are capped by ``SolverSettings.max_dual_entries`` through the
number of public candidates each user keeps (its most similar ones and its own prompt); the
bound then covers exactly that restricted problem (the ``scope``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import linprog

from ._instance import Instance
from ._options import OptionTable
from ._settings import SolverSettings, TimeBudget

__all__ = ["Bound", "ServerDual", "dual_bound", "dual_top_k"]


@dataclass(frozen=True, eq=False)
class Bound:
    """An upper bound on the optimum of the problem described by ``scope``, with the prices
    (per server, and per group) at which it was found."""

    value: float
    scope: str
    method: str
    server_price: np.ndarray
    group_price: float = 0.0
    evaluations: int = 0
    seconds: float = 0.0


def dual_top_k(inst: Instance, n_classes: int, settings: SolverSettings) -> int:
    """Public candidates per user that keep the dual within ``max_dual_entries``."""
    per = inst.n_users * n_classes * len(inst.x_values)
    return int(min(inst.n_publics, settings.max_dual_entries // max(per, 1)))


@dataclass(frozen=True, eq=False)
class _LaunchEntries:
    """Entries with their value ``w`` and GPU time ``gpu`` per launch count (rows ``L``,
    columns the entries), sorted by column: ``cols`` the columns, ``start`` their first
    entry, ``col_of`` each entry's column position; ``cost`` / ``launch_t`` the overhead's
    price and seconds per column and ``L``."""

    en: np.ndarray
    w: np.ndarray
    gpu: np.ndarray
    e_class: np.ndarray
    cols: np.ndarray
    start: np.ndarray
    col_of: np.ndarray
    cost: np.ndarray
    launch_t: np.ndarray


class ServerDual:
    """``D`` of the module docstring for one instance, its classes and its allowed pairs.
    Call :meth:`evaluate` at server prices; it returns the bound and its price subgradient."""

    def __init__(self, inst: Instance, table: OptionTable, classes: list[list[int]],
                 pairs: tuple[np.ndarray, np.ndarray]) -> None:
        self.inst, self.table, self.classes = inst, table, classes
        self.rep = np.array([c[0] for c in classes])
        self.budget = np.array([float(inst.budget_s[c].sum()) for c in classes])
        pp, pn = pairs
        gx = table.xs[1:]
        q = inst.quality(pp[:, None], pn[:, None], gx[None, :])
        self.pp, self.pn, self.gx = pp, pn, gx
        self.wq_q = np.where(q >= inst.min_quality[pn][:, None], inst.weights[0] * q, -np.inf)
        self.n_cols = inst.n_publics * len(classes) * len(gx)

    # ---------------------------------------------------------------- entries at one price
    def _entries(self, lam: np.ndarray, mu: float) -> None:
        inst, tb = self.inst, self.table
        wq, _, we = inst.weights
        K, X = len(self.classes), len(self.gx)
        h = np.empty((inst.n_users, K, X + 1))
        g = np.empty((inst.n_users, K, X + 1))
        for k, s in enumerate(self.rep):
            v = np.where(tb.feasible[:, s], tb.value0[:, s] - lam[k] * tb.gpu[:, s], -np.inf)
            arg = v.argmax(axis=2)
            h[:, k] = np.take_along_axis(v, arg[:, :, None], axis=2)[:, :, 0]
            g[:, k] = np.take_along_axis(np.broadcast_to(tb.gpu[:, s], v.shape),
                                         arg[:, :, None], axis=2)[:, :, 0]
        solo_ok = inst.allow_solo & (inst.solo_quality >= inst.min_quality)
        sv = np.where(solo_ok[:, None], wq * inst.solo_quality[:, None] + h[:, :, 0], -np.inf)
        self.v0_class = sv.argmax(axis=1)
        self.v0 = sv.max(axis=1)
        self.v0_gpu = g[np.arange(inst.n_users), self.v0_class, 0]
        # entries (pair j, class k, x index i): value and GPU time of the user's best y
        w = self.wq_q[:, None, :] + h[self.pn][:, :, 1:]  # (J, K, X)
        keep = np.isfinite(w) & (w > self.v0[self.pn][:, None, None])
        j, k, i = np.nonzero(keep)
        en = self.pn[j]
        ec = (self.pp[j].astype(np.int64) * K + k) * X + i
        ew = w[j, k, i]
        eg = g[en, k, i + 1]
        order = np.lexsort((-ew, en))
        self.en, self.ec, self.ew, self.eg = en[order], ec[order], ew[order], eg[order]
        self.e_class = k[order]
        col_k = np.tile(np.repeat(np.arange(K), X), inst.n_publics)
        col_x = np.tile(self.gx, inst.n_publics * K)
        tp = inst.tau_pub[self.rep]
        pw = inst.power_w[self.rep]
        self.col_k, self.col_pub_t = col_k, col_x * tp[col_k]
        self.f = (we * pw[col_k] + lam[col_k]) * self.col_pub_t + mu
        self.starts = np.searchsorted(self.en, np.arange(inst.n_users))
        self.ends = np.searchsorted(self.en, np.arange(inst.n_users), side="right")
        self.lam, self.mu = lam, mu

    def _value(self, pi: np.ndarray, part: tuple[np.ndarray, ...] | None = None
               ) -> tuple[float, np.ndarray, np.ndarray, float]:
        """``D`` at ``pi`` and the current prices, its ``pi``-subgradient, its price
        subgradient (budget minus relaxed GPU use per class) and its ``mu``-subgradient.
        ``part``: the entries ``(en, ec, ew, eg, e_class)`` that can be positive at ``pi``
        (the others add nothing), for speed; all of them by default."""
        K = len(self.classes)
        en, ec, ew, eg, e_class = part or (self.en, self.ec, self.ew, self.eg, self.e_class)
        d = ew - pi[en]
        pos = d > 0
        s_c = np.bincount(ec, weights=np.where(pos, d, 0.0), minlength=self.n_cols)
        over = s_c > self.f
        val, solo_on, solo_use = self._outside_columns(pi)
        val += (s_c - self.f)[over].sum()
        act = pos & over[ec]
        g_pi = (1.0 - np.bincount(en, weights=act, minlength=self.inst.n_users) - solo_on)
        use = (np.bincount(self.col_k[over], weights=self.col_pub_t[over], minlength=K)
               + np.bincount(e_class[act], weights=eg[act], minlength=K) + solo_use)
        return float(val), g_pi, self.budget - use, float(self._groups() - over.sum())

    def _outside_columns(self, pi: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """The terms of ``D`` and ``D_L`` outside the columns: the prices' constant part, the
        users' prices and the solo users; which users go solo, and their GPU use per class."""
        solo_on = np.isfinite(self.v0) & (self.v0 > pi)
        val = (float(self.lam @ self.budget) + self.mu * self._groups() + float(pi.sum())
               + float((self.v0 - pi)[solo_on].sum()))
        use = np.bincount(self.v0_class[solo_on], weights=self.v0_gpu[solo_on],
                          minlength=len(self.classes))
        return val, solo_on, use

    def _near(self, pi: np.ndarray, margin: float) -> tuple[np.ndarray, ...]:
        """The entries that can be positive while no user price falls more than ``margin``
        below ``pi``."""
        keep = self.ew > pi[self.en] - margin
        return (self.en[keep], self.ec[keep], self.ew[keep], self.eg[keep], self.e_class[keep])

    def _near_launch(self, pi: np.ndarray, margin: float, max_cells: int
                     ) -> _LaunchEntries | None:
        """The entries near ``pi`` (as :meth:`_near`) with their best value and GPU time per
        launch count ``L`` (best ``y <= L``), grouped by column; None past ``max_cells``."""
        inst, tb = self.inst, self.table
        en, ec, ew, _, kk = self._near(pi, margin)
        if len(en) * len(tb.ys) > max_cells:
            return None
        order = np.argsort(ec, kind="stable")
        en, ec, ew, kk = en[order], ec[order], ew[order], kk[order]
        s, i = self.rep[kk], ec % len(self.gx) + 1
        v = np.where(tb.feasible[en, s, i],
                     tb.value0[en, s, i] - self.lam[kk][:, None] * tb.gpu[en, s, i], -np.inf)
        best = np.maximum.accumulate(v, axis=1)
        ybest = np.maximum.accumulate(np.where(v >= best, tb.ys[None, :], 0), axis=1)
        w = (ew - v.max(axis=1))[:, None] + best  # the quality part plus the best y <= L
        cols, start = np.unique(ec, return_index=True)
        ck = self.col_k[cols]
        rep = self.rep[ck]
        launch_t = inst.alpha[rep][:, None] * tb.ys[None, :]
        cost = (self.lam[ck] + inst.weights[2] * inst.power_w[rep])[:, None] * launch_t
        # launch-major (L, E): the per-column sums run along contiguous rows
        return _LaunchEntries(en=en, w=np.ascontiguousarray(w.T),
                              gpu=np.ascontiguousarray((inst.beta[s][:, None] * ybest).T),
                              e_class=kk, cols=cols, start=start,
                              col_of=np.repeat(np.arange(len(cols)),
                                               np.diff(np.append(start, len(en)))),
                              cost=cost, launch_t=launch_t)

    def _value_launch(self, pi: np.ndarray, part: _LaunchEntries
                      ) -> tuple[float, np.ndarray, np.ndarray, float]:
        """``D_L`` (module docstring) at ``pi`` and its subgradients, as :meth:`_value`;
        ``part`` must hold every entry that can be positive at ``pi``."""
        K = len(self.classes)
        n_users = self.inst.n_users
        d = part.w - pi[part.en][None, :]
        net = (np.add.reduceat(np.maximum(d, 0.0), part.start, axis=1).T if len(part.en)
               else np.zeros((0, d.shape[0]))) - part.cost
        launch = net.argmax(axis=1)
        col_val = net[np.arange(len(net)), launch] - self.f[part.cols]
        open_c = col_val > 0
        val, solo_on, solo_use = self._outside_columns(pi)
        val += col_val[open_c].sum()
        e_launch = launch[part.col_of]
        rows = np.arange(len(part.en))
        act = open_c[part.col_of] & (d[e_launch, rows] > 0)
        g_pi = 1.0 - np.bincount(part.en, weights=act, minlength=n_users) - solo_on
        ck = self.col_k[part.cols]
        oc = np.nonzero(open_c)[0]
        use = (np.bincount(ck[oc], weights=self.col_pub_t[part.cols[oc]]
                           + part.launch_t[oc, launch[oc]], minlength=K)
               + np.bincount(part.e_class[act], weights=part.gpu[e_launch, rows][act],
                             minlength=K) + solo_use)
        return float(val), g_pi, self.budget - use, float(self._groups() - len(oc))

    def _groups(self) -> float:
        cap = self.inst.scenario.max_groups
        return float(cap) if cap is not None else 0.0

    def _ascend(self, rounds: int, deadline: float) -> np.ndarray | None:
        """Dual ascent from every user's best value; None when a user has no option. Users
        stop one by one (most within a few dozen rounds), so the rounds run on the entries of
        the users still moving, the stopped ones' column sums kept fixed."""
        n_users = self.inst.n_users
        has = self.ends > self.starts
        last = max(len(self.ew) - 1, 0)
        top = np.where(has, self.ew[np.minimum(self.starts, last)] if len(self.ew) else -np.inf,
                       -np.inf)
        pi = np.maximum(top, self.v0)
        if not np.all(np.isfinite(pi)):
            return None
        if len(self.ew) == 0:
            return pi  # no column is worth more than going solo: pi = v0 is optimal
        moving = np.ones(n_users, dtype=bool)
        tol = 1e-9 * max(1.0, float(np.abs(pi).max()))
        fixed = np.zeros(self.n_cols)  # column sums of the users that stopped
        en, ec, ew = self.en, self.ec, self.ew
        starts, ends = self.starts, self.ends
        for _ in range(rounds):
            diff = ew - pi[en]
            act = diff > -tol
            s_c = fixed + np.bincount(ec, weights=np.maximum(diff, 0.0), minlength=self.n_cols)
            slack = np.maximum(self.f - s_c, 0.0)
            a_c = np.bincount(ec[act & moving[en]], minlength=self.n_cols)
            share = np.where(a_c > 0, slack / np.maximum(a_c, 1), np.inf)
            cap = np.where(act, share[ec], np.inf)
            top_w = max(len(ew) - 1, 0)
            idx = starts + np.bincount(en, weights=act, minlength=n_users).astype(np.int64)
            nxt = np.maximum(np.where(idx < ends, ew[np.minimum(idx, top_w)], -np.inf), self.v0)
            room = np.full(n_users, np.inf)
            live = ends > starts
            if len(cap):
                room[live] = np.minimum.reduceat(cap, starts[live])
            step = np.minimum(pi - nxt, room)
            step = np.where(moving & np.isfinite(step), np.maximum(step, 0.0), 0.0)
            moving &= step > tol
            if not moving.any() or time.perf_counter() > deadline:
                break
            pi = pi - step
            keep = moving[en]
            if 2 * int(keep.sum()) < len(en):  # compact: the stopped users' sums go fixed
                gone = ~keep
                fixed += np.bincount(ec[gone], weights=np.maximum(ew[gone] - pi[en[gone]], 0.0),
                                     minlength=self.n_cols)
                en, ec, ew = en[keep], ec[keep], ew[keep]
                starts = np.searchsorted(en, np.arange(n_users))
                ends = np.searchsorted(en, np.arange(n_users), side="right")
        return pi

    def _polish(self, pi: np.ndarray, target: float, settings: SolverSettings,
                deadline: float, launch: bool = False
                ) -> tuple[float, np.ndarray, np.ndarray, float]:
        """Subgradient steps on ``pi`` (Polyak step towards ``target``, halved on stalls) that
        lower ``D`` or, with ``launch``, ``D_L``; the best value, its prices and subgradients.
        The steps run on the entries near the active ones, re-selected whenever a price leaves
        the margin, so every value is exact. ``D_L`` keeps within ``max_launch_cells``: when
        its first selection would not fit, the result is ``D`` at ``pi``; when a later one
        would not (at the doubled margin, then at the margin), it ends at its best so far."""
        margin = max(settings.polish_margin * float(np.abs(pi).mean()), 1e-6)

        def select(p: np.ndarray, m: float) -> Any:
            return (self._near_launch(p, m, settings.max_launch_cells) if launch
                    else self._near(p, m))

        ref, part, since = pi, select(pi, margin), 0
        if part is None:
            return self._value(pi)

        def on_part(p: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, float]:
            return self._value_launch(p, part) if launch else self._value(p, part)

        def value(p: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, float] | None:
            nonlocal ref, part, margin, since
            since += 1
            if np.any(p < ref - margin):
                wider = 2 * margin if since < 10 else margin  # re-selecting often: wider
                fresh = select(p, wider)
                if fresh is None and wider > margin:
                    wider, fresh = margin, select(p, margin)
                if fresh is None:
                    return None  # past the cap: the best so far stands
                ref, part, since, margin = p, fresh, 0, wider
            return on_part(p)

        val, g_pi, g_lam, g_mu = on_part(pi)
        best = (val, pi, g_lam, g_mu)
        cur, theta, stall = pi, settings.polish_step, 0
        for _ in range(settings.polish_rounds):
            n2 = float(g_pi @ g_pi)
            if time.perf_counter() > deadline or theta < 1e-6 or n2 == 0.0:
                break
            cur = cur - theta * max(val - target, 1e-9 * max(1.0, abs(val))) / n2 * g_pi
            step = value(cur)
            if step is None:
                break
            val, g_pi, g_lam, g_mu = step
            if val < best[0] - 1e-12 * max(1.0, abs(best[0])):
                best, stall = (val, cur, g_lam, g_mu), 0
            else:
                stall += 1
                if stall > settings.polish_patience:
                    theta, stall = theta / 2, 0
                    cur = best[1]
                    step = value(cur)
                    if step is None:
                        break
                    val, g_pi, g_lam, g_mu = step
        return best

    def evaluate(self, lam: np.ndarray, mu: float, *, target: float, settings: SolverSettings,
                 deadline: float, polish: bool = False) -> tuple[float, np.ndarray, float]:
        """The bound at prices ``(lam, mu)`` (``inf`` if some user has no option) and its
        subgradients in ``lam`` and ``mu``; ``polish`` lowers it further by subgradient steps
        on the user prices (costly: done once, at the best prices)."""
        self._entries(np.asarray(lam, dtype=float), float(mu))
        pi = self._ascend(settings.ascent_rounds, deadline)
        if pi is None:
            return math.inf, np.zeros(len(self.classes)), 0.0
        if not polish:
            val, _, g_lam, g_mu = self._value(pi)
            return val, g_lam, g_mu
        if math.isfinite(target):
            tgt = target
        else:
            v = self._value(pi)[0]
            tgt = v - 0.01 * max(abs(v), 1.0)
        now = time.perf_counter()
        plain_end = now + (deadline - now) * (1.0 - settings.launch_polish_share)
        val, pi, g_lam, g_mu = self._polish(pi, tgt, settings, plain_end)
        tgt = max(tgt, val - settings.launch_polish_gap * max(abs(val), 1.0))
        finished = self._polish(pi, tgt, settings, deadline, launch=True)
        if finished[0] < val:
            val, _, g_lam, g_mu = finished
        return val, g_lam, g_mu


def _bundle_step(points: list[tuple[np.ndarray, float, np.ndarray]], center: np.ndarray,
                 center_value: float, radius: np.ndarray) -> tuple[np.ndarray, float]:
    """Minimise the cutting-plane model ``max_j D_j + g_j (z - z_j)`` over the box
    ``|z - center| <= radius``, ``z >= 0`` (an LP in ``(z, t)``); returns ``z`` and the model
    value there. The inner minimisation is inexact, so a cut may overestimate at the centre:
    such a cut is lowered until it passes through the centre's value (noise attenuation)."""
    dim = len(center)
    a_ub = np.array([np.concatenate([g, [-1.0]]) for _, _, g in points])
    at_center = np.array([v + g @ (center - z) for z, v, g in points])
    shift = np.maximum(at_center - center_value, 0.0)
    b_ub = np.array([g @ z - v for z, v, g in points]) + shift
    bounds = [(max(0.0, c - r), c + r) for c, r in zip(center, radius, strict=True)]
    bounds.append((None, None))
    res = linprog(np.concatenate([np.zeros(dim), [1.0]]), A_ub=a_ub, b_ub=b_ub, bounds=bounds,
                  method="highs")
    if res.status != 0:
        return center, math.inf
    return np.maximum(res.x[:dim], 0.0), float(res.x[dim])


def _line_search(oracle: Any, z0: np.ndarray, settings: SolverSettings, deadline: float,
                 grid_oracle: Any = None
                 ) -> tuple[np.ndarray, float, list[tuple[np.ndarray, float, np.ndarray]]]:
    """The best multiple ``t z0`` of the start prices (all at one level when ``z0`` is 0):
    bracketed by steps of ``line_search_factor`` from 1 while the value falls, within the range
    of ``price_grid`` (or, with ``grid_oracle``, a list of prices -> their values on Ray, the
    whole ``price_grid`` at once), then refined by a golden-section search; every point
    becomes a bundle cut. The values are those of an inexact inner minimisation, so only
    values steer the search: the price subgradients it returns are biased (too few columns
    open), not reliable signs."""
    base = z0 if np.any(z0 > 0) else np.ones_like(z0)
    points: list[tuple[np.ndarray, float, np.ndarray]] = []
    seen: dict[float, float] = {}

    def at(t: float) -> float:
        if t not in seen:
            v, g = oracle(base * t)
            seen[t] = v
            if math.isfinite(v):
                points.append((base * t, v, g))
        return seen[t]

    def late() -> bool:
        return time.perf_counter() > deadline and bool(seen)

    lo_t, hi_t = min(settings.price_grid), max(settings.price_grid)
    if grid_oracle is not None:
        grid = [float(t) for t in settings.price_grid]
        for t, (v, g) in zip(grid, grid_oracle([base * t for t in grid]), strict=True):
            seen[t] = v
            if math.isfinite(v):
                points.append((base * t, v, g))
    else:
        f = settings.line_search_factor
        at(1.0)
        step = f if late() or at(f) < at(1.0) else 1 / f
        t = 1.0
        while not late() and lo_t <= t * step <= hi_t and at(t * step) < at(t):
            t *= step
        if not late() and lo_t <= t * step <= hi_t:
            at(t * step)
    ts = sorted(seen)
    k = int(np.argmin([seen[t] for t in ts]))
    lo, hi = ts[max(k - 1, 0)], ts[min(k + 1, len(ts) - 1)]
    phi = (math.sqrt(5) - 1) / 2
    a, b = hi - phi * (hi - lo), lo + phi * (hi - lo)
    for _ in range(settings.golden_steps):
        if late() or hi - lo < 1e-3 * max(hi, 1e-9):
            break
        if at(a) <= at(b):  # the minimum lies in [lo, b], where the old a is the new b
            hi, b = b, a
            a = hi - phi * (hi - lo)
        else:
            lo, a = a, b
            b = lo + phi * (hi - lo)
    best_t = min(seen, key=seen.__getitem__)
    return base * best_t, seen[best_t], points


def dual_bound(dual: ServerDual, *, lam0: np.ndarray, target: float, scope: str,
               settings: SolverSettings, budget: TimeBudget, time_share: float,
               evaluator: Any = None) -> Bound:
    """Minimise ``D`` over the class prices (and ``mu``) by the trust-region bundle method of
    the module docstring, within ``time_share`` of the time left. ``evaluator`` (a
    :class:`~._distributed.RayPriceEvaluator` bound to ``dual``) runs the line search's grid
    of prices in parallel."""
    t0 = time.perf_counter()
    deadline = budget.deadline(time_share)
    inst, classes = dual.inst, dual.classes
    with_mu = inst.scenario.max_groups is not None
    z = np.concatenate([np.maximum(np.asarray(lam0, dtype=float), 0.0), [0.0] if with_mu else []])

    search_end = t0 + (deadline - t0) * settings.search_share

    def oracle(z: np.ndarray, polish: bool = False) -> tuple[float, np.ndarray]:
        lam, mu = z[: len(classes)], (z[-1] if with_mu else 0.0)
        # a search evaluation may run past the search's end (a truncated ascent gives a
        # useless value), never past half of what the bound has left
        left = deadline - time.perf_counter()
        each = max(left if polish else left / 2, 0.02)
        val, g_lam, g_mu = dual.evaluate(lam, mu, target=target, settings=settings,
                                         deadline=time.perf_counter() + each, polish=polish)
        return val, np.concatenate([g_lam, [g_mu] if with_mu else []])

    grid_oracle = None
    if evaluator is not None:
        def grid_oracle(zs: list[np.ndarray]) -> list[tuple[float, np.ndarray]]:
            return evaluator.map(zs, n_classes=len(classes), with_mu=with_mu, target=target,
                                 settings=settings, deadline=t0 + (search_end - t0) / 2)
    best_z, best_v, points = _line_search(oracle, z, settings, search_end, grid_oracle)
    evals = len(points)
    scale = max(float(np.abs(best_z).max()), 1e-3)
    radius = np.full(len(z), scale)
    for _ in range(settings.bundle_iterations if math.isfinite(best_v) else 0):
        if time.perf_counter() > search_end or radius.max() < 1e-3 * scale:
            break
        cand, model = _bundle_step(points, best_z, best_v, radius)
        predicted = best_v - model
        if not math.isfinite(model) or predicted <= 1e-9 * max(1.0, abs(best_v)):
            break
        if any(np.allclose(cand, zj, rtol=1e-6, atol=1e-9) for zj, _, _ in points):
            radius = radius * 0.5  # the model points at a price already evaluated
            continue
        v, g = oracle(cand)
        evals += 1
        if not math.isfinite(v):
            radius = radius * 0.5
            continue
        points.append((cand, v, g))
        if best_v - v >= settings.bundle_accept * predicted:
            best_z, best_v = cand, v
            radius = radius * 1.5
        else:
            radius = radius * 0.6
    if math.isfinite(best_v) and time.perf_counter() < deadline:
        polished, _ = oracle(best_z, polish=True)
        evals += 1
        best_v = min(best_v, polished)
    server_price = np.zeros(inst.n_servers)
    for k, cls in enumerate(classes):
        server_price[cls] = best_z[k]
    return Bound(value=float(best_v), scope=scope, method="lagrangian bundle",
                 server_price=server_price, group_price=float(best_z[-1]) if with_mu else 0.0,
                 evaluations=evals, seconds=time.perf_counter() - t0)
