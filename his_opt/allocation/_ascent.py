"""A Lagrangian bound for large single-class instances, by facility-location dual ascent.

Dualise the GPU budget with a price ``lam >= 0`` and drop the launch overhead (a cost, so the
value can only rise). What is left is an uncapacitated facility-location problem: a column
``c = (public p, x)`` costs ``f_c = (w_e P + lam) x tau_pub`` to open, user ``n`` served by it is
worth ``w_nc = w_q Q(p, n, x) + H_n(x)`` with ``H_n(x) = max_y (value0 - lam gpu)``, and a solo
user is worth ``v0_n``. For any user prices ``pi_n >= v0_n`` with
``sum_n max(0, w_nc - pi_n) <= f_c`` for every column, ``lam B + sum_n pi_n`` bounds the
optimum (weak duality of the facility-location LP). Dual ascent (Erlenkotter's DUALOC, here
run for all users at once) starts every ``pi_n`` at the user's best value and lowers them in
rounds: each user steps down to its next breakpoint or until a column it serves runs out of
slack, the slack of a column being shared equally by the users still moving in it.

``lam`` is searched over the kinks of the users' ``H_n`` (where a best edge-step count
changes), which is where the bound's minimum lies, by a ternary search. Servers must be one
class of interchangeable servers (pooled into one); ``max_groups`` is not supported.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from ._heuristics import _user_value
from ._instance import Instance
from ._options import OptionTable

__all__ = ["AscentBound", "ascent_bound"]


@dataclass(frozen=True, eq=False)
class AscentBound:
    """``bound`` at budget price ``lam``, after ``evaluations`` dual ascents."""

    bound: float
    lam: float
    evaluations: int
    seconds: float
    pi: np.ndarray


class _Ascent:
    """The facility-location dual at one budget price: ``prepare`` tabulates the entries
    ``(user, column, value)``, ``ascend`` runs the dual ascent, ``value`` is the exact dual value
    of any prices (and a subgradient), ``polish`` lowers it by subgradient steps."""

    def __init__(self, inst: Instance, table: OptionTable, pp: np.ndarray, pn: np.ndarray,
                 q: np.ndarray, q_ok: np.ndarray) -> None:
        self.inst, self.table, self.pp, self.pn, self.q, self.q_ok = inst, table, pp, pn, q, q_ok

    def prepare(self, lam: float) -> None:
        inst, tb = self.inst, self.table
        wq, _, we = inst.weights
        gx = tb.xs[1:]
        n_x = len(gx)
        h = _user_value(inst, tb, 0, lam)  # (N, X + 1)
        solo_ok = inst.allow_solo & (inst.solo_quality >= inst.min_quality)
        v0 = np.where(solo_ok & np.isfinite(h[:, 0]), wq * inst.solo_quality + h[:, 0], -np.inf)
        w = wq * self.q + h[self.pn][:, 1:]
        keep = self.q_ok & np.isfinite(w) & (w > v0[self.pn][:, None])
        en = np.broadcast_to(self.pn[:, None], w.shape)[keep]
        ec = (self.pp[:, None] * n_x + np.arange(n_x)[None, :])[keep]
        ew = w[keep]
        order = np.lexsort((-ew, en))
        self.lam, self.v0 = lam, v0
        self.en, self.ec, self.ew = en[order], ec[order], ew[order]
        self.n_cols = inst.n_publics * n_x
        self.f = np.tile((we * inst.power_w[0] + lam) * gx * inst.tau_pub[0], inst.n_publics)
        n_users = inst.n_users
        self.starts = np.searchsorted(self.en, np.arange(n_users))
        self.ends = np.searchsorted(self.en, np.arange(n_users), side="right")

    def value(self, pi: np.ndarray) -> tuple[float, np.ndarray]:
        """The dual value of prices ``pi`` (an upper bound for any ``pi``) and a subgradient."""
        d = self.ew - pi[self.en]
        s_c = np.bincount(self.ec, weights=np.maximum(d, 0.0), minlength=self.n_cols)
        over = s_c > self.f
        fin = np.isfinite(self.v0)
        val = (self.lam * self.inst.budget_s[0] + pi.sum() + (s_c - self.f)[over].sum()
               + np.maximum(self.v0 - pi, 0.0)[fin].sum())
        grad = (1.0 - np.bincount(self.en, weights=(d > 0) & over[self.ec],
                                  minlength=self.inst.n_users) - (fin & (self.v0 > pi)))
        return float(val), grad

    def ascend(self, max_iter: int, deadline: float) -> np.ndarray | None:
        """Dual ascent from every user's best value; None when a user has no option."""
        en, ec, ew, v0 = self.en, self.ec, self.ew, self.v0
        starts, ends = self.starts, self.ends
        n_users, n_cols = self.inst.n_users, self.n_cols
        has = ends > starts
        last = max(len(ew) - 1, 0)
        top = np.where(has, ew[np.minimum(starts, last)], -np.inf)
        pi = np.maximum(top, v0)
        if not np.all(np.isfinite(pi)):
            return None
        moving = np.ones(n_users, dtype=bool)
        tol = 1e-9 * max(1.0, float(np.abs(pi).max()))
        for _ in range(max_iter):
            diff = ew - pi[en]
            act = diff > -tol  # serving, or about to serve once the user steps down
            s_c = np.bincount(ec, weights=np.maximum(diff, 0.0), minlength=n_cols)
            slack = np.maximum(self.f - s_c, 0.0)
            a_c = np.bincount(ec[act & moving[en]], minlength=n_cols)
            share = np.where(a_c > 0, slack / np.maximum(a_c, 1), np.inf)
            cap = np.where(act, share[ec], np.inf)
            idx = starts + np.bincount(en, weights=act, minlength=n_users).astype(np.int64)
            nxt = np.maximum(np.where(idx < ends, ew[np.minimum(idx, last)], -np.inf), v0)
            room = np.full(n_users, np.inf)
            if len(cap):
                room[has] = np.minimum.reduceat(cap, starts[has])
            step = np.minimum(pi - nxt, room)
            step = np.where(moving & np.isfinite(step), np.maximum(step, 0.0), 0.0)
            moving &= step > tol
            if not moving.any() or time.perf_counter() > deadline:
                break
            pi = pi - step
        return pi

    def polish(self, pi: np.ndarray, target: float, max_iter: int,
               deadline: float) -> tuple[float, np.ndarray]:
        """Subgradient steps (Polyak step towards ``target``, halved when the value stalls);
        returns the best value and prices seen."""
        best, grad = self.value(pi)
        best_pi, cur, theta, stall = pi, pi, 0.1, 0
        val = best
        for _ in range(max_iter):
            if time.perf_counter() > deadline or theta < 1e-6:
                break
            n2 = float(grad @ grad)
            if n2 == 0.0:
                break
            cur = cur - theta * max(val - target, 1e-9 * max(1.0, abs(val))) / n2 * grad
            val, grad = self.value(cur)
            if val < best - 1e-12 * max(1.0, abs(best)):
                best, best_pi, stall = val, cur, 0
            else:
                stall += 1
                if stall > 5:
                    theta, stall = theta / 2, 0
                    cur = best_pi
                    val, grad = self.value(cur)
        return best, best_pi


