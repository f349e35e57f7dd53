"""The LP bound of the compact model over every option, by pricing, and LP reduced-cost fixing.

The compact LP over all (public, user, server, x) options is large but almost all of it is
irrelevant. We solve it over a restricted option set (each user's few best publics per server and
``x``, plus the options of known plans) and then price every missing option with the LP duals:
a missing ``a_e`` has reduced cost ``d_e = wq Q_e + (terms of user n, server s, x)`` and its own
row ``a_e <= o_c`` gets the dual ``max(0, d_e)``; the column's ``o_c`` then has reduced cost
``d_o + sum_e max(0, d_e)``. With those duals the dual solution is feasible for the full LP, so

    bound = LP value + sum_c max(0, reduced cost of o_c)

is a valid upper bound of the full problem at every round (equal to the full LP optimum once no
column prices positive). Any solution using option ``e`` in column ``c`` is worth at most
``bound + min(0, d_e) + min(0, d_o)``: options whose bound falls below a known plan's objective
cannot be in a better plan and are removed (reduced-cost fixing). This is what leaves the exact
MILP small.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ._highs import solve_highs
from ._instance import Instance
from ._milp import CompactModel, build_compact_model
from ._options import OptionTable

__all__ = ["LPBound", "LPInfeasible", "LPTimeout", "lp_bound"]


class LPInfeasible(RuntimeError):
    """The LP relaxation is infeasible, so the instance is."""


class LPTimeout(RuntimeError):
    """The first LP did not finish in the time given."""


@dataclass(eq=False)
class LPBound:
    """A valid bound over ``universe`` options and what is needed to fix options against it:
    ``bound`` goes with the reduced costs of the last round, ``best_bound`` is the smallest bound
    of all rounds."""

    bound: float
    best_bound: float
    lp_value: float
    rounds: int
    seconds: float
    universe: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    option_rc: np.ndarray
    solo_rc: np.ndarray
    solo_ok: np.ndarray
    lp_options: int
    lp_x: np.ndarray
    model: CompactModel
    budget_price: np.ndarray
    user_price: np.ndarray
    group_price: float

    def survivors(self, lower: float) -> tuple[tuple[np.ndarray, ...], np.ndarray, int]:
        """Options (and solo options) that may still be in a plan better than ``lower``."""
        tol = 1e-7 * max(1.0, abs(lower))
        keep = self.bound + self.option_rc >= lower - tol
        opts = tuple(a[keep] for a in self.universe)
        solo = self.solo_ok & (self.bound + self.solo_rc >= lower - tol)
        return opts, solo, int(keep.sum())


def _restricted(
    universe: tuple[np.ndarray, ...], q: np.ndarray, n_keep: int, extra: np.ndarray
) -> np.ndarray:
    """Mask of the ``n_keep`` best-quality options per (user, server, x), plus ``extra``."""
    p, n, s, i = universe
    if len(p) == 0:
        return np.zeros(0, dtype=bool)
    key = (n.astype(np.int64) * (s.max() + 1) + s) * (i.max() + 1) + i
    order = np.lexsort((-q, key))
    ks = key[order]
    first = np.r_[True, ks[1:] != ks[:-1]]
    start = np.maximum.accumulate(np.where(first, np.arange(len(ks)), 0))
    rank = np.arange(len(ks)) - start
    keep = np.zeros(len(q), dtype=bool)
    keep[order[rank < n_keep]] = True
    return keep | extra


def lp_bound(
    inst: Instance,
    table: OptionTable,
    universe: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    *,
    include: np.ndarray | None = None,
    per_mode: int = 3,
    time_limit: float = 60.0,
    max_rounds: int = 20,
    max_add: int | None = None,
    rel_tol: float = 1e-7,
    solver: str = "simplex",
) -> LPBound:
    """Bound the compact model over ``universe`` options by restricted LP + pricing; see the
    module docstring. The LP starts from ``include`` (universe options), each user's best-quality
    option per (server, x) and, per (server, x), the ``per_mode`` publics of largest total
    quality; each round adds the priced options of violated columns (at most ``max_add``, the
    largest reduced costs first). Stops when the bound is within ``rel_tol`` of the LP value,
    after ``max_rounds`` or at ``time_limit``; the bound is valid at every round."""
    t0 = time.perf_counter()
    N, S = inst.n_users, inst.n_servers
    X = len(table.xs)
    T = inst.total_steps
    wq, wd, we = inst.weights
    up, un, us, ui = universe
    uq = inst.quality(up, un, table.xs[ui]) if len(up) else np.zeros(0)
    in_lp = _restricted(universe, uq, 1, include if include is not None
                        else np.zeros(len(up), dtype=bool))
    # plus, per (server, x), the publics with the largest total quality over all users
    sx = us.astype(np.int64) * X + ui
    tot = np.zeros((inst.n_publics, S * X))
    np.add.at(tot, (up, sx), uq)
    if per_mode > 0:
        best_p = np.argsort(-tot, axis=0)[:per_mode]  # (per_mode, S*X)
        top = np.zeros_like(tot, dtype=bool)
        np.put_along_axis(top, best_p, True, axis=0)
        in_lp |= top[up, sx]
    dev = wd * inst.device_step_s + we * inst.device_step_j
    ux = table.xs[ui]
    u_cost = wq * uq - wd * ux * inst.tau_pub[us] - (T - ux) * dev[un]
    u_j = (un.astype(np.int64) * S + us) * X + ui
    u_col = (up.astype(np.int64) * S + us) * X + ui
    cols_all, u_c = np.unique(u_col, return_inverse=True)
    cs, ci = (cols_all // X) % S, cols_all % X
    cx = table.xs[ci]
    open_gpu = cx * inst.tau_pub[cs]
    c_open = -we * inst.power_w[cs] * open_gpu
    rounds = 0
    best_bound = np.inf
    last = None
    while True:
        rounds += 1
        sel = np.flatnonzero(in_lp)
        model = build_compact_model(inst, table, tuple(a[sel] for a in universe), None,
                                    symmetry=False, phi_split=False)
        left = time_limit - (time.perf_counter() - t0)
        if left <= 0 and last is not None:
            break
        use = solver if solver != "auto" else ("simplex" if model.n_vars < 30_000 else "ipm")
        out = solve_highs(model.c, model.A, model.row_lo, model.row_hi, model.col_lo,
                          model.col_hi, None, time_limit=max(left, 0.05), offset=model.offset,
                          options=_LP_OPTIONS[use])
        if out.kind == "infeasible":
            raise LPInfeasible(out.message)
        if out.kind != "optimal" or out.row_dual is None:
            if last is not None:
                break
            raise LPTimeout(f"LP bound: {out.message}")
        rows = model.rows
        y = _signed_duals(out.row_dual, model.row_lo, model.row_hi)
        d = model.c - model.A.T @ y  # reduced costs of the LP's variables
        # reduced cost of every universe option, with its own a <= o row at dual 0
        jpos = np.searchsorted(model.j_codes, u_j)
        if np.any(model.j_codes[np.minimum(jpos, len(model.j_codes) - 1)] != u_j):
            raise RuntimeError("restricted LP misses a (user, server, x) mode")
        hi_cap = np.where(model.f_ok, model.hi_j - 1, model.hi_j)
        dual_j = -y[rows["yhi"]] * hi_cap
        has_lo = rows["ylo"] >= 0
        dual_j = dual_j + np.where(has_lo, y[np.maximum(rows["ylo"], 0)] * model.lo_j, 0.0)
        if "flink" in rows:
            has_f = rows["flink"] >= 0
            dual_j = dual_j - np.where(has_f, y[np.maximum(rows["flink"], 0)], 0.0)
        d0 = u_cost - y[rows["assign"]][un] - dual_j[jpos]
        if "dl" in rows:
            has_dl = rows["dl"][un] >= 0
            coef = ux * inst.tau_pub[us] + (T - ux) * inst.device_step_s[un]
            d0 = d0 - np.where(has_dl, y[np.maximum(rows["dl"][un], 0)] * coef, 0.0)
        lam = y[rows["budget"]]
        mu = float(y[rows["maxg"][0]]) if "maxg" in rows else 0.0
        # column reduced costs: the LP's own for its columns, plus the priced missing options
        e_univ = sel[model.e_src]  # universe index of each LP option
        d_open = c_open - lam[cs] * open_gpu - mu
        lp_key = (model.col_p.astype(np.int64) * S + model.col_s) * X + np.searchsorted(
            table.xs, model.col_x)
        lp_cols = np.searchsorted(cols_all, lp_key)
        d_open[lp_cols] = d[model.block("o")]
        eta = np.where(in_lp, 0.0, np.maximum(d0, 0.0))
        col_rc = d_open + np.bincount(u_c, weights=eta, minlength=len(cols_all))
        # Lagrangian (weak duality) value of these duals: rows, variables, columns
        row_term = np.where(y > 0, y * np.where(np.isfinite(model.row_hi), model.row_hi, 0.0),
                            y * np.where(np.isfinite(model.row_lo), model.row_lo, 0.0))
        var_term = np.maximum(d * model.col_lo, d * model.col_hi)
        var_term[model.block("o")] = 0.0
        bound = (model.offset + float(row_term.sum()) + float(var_term.sum())
                 + float(np.maximum(col_rc, 0.0).sum()))
        excess = np.maximum(col_rc, 0.0)
        best_bound = min(best_bound, bound)
        lp_value = out.objective
        # option reduced costs for fixing (duals of this round)
        opt_rc = np.minimum(d0, 0.0)
        opt_rc[e_univ] = np.minimum(d[model.block("a")], 0.0)
        opt_rc = opt_rc + np.minimum(col_rc, 0.0)[u_c]
        solo_rc = np.zeros((N, S))
        solo_ok = np.zeros((N, S), dtype=bool)
        solo_rc[model.solo_n, model.solo_s] = np.minimum(d[model.block("b")], 0.0)
        solo_ok[model.solo_n, model.solo_s] = True
        last = dict(bound=bound, lp_value=lp_value, option_rc=opt_rc, solo_rc=solo_rc,
                    solo_ok=solo_ok, lp_options=int(in_lp.sum()), lp_x=out.x, model=model,
                    budget_price=np.maximum(lam, 0.0), user_price=y[rows["assign"]].copy(),
                    group_price=max(mu, 0.0))
        tol = 1e-9 * max(1.0, abs(lp_value))
        viol = (excess > tol)[u_c] & ~in_lp & (d0 > 0)
        done = bound - lp_value <= rel_tol * max(1.0, abs(lp_value))
        if done or not viol.any() or rounds >= max_rounds or time.perf_counter() - t0 > time_limit:
            break
        if max_add is not None and viol.sum() > max_add:
            idx = np.flatnonzero(viol)
            viol = np.zeros_like(viol)
            viol[idx[np.argsort(-d0[idx])[:max_add]]] = True
        in_lp = in_lp | viol
    assert last is not None
    return LPBound(best_bound=float(best_bound), rounds=rounds,
                   seconds=time.perf_counter() - t0, universe=universe, **last)


_LP_OPTIONS = {
    "simplex": {"solver": "simplex"},
    "ipm": {"solver": "ipm", "run_crossover": "off"},
}


def _signed_duals(dual: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Row duals of the maximisation with the sign each row admits (>= 0 on rows bounded above
    only, <= 0 on rows bounded below only), so that weak duality holds exactly."""
    y = np.asarray(dual, dtype=float).copy()
    upper_only = np.isfinite(hi) & ~np.isfinite(lo)
    lower_only = np.isfinite(lo) & ~np.isfinite(hi)
    y[upper_only] = np.maximum(y[upper_only], 0.0)
    y[lower_only] = np.minimum(y[lower_only], 0.0)
    return y
