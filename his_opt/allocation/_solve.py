"""``solve``: the exact allocation, by LP bound + reduced-cost fixing + a small exact MILP.

Method ``"decompose"`` (the default through ``"auto"``):

1. Primal heuristics: the greedy grouping, a facility-location local search at an estimated GPU
   price (:func:`._heuristics.ufl_search`), each finished by the greedy edge/device split.
2. Bound: the compact model's LP over every option, solved over a restricted option set and
   priced (:mod:`._lpbound`); interchangeable servers (equal figures and budgets) are pooled into
   one server with their summed budget for this LP, a relaxation, so the bound stays valid. For
   large instances the LP's duals also seed a Lagrangian bound lowered by coordinate descent
   (:mod:`._lagrange`); the smaller of the two is kept.
3. Primal again: the LP solution rounded, and the facility search at the LP's GPU price.
4. Fixing: options whose LP reduced cost proves they cannot beat the incumbent are removed.
5. If few options survive (at most 20,000), the compact MILP (:mod:`._milp`) over them, warm
   started from the incumbent, solved by HiGHS to ``mip_gap`` or the time limit; its bound,
   capped by the LP bound, is the result's bound. Otherwise the LP/Lagrangian bound stands.

Method ``"milp"`` skips steps 2-4 and hands the full compact MILP (over the same option set) to
HiGHS (``backend="highs"``) or to cvxpy with ``solver=cp.HIGHS`` (``backend="cvxpy"``); it is
exact but slow beyond a few dozen users.

What the bound covers (``bound_scope``): every grouping, public choice, server, ``x`` and split
when the public candidates are not pruned. With ``top_k`` (automatic when the option set would
exceed 1.5 million, i.e. beyond about 100 users per server class) each user only considers its
``top_k`` most similar public candidates and its own prompt; heuristics, bound and plan then all
live in that restricted problem, and the bound covers exactly it. When fewer than 40 candidates
per user would remain (several thousand users), no bound is attempted: the plan comes from the
heuristics over every public candidate and ``bound`` is infinite.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from ._decision import Decision
from ._diagnose import diagnose
from ._evaluate import score_decision
from ._heuristics import assign_servers, greedy_grouping, round_lp, ufl_search
from ._highs import solve_highs
from ._instance import Instance
from ._lagrange import coordinate_bound
from ._lpbound import LPInfeasible, LPTimeout, lp_bound
from ._milp import all_options, build_compact_model
from ._options import OptionTable, build_option_table
from ._result import (
    FEASIBLE_GAP,
    INFEASIBLE,
    OPTIMAL,
    TIME_LIMIT,
    SolveResult,
    make_plan,
    relative_gap,
)
from ._split import greedy_split

__all__ = ["solve"]

_MAX_UNIVERSE = 1_500_000
_MAX_MILP_OPTIONS = 20_000
_MAX_FACILITY_CELLS = 20_000_000
_EXACT_USERS = 150
_MIN_AUTO_TOP_K = 40


def _coordinate_fits(inst: Instance) -> bool:
    return inst.n_users * inst.n_publics * inst.n_servers * len(inst.x_values) <= 30_000_000


def _pair_mask(inst: Instance, top_k: int | None) -> np.ndarray | None:
    if top_k is None or top_k >= inst.n_publics:
        return None
    idx = np.argpartition(-inst.sim, top_k - 1, axis=0)[:top_k]
    mask = np.zeros(inst.sim.shape, dtype=bool)
    np.put_along_axis(mask, idx, True, axis=0)
    own = inst.own_public >= 0
    mask[inst.own_public[own], np.flatnonzero(own)] = True
    return mask


def _central_publics(inst: Instance) -> np.ndarray | None:
    """Public candidates for the facility search when all of them would not fit: the ones with
    the largest summed positive similarity excess over the median (central prompts)."""
    cells = inst.n_publics * len(inst.x_values) * inst.n_users
    if cells <= _MAX_FACILITY_CELLS:
        return None
    keep = max(8, _MAX_FACILITY_CELLS // (len(inst.x_values) * inst.n_users))
    med = np.median(inst.sim, axis=0)
    score = np.maximum(inst.sim - med[None, :], 0.0).sum(axis=1)
    return np.sort(np.argsort(-score)[:keep])


def _price_guess(inst: Instance, table: OptionTable) -> np.ndarray:
    """A budget price per server: the value of moving one device step of a median user to the
    edge, per GPU second, when the budget is short (else 0)."""
    wd, we = inst.weights[1], inst.weights[2]
    d = float(np.median(inst.device_step_s))
    e = float(np.median(inst.device_step_j))
    gain = wd * (d - inst.tau_one) + we * (e - inst.power_w * inst.beta)
    need = inst.n_users * inst.scenario.edge_steps_max * inst.beta
    short = inst.budget_s < need / max(inst.n_servers, 1)
    return np.where(short, np.maximum(gain, 0.0) / np.maximum(inst.beta, 1e-12), 0.0)


def _auto_top_k(inst: Instance, n_lp_servers: int) -> int | None:
    per_public = inst.n_users * n_lp_servers * len(inst.x_values)
    if inst.n_publics * per_public <= _MAX_UNIVERSE:
        return None
    return max(4, _MAX_UNIVERSE // per_public)


def pooled_instance(inst: Instance) -> tuple[Instance, list[list[int]]]:
    """One server per class of interchangeable servers, with the class's summed budget."""
    classes = inst.servers_identical()
    if all(len(c) == 1 for c in classes):
        return inst, classes
    rep = np.array([c[0] for c in classes])
    servers = tuple(
        replace(inst.servers[c[0]], name=f"pool{k}", budget_s=float(inst.budget_s[c].sum()))
        for k, c in enumerate(classes)
    )
    pooled = replace(
        inst, servers=servers, tau_pub=inst.tau_pub[rep], tau_one=inst.tau_one[rep],
        alpha=inst.alpha[rep], beta_raw=inst.beta_raw[rep], beta=inst.beta[rep],
        batch_images=inst.batch_images[rep], power_w=inst.power_w[rep],
        budget_s=np.array([inst.budget_s[c].sum() for c in classes]),
    )
    return pooled, classes