def _kinks(inst: Instance, table: OptionTable, lo: float, hi: float) -> np.ndarray:
    """Prices in ``[lo, hi]`` where some user's best edge-step count changes."""
    v = np.where(table.feasible[:, 0], table.value0[:, 0], np.nan)
    g = table.gpu[:, 0]
    dv = v[:, :, :, None] - v[:, :, None, :]
    dg = g[:, :, :, None] - g[:, :, None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        lam = dv / dg
    lam = lam[np.isfinite(lam) & (dg > 0) & (lam >= lo) & (lam <= hi)]
    return np.unique(np.round(lam, 10))


def ascent_bound(
    inst: Instance,
    table: OptionTable,
    *,
    pair_mask: np.ndarray | None = None,
    lam_guess: float,
    target: float,
    time_limit: float = 30.0,
    max_iter: int = 600,
    polish_iter: int = 400,
) -> AscentBound:
    """The bound of the module docstring, minimised over ``lam`` near ``lam_guess``, then
    lowered by subgradient steps aimed at ``target`` (a known plan's objective)."""
    if inst.n_servers != 1 or inst.scenario.max_groups is not None:
        raise ValueError("ascent_bound needs one (pooled) server and no max_groups")
    t0 = time.perf_counter()
    deadline = t0 + time_limit
    if pair_mask is None:
        pp, pn = np.divmod(np.arange(inst.n_publics * inst.n_users), inst.n_users)
    else:
        pp, pn = np.nonzero(pair_mask)
    gx = table.xs[1:]
    q = inst.quality(pp[:, None], pn[:, None], gx[None, :])
    asc = _Ascent(inst, table, pp, pn, q, q >= inst.min_quality[pn][:, None])
    cand = _kinks(inst, table, 0.0, 4.0 * lam_guess if lam_guess > 0 else np.inf)
    cand = np.unique(np.concatenate([[0.0], cand, [lam_guess]]))
    cache: dict[int, float] = {}
    prices: dict[int, np.ndarray] = {}
    ascent_deadline = t0 + 0.75 * time_limit

    def at(i: int) -> float:
        if i not in cache:
            asc.prepare(float(cand[i]))
            pi = asc.ascend(max_iter, ascent_deadline)
            cache[i] = np.inf if pi is None else asc.value(pi)[0]
            if pi is not None:
                prices[i] = pi
        return cache[i]

    lo, hi = 0, len(cand) - 1
    while hi - lo > 2 and time.perf_counter() < ascent_deadline:
        m1 = lo + (hi - lo) // 3
        m2 = hi - (hi - lo) // 3
        if at(m1) <= at(m2):
            hi = m2
        else:
            lo = m1
    for i in range(lo, hi + 1):
        if time.perf_counter() < ascent_deadline or not cache:
            at(i)
    best = min(cache, key=cache.__getitem__)
    bound = cache[best]
    evaluations = len(cache)
    if not math.isfinite(target):
        target = bound - 0.01 * abs(bound)
    if best in prices and np.isfinite(bound):
        asc.prepare(float(cand[best]))
        bound, pi = asc.polish(prices[best], target, polish_iter, deadline)
        prices[best] = pi
    return AscentBound(float(bound), float(cand[best]), evaluations,
                       time.perf_counter() - t0, prices.get(best, np.zeros(0)))
