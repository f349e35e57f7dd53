"""A Lagrangian bound for large instances, lowered by coordinate descent on the user prices.

Dualising each user's "exactly one option" row (``pi_n``), each server class's pooled GPU budget
(``lam_k >= 0``) and ``max_groups`` (``mu >= 0``) leaves independent columns: for column
``(class k, public p, x)`` the best member set is every user with a positive

    r_n = w_q Q(p, n, x) + H_n(x) - pi_n,    H_n(x) = max_y (value0 - lam_k gpu)

and the column is worth ``V = sum_n max(0, r_n) - (w_e P + lam_k) x tau_pub - mu``. The launch
overhead ``alpha K`` is dropped (a cost, so dropping it keeps an upper bound). Then

    L = sum pi + sum_k lam_k B_k + mu G + sum_k m_k (sum_(p,x) max(0, V) + sum_n max(0, v0_n - pi_n))

bounds the optimum over the given (public, user) pairs for any such duals (``m_k`` servers of
class ``k`` with budgets summing to ``B_k``). It is used from the duals of a restricted LP, which
are often degenerate: exact minimisation over one ``pi_n`` at a time removes most of the excess.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ._instance import Instance
from ._options import OptionTable

__all__ = ["LagrangeResult", "coordinate_bound"]


@dataclass
class LagrangeResult:
    bound: float
    pi: np.ndarray
    lam: np.ndarray
    mu: float
    iterations: int
    seconds: float


def coordinate_bound(
    inst: Instance,
    table: OptionTable,
    classes: list[list[int]],
    *,
    pi0: np.ndarray,
    lam: np.ndarray,
    mu: float = 0.0,
    pair_mask: np.ndarray | None = None,
    sweeps: int = 20,
    time_limit: float = 30.0,
) -> LagrangeResult:
    """The Lagrangian bound of the module docstring, lowered by exact coordinate descent on the
    user prices at fixed budget prices ``lam`` (one per pooled server) and ``mu``.

    For fixed other prices, ``L`` as a function of ``pi_n`` falls with slope ``m_k`` below each
    breakpoint ``w_nc + min(0, V_c without n)`` (``w_nc`` the user's value in column ``c``) and
    below its solo value, and rises with slope 1 elsewhere; its minimiser is the largest
    breakpoint. Starting from degenerate LP duals this removes most of the pricing excess.
    """
    t0 = time.perf_counter()
    wq, _, we = inst.weights
    N, P, nk = inst.n_users, inst.n_publics, inst.n_servers
    m = np.array([len(c) for c in classes], dtype=float)
    gx = table.xs[1:]
    X = len(gx)
    max_g = inst.scenario.max_groups
    # w[n, k, p, i]: user n's value in column (k, p, x_i); solo value v0[n, k]
    q = inst.quality(np.arange(P)[None, :, None], np.arange(N)[:, None, None], gx[None, None, :])
    ok = q >= inst.min_quality[:, None, None]
    if pair_mask is not None:
        ok &= pair_mask.T[:, :, None]
    w = np.empty((N, nk, P, X))
    v0 = np.full((N, nk), -np.inf)
    cost = np.empty((nk, X))
    for k in range(nk):
        v = np.where(table.feasible[:, k], table.value0[:, k] - lam[k] * table.gpu[:, k], -np.inf)
        H = v.max(axis=2)
        w[:, k] = np.where(ok, wq * q + H[:, None, 1:], -np.inf)
        if inst.allow_solo:
            v0[:, k] = np.where(inst.solo_quality >= inst.min_quality,
                                H[:, 0] + wq * inst.solo_quality, -np.inf)
        cost[k] = (we * inst.power_w[k] + lam[k]) * gx * inst.tau_pub[k] + mu
    w = w.reshape(N, -1)
    mcol = np.repeat(m, P * X)
    costc = np.repeat(cost[:, None, :], P, axis=1).reshape(-1)
    pi = pi0.astype(float).copy()
    contrib = np.maximum(w - pi[:, None], 0.0)
    V = contrib.sum(axis=0) - costc
    base = float(np.dot(lam, inst.budget_s) + (mu * max_g if max_g is not None else 0.0))

    def value() -> float:
        solo = np.maximum(v0 - pi[:, None], 0.0) * m[None, :]
        return base + float(pi.sum()) + float(np.sum(mcol * np.maximum(V, 0.0))) + float(solo.sum())

    best = value()
    it = 0
    while it < sweeps:
        it += 1
        for n in range(N):
            wn = w[n]
            v_wo = V - contrib[n]
            b = wn + np.minimum(v_wo, 0.0)
            new = max(float(b.max()), float(v0[n].max()))
            if not np.isfinite(new):
                continue
            pi[n] = new
            cn = np.maximum(wn - new, 0.0)
            V = v_wo + cn
            contrib[n] = cn
        L = value()
        if best - 1e-9 * max(1.0, abs(best)) < L or time.perf_counter() - t0 > time_limit:
            best = min(best, L)
            break
        best = L
    return LagrangeResult(float(best), pi, np.asarray(lam, dtype=float), float(mu), it,
                          time.perf_counter() - t0)
