"""``solve``: the exact allocation, by LP bound + reduced-cost fixing + a small exact MILP, and
a dual-ascent bound for large instances.

Method ``"decompose"`` (the default through ``"auto"``):

1. Primal heuristics: the greedy grouping, a facility-location local search at an estimated GPU
   price (:func:`._heuristics.ufl_search`), each finished by the greedy edge/device split. Servers
   that differ (several classes): the instance with every server merged into one at its largest
   cost figures is solved (small instances) or searched (large ones), its groups placed on the
   real servers, and a small MILP re-places the users over that plan's (public, x) pairs.
2. Bound, up to 150 users: the compact model's LP over every option, solved over a restricted
   option set and priced (:mod:`._lpbound`); interchangeable servers (equal figures and budgets)
   are pooled into one server with their summed budget, a relaxation, so the bound stays valid.
   Then the LP solution rounded, the facility search at the LP's GPU price, and reduced-cost
   fixing: options that cannot beat the incumbent are removed. If more than 20,000 options
   survive, neighbourhood MILPs (the options with the largest reduced costs, doubling) raise the
   incumbent until fixing leaves few enough. The compact MILP (:mod:`._milp`) over the survivors,
   warm started from the incumbent, is solved by HiGHS to ``mip_gap`` or the time limit, without
   sub-MIP heuristics or restarts (the incumbent is already good; proving is what is left); its bound,
   capped by the LP bound, is the result's bound.
3. Bound, above 150 users (no ``max_groups``): the facility-location dual ascent of
   :mod:`._ascent` on the pooled server (one class) or on all servers merged at their smallest
   cost figures (a relaxation), then the facility search at the bound's GPU price. No MILP.

Method ``"milp"`` skips steps 2-3 and hands the full compact MILP (over the same option set) to
HiGHS (``backend="highs"``) or to cvxpy with ``solver=cp.HIGHS`` (``backend="cvxpy"``); it is
exact but slow beyond a few dozen users.

What the bound covers (``bound_scope``): every grouping, public choice, server, ``x`` and split
when the public candidates are not pruned. With ``top_k`` (automatic when the option set on one
server would exceed 1.5 million, i.e. beyond about 100 users) each user only considers its
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

from ._ascent import ascent_bound
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
_MIN_NEIGHBOURHOOD = 4_000
# Proving a warm-started reduced MILP optimal: the incumbent is already (near) optimal, so
# HiGHS' sub-MIP heuristics (RINS, RENS) and root restarts mostly cost time (50 users: 3.5 s ->
# 0.9 s); the cheap heuristics stay on.
_PROOF_OPTIONS = {
    "mip_heuristic_run_rens": False,
    "mip_heuristic_run_rins": False,
    "mip_allow_restart": False,
}


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


def merged_instance(inst: Instance, *, optimistic: bool) -> Instance:
    """All servers merged into one with the summed budget. ``optimistic`` takes every cost
    figure at its smallest (and the largest batch), so any plan of ``inst`` is a plan of the
    merged instance worth at least as much: its optimum bounds ``inst``'s. Otherwise every
    figure is at its largest (a merged plan placed on real servers costs no more than modelled,
    which makes it a good start for a plan)."""
    pick = np.min if optimistic else np.max
    s0 = int(np.argmin(inst.beta) if optimistic else np.argmax(inst.beta))
    one = (replace(inst.servers[s0], name="merged", budget_s=float(inst.budget_s.sum())),)

    def f(a: np.ndarray) -> np.ndarray:
        return np.array([pick(a)])

    return replace(
        inst, servers=one, tau_pub=f(inst.tau_pub), tau_one=f(inst.tau_one), alpha=f(inst.alpha),
        beta_raw=f(inst.beta_raw), beta=f(inst.beta), power_w=f(inst.power_w),
        batch_images=np.array([(np.max if optimistic else np.min)(inst.batch_images)]),
        budget_s=np.array([float(inst.budget_s.sum())]),
    )


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
    meth = "decompose" if method == "auto" else method
    # large instances are bounded on one (pooled or merged) server by dual ascent
    large = (meth == "decompose" and inst.n_users > _EXACT_USERS
             and inst.scenario.max_groups is None)
    k = _auto_top_k(inst, 1 if large else lp_inst.n_servers) if top_k == "auto" else top_k
    if k is not None and (not isinstance(k, int) or k < 1):
        raise ValueError(f"top_k must be 'auto', None or a positive integer, got {top_k!r}")
    no_bound = top_k == "auto" and k is not None and k < _MIN_AUTO_TOP_K
    if no_bound:
        k = None  # too large for a bound: heuristics over every public, no bound
    mask = _pair_mask(inst, k)
    scope = ("none: too large for a bound (heuristic plan)" if no_bound
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
    # The facility search plans on one server per class; with several large classes it plans
    # on all servers merged at their largest costs and places the groups afterwards.
    if large and len(classes) > 1:
        f_inst = merged_instance(inst, optimistic=False)
        f_table, f_classes = build_option_table(f_inst), [list(range(inst.n_servers))]
    else:
        f_inst, f_table, f_classes = lp_inst, lp_table, classes
    ufl_publics = _central_publics(inst)
    lam0 = _price_guess(f_inst, f_table)
    big = inst.n_users * inst.n_publics > 250_000
    for mult in (1.0,) if big else (1.0, 0.5, 2.0):
        found = ufl_search(f_inst, f_table, lam0 * mult, publics=ufl_publics, pair_mask=mask,
                           deadline=time.perf_counter() + left() * 0.3)
        if found is not None:
            offer(_unpool(inst, table, found, f_classes), "facility search")
    t1 = lap("facility search", t1)
    bound = math.inf
    timed_out = False
    if meth == "decompose" and len(classes) > 1 and not large and not no_bound:
        # Servers that differ: solve the instance with every server merged into one (its
        # largest cost figures) and place the plan's groups on the real servers.
        merged = merged_instance(inst, optimistic=False)
        sub = solve(merged, time_limit=max(min(left() * 0.2, 0.1 * time_limit), 0.1),
                    mip_gap=mip_gap, top_k=k)
        if sub.plan is not None:
            offer(_unpool(inst, table, sub.plan.to_decision(merged),
                          [list(range(inst.n_servers))]), "merged servers")
        t1 = lap("merged servers", t1)
    if meth == "decompose" and len(classes) > 1 and best is not None and left() > 1.0:
        offer(_column_milp(inst, table, best, mask, min(left() * 0.2, 0.1 * time_limit), mip_gap),
              "re-placement milp")
        t1 = lap("re-placement milp", t1)
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
        notes.append("too large for a bound (each user would keep fewer than "
                     f"{_MIN_AUTO_TOP_K} public candidates): heuristic plan, no bound")
        for mult in (0.8, 1.25):
            if left() <= 0:
                break
            found = ufl_search(f_inst, f_table, lam0 * mult, publics=ufl_publics,
                               deadline=time.perf_counter() + left() * 0.5)
            if found is not None:
                offer(_unpool(inst, table, found, f_classes), "facility search")
        t1 = lap("facility search", t1)
    elif large:
        # Large: the facility-location dual ascent bound (seconds where the LP takes minutes)
        # on the pooled server, or on all servers merged at their smallest costs when they
        # differ (a relaxation); then the facility search at the bound's budget price.
        if len(classes) == 1:
            b_inst, b_table = lp_inst, lp_table
        else:
            b_inst = merged_instance(inst, optimistic=True)
            b_table = build_option_table(b_inst)
        asc = ascent_bound(b_inst, b_table, pair_mask=mask,
                           lam_guess=float(_price_guess(b_inst, b_table)[0]),
                           target=best_obj, time_limit=max(left() * 0.6, 0.1))
        bound = min(bound, asc.bound)
        stats.update(ascent_bound=asc.bound, ascent_price=asc.lam,
                     ascent_evaluations=asc.evaluations)
        note("bound", bound=bound)
        t1 = lap("ascent bound", t1)
        for mult in (1.0, 0.99, 1.01):
            if left() <= 1.0:
                break
            found = ufl_search(f_inst, f_table, np.full(f_inst.n_servers, asc.lam * mult),
                               publics=ufl_publics, pair_mask=mask,
                               deadline=time.perf_counter() + left() * 0.5)
            if found is not None:
                offer(_unpool(inst, table, found, f_classes), "facility search")
        t1 = lap("facility search", t1)
        timed_out = left() <= 0
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
                                   pair_mask=mask, deadline=time.perf_counter() + left() * 0.3)
                if found is not None:
                    offer(_unpool(inst, table, found, classes), "facility search")
            t1 = lap("facility search", t1)
        if best is None:
            notes.append("no heuristic plan; the MILP starts without an incumbent")
        if lpb is None:
            timed_out = True
        else:
            expand = max(len(c) for c in classes)
            opts, solo, n_keep = lpb.survivors(best_obj)
            size = max(_MIN_NEIGHBOURHOOD, 4 * inst.n_users) // expand
            while (n_keep * expand > _MAX_MILP_OPTIONS and left() > 1.0 and best is not None
                   and size <= n_keep):
                # Neighbourhood MILP: the options closest to the LP optimum (largest reduced
                # costs) plus the incumbent's; exact over that restriction, so its plan is
                # feasible, and a better incumbent lets fixing remove more. The neighbourhood
                # doubles each round until the survivors fit the exact MILP or time runs out.
                order = np.argsort(-lpb.option_rc, kind="stable")[:size]
                near = np.zeros(len(lpb.option_rc), dtype=bool)
                near[order] = True
                near |= _options_of(best, lp_table, universe, server_map)
                n_opts, n_solo = _expand(tuple(a[near] for a in universe), lpb.solo_ok,
                                         classes, inst.n_servers)
                model = build_compact_model(inst, table, n_opts, n_solo)
                warm = model.encode(best, inst.total_steps)
                last = 2 * size > min(n_keep, _MAX_MILP_OPTIONS // expand)
                budget = left() - 0.5 if last else min(left() * 0.4, max(2.0, 0.15 * time_limit))
                out = _run_milp(model, "highs", budget, mip_gap, warm, progress)
                if out.x is not None:
                    offer(model.decode(out.x), "neighbourhood milp")
                stats["neighbourhood_options"] = int(near.sum())
                opts, solo, n_keep = lpb.survivors(best_obj)
                size *= 2
            t1 = lap("neighbourhood milp", t1)
            lower = best_obj
            stats["options_after_fixing"] = n_keep
            opts, solo = _expand(opts, solo, classes, inst.n_servers)
            if len(opts[0]) <= _MAX_MILP_OPTIONS and left() > 0.5:
                model = build_compact_model(inst, table, opts, solo)
                stats["milp_vars"] = model.n_vars
                warm = model.encode(best, inst.total_steps) if best is not None else None
                t1 = lap("milp build", t1)
                out = _run_milp(model, "highs", left(), mip_gap, warm, progress,
                                options=_PROOF_OPTIONS if warm is not None else None)
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


def _column_milp(inst: Instance, table: OptionTable, dec: Decision, mask: np.ndarray | None,
                 time_limit: float, mip_gap: float) -> Decision | None:
    """Re-optimise ``dec`` over its own (public, x) pairs: every user may join any of them on
    any server, or go solo; an exact MILP over that restriction, warm started from ``dec``
    (None when the restriction is too large or ``dec`` shares nothing)."""
    used = np.unique(dec.user_group)
    shared = used[dec.public[used] >= 0]
    pairs = {(int(dec.public[g]), int(np.searchsorted(table.xs, dec.x[g]))) for g in shared}
    if not pairs:
        return None
    N, S = inst.n_users, inst.n_servers
    if len(pairs) * N * S > _MAX_MILP_OPTIONS:
        return None
    pp = np.array([p for p, _ in pairs])
    pi = np.array([i for _, i in pairs])
    p_, n_, s_ = (a.ravel() for a in np.meshgrid(np.arange(len(pp)), np.arange(N), np.arange(S),
                                                  indexing="ij"))
    p, i = pp[p_], pi[p_]
    ok = table.any_y[n_, s_, i] & (inst.quality(p, n_, table.xs[i]) >= inst.min_quality[n_])
    if mask is not None:
        ok &= mask[p, n_]
    model = build_compact_model(inst, table, (p[ok], n_[ok], s_[ok], i[ok]))
    warm = model.encode(dec, inst.total_steps)
    out = _run_milp(model, "highs", time_limit, mip_gap, warm, None)
    return model.decode(out.x) if out.x is not None else None


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
              warm: np.ndarray | None, progress: Callable | None,
              options: dict[str, Any] | None = None):  # noqa: ANN202
    if backend == "cvxpy":
        from ._cvxpy import solve_cvxpy

        return solve_cvxpy(model, time_limit=max(time_limit, 0.05), mip_gap=mip_gap)
    return solve_highs(model.c, model.A, model.row_lo, model.row_hi, model.col_lo, model.col_hi,
                       model.integrality, time_limit=max(time_limit, 0.05), mip_gap=mip_gap,
                       offset=model.offset, start=warm, progress=progress, options=options)


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