def _unpool(inst: Instance, table: OptionTable, dec: Decision,
            classes: list[list[int]]) -> Decision | None:
    """Place a pooled plan's groups on the servers of each class and re-split."""
    if all(len(c) == 1 for c in classes):
        return dec
    dec = dec.compact()
    est = np.zeros(dec.n_groups)
    y_sum = np.bincount(dec.user_group, weights=dec.y, minlength=dec.n_groups)
    launch = np.zeros(dec.n_groups)
    np.maximum.at(launch, dec.user_group, dec.y)
    for g in range(dec.n_groups):
        k = int(dec.server[g])
        s = classes[k][0]
        pub = dec.x[g] * inst.tau_pub[s] if dec.public[g] >= 0 else 0.0
        est[g] = pub + inst.alpha[s] * launch[g] + inst.beta[s] * y_sum[g]
    server = np.zeros(dec.n_groups, dtype=int)
    for k, cls in enumerate(classes):
        gk = np.flatnonzero(dec.server == k)
        sub = replace(inst, budget_s=inst.budget_s[cls]) if len(cls) else inst
        pos = assign_servers(sub, est[gk])
        server[gk] = np.array(cls)[pos]
    placed = Decision(server, dec.public, dec.x, dec.user_group, dec.y)
    return greedy_split(inst, table, placed)


def _options_of(dec: Decision, table: OptionTable, universe: tuple[np.ndarray, ...],
                server_map: np.ndarray | None = None) -> np.ndarray:
    """Mask of universe options used by ``dec``."""
    up, un, us, ui = universe
    g = dec.user_group
    shared = dec.public[g] >= 0
    s = dec.server[g] if server_map is None else server_map[dec.server[g]]
    want = {(int(dec.public[g[n]]), n, int(s[n]), int(np.searchsorted(table.xs, dec.x[g[n]])))
            for n in np.flatnonzero(shared)}
    keys = zip(up.tolist(), un.tolist(), us.tolist(), ui.tolist(), strict=True)
    return np.fromiter((k in want for k in keys), dtype=bool, count=len(up))


