"""The exact steps: the LP bound with reduced-cost fixing and the reduced MILP proof (up to
``exact_users`` users), the full compact MILP (``method="milp"``), and the structured
enumeration of tiny instances. This is the only place a MILP backend is chosen.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from ._decision import Decision
from ._dual import Bound
from ._enumerate import exact_optimum
from ._heuristics import round_lp
from ._highs import solve_highs
from ._incumbent import Incumbent
from ._instance import Instance
from ._knapsack_dual import KnapsackDual, column_generation, pattern_plan, plan_patterns
from ._lpbound import LPInfeasible, LPTimeout, lp_bound
from ._milp import all_options, build_compact_model
from ._options import OptionTable, build_option_table
from ._primal import column_milp, dense_search, place_groups
from ._result import relative_gap
from ._settings import SolverSettings, TimeBudget
from ._split import optimal_split
from ._strategy import Strategy

__all__ = ["Proof", "enumerate_route", "lp_route", "merged_instance", "milp_route",
           "pooled_instance"]


class Proof:
    """What an exact step established: a bound (``inf``: none), whether it ran out of time,
    whether it proved the instance infeasible, and notes for the result."""

    def __init__(self) -> None:
        self.bound = math.inf
        self.timed_out = False
        self.infeasible = False
        self.prices: np.ndarray | None = None
        self.notes: list[str] = []
        self.scope: str | None = None  # the bound's scope, when a step changed it


def pooled_budgets(inst: Instance, classes: list[list[int]]) -> np.ndarray:
    """Each class's budget in GPU seconds of its smallest figures: server ``s`` adds
    ``B_s / r_s``, with ``r_s >= 1`` the smallest ratio of its cost figures (``tau_pub``,
    ``alpha``, ``beta``) to the class's smallest. Any work costs ``C_s >= r_s C_min`` on ``s``,
    so what fits ``B_s`` there fits ``B_s / r_s`` at the smallest figures: the pooled budget
    stays a relaxation, and a slow server no longer counts as a fast one (16 servers of two
    profiles with ``beta`` 0.13 / 0.33 s pooled into one: 10,141 -> 7,528 s)."""
    out = np.zeros(len(classes))
    for k, c in enumerate(classes):
        figs = np.stack([inst.tau_pub[c], inst.alpha[c], inst.beta[c]])  # (3, |c|)
        low = figs.min(axis=1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(low > 0, figs / np.where(low > 0, low, 1.0), np.inf)
        r = ratio.min(axis=0)
        r = np.where(np.isfinite(r), np.maximum(r, 1.0), 1.0)  # every figure 0: unscaled
        out[k] = float(np.sum(inst.budget_s[c] / r))
    return out


def pooled_instance(inst: Instance, classes: list[list[int]]) -> Instance:
    """One server per class with every cost figure at the class's smallest (its largest batch
    cap) and the class's budget counted at those figures (:func:`pooled_budgets`): a
    relaxation, since any plan of ``inst`` is a plan of the pooled instance worth at least as
    much. Exact pooling for classes of interchangeable servers; a looser one for servers that
    differ in profile, budget or cap."""
    if all(len(c) == 1 for c in classes):
        return inst
    budgets = pooled_budgets(inst, classes)
    rep = [c[int(np.argmin(inst.beta[c]))] for c in classes]
    servers = tuple(
        replace(inst.servers[r], name=f"pool{k}", budget_s=float(budgets[k]))
        for k, r in enumerate(rep)
    )

    def low(a: np.ndarray) -> np.ndarray:
        return np.array([a[c].min() for c in classes])

    return replace(
        inst, servers=servers, tau_pub=low(inst.tau_pub), tau_one=low(inst.tau_one),
        alpha=low(inst.alpha), beta_raw=low(inst.beta_raw), beta=low(inst.beta),
        power_w=low(inst.power_w),
        batch_images=np.array([inst.batch_images[c].max() for c in classes]),
        budget_s=budgets,
    )


def merged_instance(inst: Instance, classes: list[list[int]] | None = None) -> Instance:
    """The servers of each class (default: all of them) merged into one with the summed budget
    and every cost figure at the class's largest (its smallest batch), so a plan of it placed on
    the class's real servers costs no more than it modelled: a start for a plan. (Its optimistic
    twin, a relaxation, is :func:`pooled_instance`.)"""
    classes = [list(range(inst.n_servers))] if classes is None else classes
    rep = [c[int(np.argmax(inst.beta[c]))] for c in classes]
    servers = tuple(
        replace(inst.servers[r], name="merged" if len(classes) == 1 else f"merged{k}",
                budget_s=float(inst.budget_s[c].sum()))
        for k, (r, c) in enumerate(zip(rep, classes, strict=True))
    )

    def high(a: np.ndarray) -> np.ndarray:
        return np.array([a[c].max() for c in classes])

    return replace(
        inst, servers=servers, tau_pub=high(inst.tau_pub), tau_one=high(inst.tau_one),
        alpha=high(inst.alpha), beta_raw=high(inst.beta_raw), beta=high(inst.beta),
        power_w=high(inst.power_w),
        batch_images=np.array([inst.batch_images[c].min() for c in classes]),
        budget_s=np.array([float(inst.budget_s[c].sum()) for c in classes]),
    )


def run_milp(model: Any, backend: str, time_limit: float, mip_gap: float,
             warm: np.ndarray | None, progress: Callable | None,
             options: dict[str, Any] | None = None) -> Any:
    """Solve a compact model on ``backend`` (HiGHS directly, or cvxpy with HiGHS)."""
    if backend == "cvxpy":
        from ._cvxpy import solve_cvxpy

        return solve_cvxpy(model, time_limit=max(time_limit, 0.05), mip_gap=mip_gap)
    return solve_highs(model.c, model.A, model.row_lo, model.row_hi, model.col_lo, model.col_hi,
                       model.integrality, time_limit=max(time_limit, 0.05), mip_gap=mip_gap,
                       offset=model.offset, start=warm, progress=progress, options=options)


def _options_of(dec: Decision, table: OptionTable, universe: tuple[np.ndarray, ...],
                server_map: np.ndarray) -> np.ndarray:
    """Mask of universe options used by ``dec`` (servers mapped to their class)."""
    up, un, us, ui = universe
    g = dec.user_group
    shared = dec.public[g] >= 0
    s = server_map[dec.server[g]]
    want = {(int(dec.public[g[n]]), n, int(s[n]), int(np.searchsorted(table.xs, dec.x[g[n]])))
            for n in np.flatnonzero(shared)}
    keys = zip(up.tolist(), un.tolist(), us.tolist(), ui.tolist(), strict=True)
    return np.fromiter((k in want for k in keys), dtype=bool, count=len(up))


def _expand(opts: tuple[np.ndarray, ...], solo: np.ndarray, classes: list[list[int]],
            n_servers: int) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """Map class options to every server of the class."""
    if all(len(c) == 1 for c in classes):
        return opts, solo
    p, n, k, i = opts
    parts: list[list[np.ndarray]] = [[], [], [], []]
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


def enumerate_route(inst: Instance, inc: Incumbent, budget: TimeBudget) -> Proof:
    """The exact optimum of a tiny instance by structured enumeration."""
    proof = Proof()
    if budget.expired():
        proof.timed_out = True
        return proof
    try:
        value, dec = exact_optimum(inst, time_limit=budget.left(), lower=inc.objective)
    except TimeoutError:
        proof.timed_out = True
        proof.notes.append("the exact enumeration did not finish in the time limit")
        return proof
    if dec is None:  # nothing feasible at least as good as the incumbent
        proof.infeasible = inc.decision is None
        proof.bound = inc.objective
        budget.lap("enumeration")
        return proof
    inc.offer(dec, "enumeration")
    proof.bound = value
    budget.lap("enumeration")
    return proof


def milp_route(inst: Instance, table: OptionTable, strategy: Strategy, inc: Incumbent, *,
               backend: str, mip_gap: float, budget: TimeBudget,
               stats: dict[str, Any]) -> Proof:
    """The full compact MILP over every option on every server."""
    proof = Proof()
    universe = all_options(inst, table, strategy.pair_mask)
    model = build_compact_model(inst, table, universe)
    stats["milp_vars"] = model.n_vars
    warm = model.encode(inc.decision, inst.total_steps) if inc.decision is not None else None
    out = run_milp(model, backend, budget.left(), mip_gap, warm, inc.progress)
    if out.x is not None:
        inc.offer(model.decode(out.x), "milp")
    proof.infeasible = out.kind == "infeasible" and inc.decision is None
    proof.bound = out.bound if math.isfinite(out.bound) else math.inf
    proof.timed_out = out.kind == "time_limit"
    budget.lap("milp")
    return proof


def lp_route(inst: Instance, table: OptionTable, strategy: Strategy, inc: Incumbent, *,
             settings: SolverSettings, mip_gap: float, budget: TimeBudget,
             stats: dict[str, Any]) -> Proof:
    """LP bound (restricted LP + pricing) on the pooled classes, primal plans at its prices,
    reduced-cost fixing, neighbourhood MILPs while too many options survive, then the exact
    reduced MILP warm started from the incumbent."""
    proof = Proof()
    classes, mask = strategy.classes, strategy.pair_mask
    lp_inst = pooled_instance(inst, classes)
    lp_table = table if lp_inst is inst else build_option_table(lp_inst)
    universe = all_options(lp_inst, lp_table, mask)
    stats["options"] = len(universe[0])
    server_map = np.zeros(inst.n_servers, dtype=int)
    for k, cls in enumerate(classes):
        server_map[cls] = k
    include = (_options_of(inc.decision, lp_table, universe, server_map)
               if inc.decision is not None else None)
    try:
        lpb = lp_bound(lp_inst, lp_table, universe, include=include, per_mode=3,
                       rel_tol=1e-7, solver="simplex", time_limit=budget.share(settings.share_bound))
    except LPInfeasible:
        proof.infeasible = True
        return proof
    except LPTimeout:
        proof.notes.append("the LP bound did not finish in the time limit; no bound")
        proof.timed_out = True
        return proof
    budget.lap("lp bound")
    proof.bound = lpb.best_bound
    proof.prices = lpb.budget_price[server_map]
    stats.update(lp_rounds=lpb.rounds, lp_options=lpb.lp_options, lp_bound=lpb.best_bound)
    inc.note("bound", bound=proof.bound)
    rounded = round_lp(lp_inst, lp_table, lpb.model, lpb.lp_x)
    if rounded is not None:
        inc.offer(place_groups(inst, table, rounded, classes), "lp rounding")
    for mult in (1.0, 0.8, 1.25, 0.6, 1.6):
        if budget.expired():
            break
        inc.offer(dense_search(inst, table, proof.prices * mult, pair_mask=mask,
                               settings=settings, deadline=budget.deadline(settings.share_primal)),
                  "facility search")
    budget.lap("facility search")
    if inst.n_servers > 1 and inc.decision is not None and not budget.expired():
        inc.offer(column_milp(inst, table, inc.decision, mask, settings=settings,
                              time_limit=budget.share(0.2), mip_gap=mip_gap), "re-placement milp")
        budget.lap("re-placement milp")
    if (inst.n_servers > 1 and inc.decision is not None
            and relative_gap(inc.objective, proof.bound) > settings.pattern_min_gap):
        _server_patterns(inst, table, lpb, strategy, inc, proof, settings=settings,
                         mip_gap=mip_gap, budget=budget, stats=stats)
    _neighbourhoods(inst, table, lpb, classes, server_map, inc, settings=settings,
                    mip_gap=mip_gap, budget=budget, stats=stats)
    _reduced_milp(inst, table, lpb, classes, inc, proof, settings=settings, mip_gap=mip_gap,
                  budget=budget, stats=stats)
    return proof


def _server_patterns(inst: Instance, table: OptionTable, lpb: Any, strategy: Strategy,
                     inc: Incumbent, proof: Proof, *, settings: SolverSettings, mip_gap: float,
                     budget: TimeBudget, stats: dict[str, Any]) -> None:
    """Column generation over what each server runs (:mod:`._knapsack_dual`), from the LP's
    user prices and the incumbent's loads: a bound that keeps every group whole on one server,
    and plans of whole patterns, re-optimised by the re-placement MILP on the true costs."""
    classes, mask = strategy.classes, strategy.pair_mask
    units = min(settings.pattern_max_units,
                np.floor(inst.budget_s / np.maximum(inst.beta, 1e-12)).max())
    cells = inst.n_users * inst.n_publics * len(inst.x_values) * (table.ys.size + units + 1)
    if cells > settings.max_pattern_cells or budget.expired():
        stats["pattern_rounds"] = 0
        return
    dual = KnapsackDual(inst, table, classes, pair_mask=mask, max_units=settings.pattern_max_units)
    start, prices, rounds = plan_patterns(dual, inc.decision, classes), lpb.user_price, 0
    best = math.inf
    for phase in range(settings.pattern_phases):
        cg = column_generation(dual, start, prices, target=inc.objective, mip_gap=mip_gap,
                               deadline=budget.deadline(settings.share_patterns),
                               min_rounds=settings.pattern_min_rounds if phase == 0 else 1,
                               smoothing=settings.pattern_smoothing)
        rounds += cg.rounds
        best = min(best, cg.value)
        if cg.value < proof.bound:
            proof.bound = cg.value
            inc.note("bound", bound=cg.value)
        if cg.too_slow:
            stats["pattern_note"] = "too slow for column generation in the time left"
            break
        plan = pattern_plan(dual, cg.patterns, classes, time_limit=budget.share(0.1))
        if plan is not None:  # rounded costs: the split is re-made on the true ones
            inc.offer(optimal_split(inst, table, plan, time_limit=budget.share(0.1),
                                    mip_gap=mip_gap), "server patterns")
        if relative_gap(inc.objective, proof.bound) <= mip_gap or budget.expired():
            break
        start, prices = cg.patterns, cg.prices
    stats.update(pattern_rounds=rounds, pattern_bound=best)
    budget.lap("server patterns")


def _neighbourhoods(inst: Instance, table: OptionTable, lpb: Any, classes: list[list[int]],
                    server_map: np.ndarray, inc: Incumbent, *, settings: SolverSettings,
                    mip_gap: float, budget: TimeBudget, stats: dict[str, Any]) -> None:
    """While too many options survive fixing: exact MILPs over the options of largest reduced
    cost plus the incumbent's (doubling), so a better incumbent lets fixing remove more."""
    expand = max(len(c) for c in classes)
    _, _, n_keep = lpb.survivors(inc.objective)
    size = max(settings.min_neighbourhood, 4 * inst.n_users) // expand
    while (n_keep * expand > settings.max_milp_options and budget.left() > 1.0
           and inc.decision is not None and size <= n_keep):
        order = np.argsort(-lpb.option_rc, kind="stable")[:size]
        near = np.zeros(len(lpb.option_rc), dtype=bool)
        near[order] = True
        near |= _options_of(inc.decision, table, lpb.universe, server_map)
        opts, solo = _expand(tuple(a[near] for a in lpb.universe), lpb.solo_ok, classes,
                             inst.n_servers)
        model = build_compact_model(inst, table, opts, solo)
        warm = model.encode(inc.decision, inst.total_steps)
        last = 2 * size > min(n_keep, settings.max_milp_options // expand)
        share = 0.5 if last else 0.4
        if model.n_vars * settings.milp_seconds_per_var > budget.share(share):
            break  # HiGHS could not even start it in the time it may use
        out = run_milp(model, "highs", budget.share(share), mip_gap, warm, inc.progress)
        if out.x is not None:
            inc.offer(model.decode(out.x), "neighbourhood milp")
        stats["neighbourhood_options"] = int(near.sum())
        _, _, n_keep = lpb.survivors(inc.objective)
        size *= 2
    budget.lap("neighbourhood milp")


def _reduced_milp(inst: Instance, table: OptionTable, lpb: Any, classes: list[list[int]],
                  inc: Incumbent, proof: Proof, *, settings: SolverSettings, mip_gap: float,
                  budget: TimeBudget, stats: dict[str, Any]) -> None:
    """The compact MILP over the options that survive fixing against the incumbent."""
    lower = inc.objective
    opts, solo, n_keep = lpb.survivors(lower)
    stats["options_after_fixing"] = n_keep
    opts, solo = _expand(opts, solo, classes, inst.n_servers)
    if len(opts[0]) > settings.max_milp_options or budget.left() <= 0.2:
        proof.notes.append(f"{len(opts[0])} options survive fixing: too many for the exact "
                           "MILP in the time left; the bound is the LP bound")
        proof.timed_out = budget.expired()
        return
    model = build_compact_model(inst, table, opts, solo)
    stats["milp_vars"] = model.n_vars
    if model.n_vars * settings.milp_seconds_per_var > budget.left():
        proof.notes.append(f"the reduced MILP ({model.n_vars} variables) cannot start in the "
                           "time left; the bound is the LP bound")
        proof.timed_out = True
        return
    warm = model.encode(inc.decision, inst.total_steps) if inc.decision is not None else None
    budget.lap("milp build")
    out = run_milp(model, "highs", budget.left(), mip_gap, warm, inc.progress,
                   options=settings.proof_options if warm is not None else None)
    budget.lap("milp")
    if out.x is not None:
        inc.offer(model.decode(out.x), "reduced milp")
    if out.kind == "infeasible" and inc.decision is None:
        proof.infeasible = True
        return
    if math.isfinite(out.bound):
        proof.bound = min(proof.bound, max(out.bound, lower))
    elif out.kind == "infeasible":
        proof.bound = min(proof.bound, lower)
    proof.timed_out = out.kind == "time_limit"


def bound_from_proof(proof: Proof, scope: str, method: str) -> Bound:
    """The proof's bound as a :class:`Bound`."""
    prices = proof.prices if proof.prices is not None else np.zeros(0)
    return Bound(value=proof.bound, scope=scope, method=method, server_price=prices)