def solve(
    instance: Instance,
    *,
    time_limit: float = 60.0,
    mip_gap: float = 1e-4,
    method: str = "auto",
    top_k: int | str | None = "auto",
    backend: str = "highs",
    random_state: int | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> SolveResult:
    """Find the best plan for ``instance``; see the module docstring.

    ``time_limit`` (s) bounds the whole call, ``mip_gap`` is the relative gap at which a plan is
    declared optimal. ``top_k``: ``"auto"`` keeps every public candidate unless the option set
    would exceed 1.5 million, ``None`` keeps all, an integer keeps each user's ``top_k`` most
    similar candidates (and its own prompt). ``random_state`` is accepted for API symmetry with
    the baselines; the solver is deterministic.
    """
    if method not in ("auto", "milp", "decompose"):
        raise ValueError(f"method must be 'auto', 'milp' or 'decompose', got {method!r}")
    if backend not in ("highs", "cvxpy"):
        raise ValueError(f"backend must be 'highs' or 'cvxpy', got {backend!r}")
    if time_limit <= 0 or not math.isfinite(time_limit):
        raise ValueError(f"time_limit must be positive and finite, got {time_limit}")
    if not 0 <= mip_gap < 1:
        raise ValueError(f"mip_gap must be in [0, 1), got {mip_gap}")
    del random_state
    t0 = time.perf_counter()
    inst = instance

    def left() -> float:
        return time_limit - (time.perf_counter() - t0)

    def note(event: str, **kw: Any) -> None:
        if progress is not None:
            progress({"event": event, "seconds": time.perf_counter() - t0, **kw})

    table = build_option_table(inst)
    lp_inst, classes = pooled_instance(inst)
    k = _auto_top_k(inst, lp_inst.n_servers) if top_k == "auto" else top_k
    if k is not None and (not isinstance(k, int) or k < 1):
        raise ValueError(f"top_k must be 'auto', None or a positive integer, got {top_k!r}")
    no_bound = top_k == "auto" and k is not None and k < _MIN_AUTO_TOP_K
    if no_bound:
        k = None  # too large for the LP bound: heuristics over every public, no bound
    mask = _pair_mask(inst, k)
    scope = ("none: too large for the LP bound (heuristic plan)" if no_bound
             else "all groupings, public prompts, servers, common steps and splits" if mask is None
             else f"public prompts within each user's top-{k} most similar candidates "
                  "(and its own prompt)")
    stats: dict[str, Any] = {"top_k": k, "users": inst.n_users, "publics": inst.n_publics,
                             "servers": inst.n_servers}
    notes: list[str] = []

    # 1. primal heuristics
    best: Decision | None = None
    best_obj = -math.inf

    def offer(dec: Decision | None, source: str) -> None:
        nonlocal best, best_obj
        if dec is None:
            return
        if mask is not None:
            p_u = dec.public[dec.user_group]
            shared = p_u >= 0
            if not np.all(mask[p_u[shared], np.flatnonzero(shared)]):
                return  # outside the pruned problem the bound covers
        cap = inst.scenario.max_groups
        if cap is not None:
            used = np.unique(dec.user_group)
            if int(np.sum(dec.x[used] >= 1)) > cap:
                return  # a heuristic overshot max_groups
        obj = score_decision(inst, dec).objective
        if obj > best_obj + 1e-12:
            best, best_obj = dec, obj
            note("incumbent", objective=obj, source=source)

    timing: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        now = time.perf_counter()
        timing[name] = timing.get(name, 0.0) + now - since
        return now

    t1 = time.perf_counter()
    offer(greedy_grouping(inst, table), "greedy")
    t1 = lap("greedy", t1)
    lp_table = table if lp_inst is inst else build_option_table(lp_inst)
    ufl_publics = _central_publics(inst)
    lam0 = _price_guess(lp_inst, lp_table)
    big = inst.n_users * inst.n_publics > 250_000
    for mult in (1.0,) if big else (1.0, 0.5, 2.0):
        found = ufl_search(lp_inst, lp_table, lam0 * mult, publics=ufl_publics, pair_mask=mask)
        if found is not None:
            offer(_unpool(inst, table, found, classes), "facility search")
    t1 = lap("facility search", t1)
    meth = "decompose" if method == "auto" else method
    bound = math.inf
    timed_out = False
    if meth == "milp":
        universe = all_options(inst, table, mask)
        model = build_compact_model(inst, table, universe)
        stats["milp_vars"] = model.n_vars
        warm = model.encode(best, inst.total_steps) if best is not None else None
        out = _run_milp(model, backend, left(), mip_gap, warm, progress)
        if out.kind == "infeasible" and best is None:
            return _infeasible(inst, table, t0, scope, meth, stats)
        if out.x is not None:
            offer(model.decode(out.x), "milp")
        bound = out.bound if math.isfinite(out.bound) else math.inf
        timed_out = out.kind == "time_limit"
        lap("milp", t1)
    elif no_bound:
        notes.append("too large for the LP bound (each user would keep fewer than "
                     f"{_MIN_AUTO_TOP_K} public candidates): heuristic plan, no bound")
        for mult in (0.8, 1.25):
            if left() <= 0:
                break
            found = ufl_search(lp_inst, lp_table, lam0 * mult, publics=ufl_publics)
            if found is not None:
                offer(_unpool(inst, table, found, classes), "facility search")
        t1 = lap("facility search", t1)
    else:
        universe = all_options(lp_inst, lp_table, mask)
        stats["options"] = len(universe[0])
        server_map = np.zeros(inst.n_servers, dtype=int)
        for ki, cls in enumerate(classes):
            server_map[cls] = ki
        include = _options_of(best, lp_table, universe, server_map) if best is not None else None
        t1 = lap("universe", t1)
        small = inst.n_users <= _EXACT_USERS
        try:
            lpb = lp_bound(lp_inst, lp_table, universe, include=include,
                           per_mode=3 if inst.n_users <= 2000 else 1,
                           max_add=None if small else 4 * inst.n_users,
                           rel_tol=1e-7 if small else 1e-4,
                           solver="simplex" if small else "auto",
                           time_limit=max(left() * 0.6, 0.1))
        except LPInfeasible:
            return _infeasible(inst, table, t0, scope, meth, stats)
        except LPTimeout:
            lpb = None
            notes.append("the LP bound did not finish in the time limit; no bound")
        t1 = lap("lp bound", t1)
        if lpb is not None and not small and _coordinate_fits(lp_inst):
            coord = coordinate_bound(lp_inst, lp_table, classes, pi0=lpb.user_price,
                                     lam=lpb.budget_price, mu=lpb.group_price, pair_mask=mask,
                                     time_limit=max(left() * 0.2, 0.1))
            stats["coordinate_bound"] = coord.bound
            bound = min(bound, coord.bound)
            t1 = lap("coordinate bound", t1)
        if lpb is not None:
            bound = min(bound, lpb.best_bound)
            stats.update(lp_rounds=lpb.rounds, lp_options=lpb.lp_options, lp_bound=lpb.best_bound)
            note("bound", bound=bound)
            rounded = round_lp(lp_inst, lp_table, lpb.model, lpb.lp_x)
            if rounded is not None:
                offer(_unpool(inst, table, rounded, classes), "lp rounding")
            lp_pubs = np.unique(lpb.model.col_p[lpb.lp_x[lpb.model.block("o")] > 1e-6])
            pubs = np.union1d(ufl_publics, lp_pubs) if ufl_publics is not None else None
            for mult in (1.0, 0.8) if big else (1.0, 0.8, 1.25, 0.6, 1.6):
                if left() <= 0:
                    break
                found = ufl_search(lp_inst, lp_table, lpb.budget_price * mult, publics=pubs,
                                   pair_mask=mask)
                if found is not None:
                    offer(_unpool(inst, table, found, classes), "facility search")
            t1 = lap("facility search", t1)
        if best is None:
            notes.append("no heuristic plan; the MILP starts without an incumbent")
        if lpb is None:
            timed_out = True
        else:
            lower = best_obj
            opts, solo, n_keep = lpb.survivors(lower)
            stats["options_after_fixing"] = n_keep
            opts, solo = _expand(opts, solo, classes, inst.n_servers)
            if len(opts[0]) <= _MAX_MILP_OPTIONS and left() > 0.5:
                model = build_compact_model(inst, table, opts, solo)
                stats["milp_vars"] = model.n_vars
                warm = model.encode(best, inst.total_steps) if best is not None else None
                t1 = lap("milp build", t1)
                out = _run_milp(model, "highs", left(), mip_gap, warm, progress)
                t1 = lap("milp", t1)
                if out.x is not None:
                    offer(model.decode(out.x), "reduced milp")
                if out.kind == "infeasible" and best is None:
                    return _infeasible(inst, table, t0, scope, meth, stats)
                if math.isfinite(out.bound):
                    bound = min(bound, max(out.bound, lower))
                elif out.kind == "infeasible":
                    bound = min(bound, lower)
                timed_out = out.kind == "time_limit"
            else:
                notes.append(f"{len(opts[0])} options survive fixing: too many for the exact "
                             "MILP in the time left; the bound is the LP bound")
                timed_out = left() <= 0.5
    stats["timing_s"] = {k: round(v, 3) for k, v in timing.items()}
    if best is None:
        return _infeasible(inst, table, t0, scope, meth, stats, timed_out=True)
    ev = score_decision(inst, best)
    bound = max(bound, ev.objective)
    gap = relative_gap(ev.objective, bound)
    if gap <= mip_gap + 1e-12:
        status = OPTIMAL
    elif timed_out or left() <= 0:
        status = TIME_LIMIT
    else:
        status = FEASIBLE_GAP
    elapsed = time.perf_counter() - t0
    res_kw = dict(status=status, objective=ev.objective, bound=bound, gap=gap,
                  solve_time_s=elapsed, bound_scope=scope, method=meth)
    plan = make_plan(inst, best, status={**res_kw, "diagnostics": notes},
                     provenance=_provenance(inst))
    names = inst.server_names
    return SolveResult(
        plan=plan,
        terms=ev.terms(),
        gpu_time_s=dict(zip(names, map(float, ev.gpu_time_s), strict=True)),
        gpu_time_simulated_s=dict(zip(names, map(float, ev.gpu_time_simulated_s), strict=True)),
        diagnostics=notes,
        stats=stats,
        **res_kw,
    )


def _expand(opts: tuple[np.ndarray, ...], solo: np.ndarray, classes: list[list[int]],
            n_servers: int) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """Map pooled-class options to every server of the class."""
    if all(len(c) == 1 for c in classes):
        return opts, solo
    p, n, k, i = opts
    parts = [[], [], [], []]
    solo_out = np.zeros((solo.shape[0], n_servers), dtype=bool)
    for ki, cls in enumerate(classes):
        m = k == ki
        for s in cls:
            parts[0].append(p[m])
            parts[1].append(n[m])
            parts[2].append(np.full(int(m.sum()), s))
            parts[3].append(i[m])
            solo_out[:, s] = solo[:, ki]
    return tuple(np.concatenate(a) for a in parts), solo_out


def _run_milp(model, backend: str, time_limit: float, mip_gap: float,  # noqa: ANN001
              warm: np.ndarray | None, progress: Callable | None):  # noqa: ANN202
    if backend == "cvxpy":
        from ._cvxpy import solve_cvxpy

        return solve_cvxpy(model, time_limit=max(time_limit, 0.05), mip_gap=mip_gap)
    return solve_highs(model.c, model.A, model.row_lo, model.row_hi, model.col_lo, model.col_hi,
                       model.integrality, time_limit=max(time_limit, 0.05), mip_gap=mip_gap,
                       offset=model.offset, start=warm, progress=progress)


def _infeasible(inst: Instance, table: OptionTable, t0: float, scope: str, meth: str,
                stats: dict[str, Any], timed_out: bool = False) -> SolveResult:
    reasons = diagnose(inst, table, time_limit=30.0)
    status = INFEASIBLE if reasons or not timed_out else TIME_LIMIT
    if not reasons:
        reasons = ["no plan was found within the time limit" if timed_out else
                   "no plan meets every constraint (no single cause found)"]
    return SolveResult(status=status, objective=-math.inf, bound=-math.inf if status == INFEASIBLE
                       else math.inf, gap=math.inf, solve_time_s=time.perf_counter() - t0,
                       bound_scope=scope, plan=None, method=meth, diagnostics=reasons,
                       stats=stats)


def _provenance(inst: Instance) -> dict[str, Any]:
    hiqm = inst.hiqm
    return {
        "optimizer": "his_opt.allocation",
        "hiqm": {"variant": getattr(hiqm, "variant", None), "form": getattr(hiqm, "form", None)},
        "servers": [{"name": s.name, "profile": getattr(s.profile, "name", None),
                     "kind": getattr(s.profile, "kind", None), "budget_s": s.budget_s}
                    for s in inst.servers],
        "publics": inst.n_publics,
    }
