"""``solve``: groups, public prompts, servers, common steps and splits, with a certified bound.

The algorithm is one pipeline, each step in its own module:

1. **Strategy** (:mod:`._strategy`): the route from the instance's size and structure, the
   public candidates each user keeps (its ``top_k`` most similar ones, pairs at or above
   ``min_share_similarity``) and the memory plan. Interchangeable servers (equal figures and
   budgets) form classes.
2. **Primal plans** (:mod:`._primal`), always on the real servers: the greedy grouping, then a
   facility search at per-server budget prices (dense drop/add/swap local search where it fits,
   sparse batch opening on the dual's entries beyond). The edge/device split enforces each
   server's budget (launches beyond a server's batch cap are chunked, their cost charged in
   ``beta'``); a server whose groups cannot fit has its price raised. On the ``heuristic``
   route the group placement MILP (:mod:`._placement`) then re-places whole groups on the
   real servers and re-chooses their edge steps among price levels: a facility search at
   fixed prices puts a pool's groups on its servers all or nothing, and the MILP balances
   the budgets (10,000 users on 16 mixed servers: 58,461 -> 72,236).
3. **Bound.** Tiny instances (<= 8 users, <= 3 servers) are enumerated exactly (pruned by the
   best primal plan). Up to 150 users (80 when the servers are of one GPU profile but differ
   in budget or cap) the LP of the compact model (restricted LP + pricing, :mod:`._lpbound`)
   bounds the problem on the pooled classes. Above that the Lagrangian dual with one price
   per server class (:mod:`._dual`): dual ascent for the user prices, a line search and a
   trust-region bundle method for the server prices, then a subgradient polish of the user
   prices that finishes with each group's launch overhead priced in; where servers of one
   profile differ, the dual of the servers merged per profile (fewer entries, so more prices
   fit) runs first and its prices start the per-class dual and the plans, the smaller bound
   is reported. Where even one price per class leaves the dual too few candidates per user
   (the ``heuristic`` route: many distinct servers), the plans are made on the servers merged
   per GPU profile (each at its largest figures) and placed on the real servers, and the same
   dual bounds the servers pooled per profile, or all into one, over each user's top-k
   candidates and the publics of the first plan's largest groups; the plans at its prices
   stay inside that scope. Every bound is valid for the scope it states
   (``bound_scope``): pooling servers at their smallest figures, each server's budget counted
   at those figures (:func:`~._exact.pooled_budgets`), and (LP, price search) dropping the
   launch overhead are relaxations.
4. **Polish at the bound's prices**: the facility search again at the prices the bound found,
   then (several servers) the re-placement MILP that moves users and groups between servers
   over the plan's (public, x) pairs. Where the LP stays loose on several servers (it pays a
   group's common phase in fractions spread over servers), column generation over what each
   server runs (:mod:`._knapsack_dual`: user prices dualised, one exact knapsack per server)
   gives a bound that keeps every group whole on one server, and plans of whole patterns.
5. **Exact proof** (:mod:`._exact`, LP route): reduced-cost fixing against the incumbent,
   neighbourhood MILPs while too many options survive, then the reduced MILP on HiGHS, warm
   started, to ``mip_gap``.

Guarantees: every plan returned satisfies every constraint (budgets, deadlines,
minimum quality, step ranges, ``max_groups``, the similarity floor); ``bound`` is an upper bound
on the optimum over ``bound_scope``; ``status`` is ``optimal`` only when the gap is within
``mip_gap``. ``time_limit`` bounds the whole call, diagnosis of an infeasible instance included;
each step draws its share from one :class:`~._settings.TimeBudget`. ``method="milp"`` hands the
full compact MILP to ``backend`` (``"highs"`` directly or ``"cvxpy"`` with HiGHS); the
decomposition always proves with HiGHS.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from ._decision import Decision
from ._diagnose import diagnose
from ._distributed import RayPriceEvaluator
from ._dual import Bound, ServerDual, dual_bound
from ._evaluate import score_decision
from ._exact import (
    Proof,
    bound_from_proof,
    enumerate_route,
    lp_route,
    merged_instance,
    milp_route,
    pooled_instance,
)
from ._heuristics import greedy_grouping, greedy_threshold_seconds
from ._incumbent import Incumbent
from ._instance import Instance
from ._options import OptionTable, build_option_table
from ._placement import place_by_milp
from ._primal import (
    column_milp,
    dense_search,
    place_groups,
    price_guess,
    priced_plan,
    solo_plan,
)
from ._result import (
    FEASIBLE_GAP,
    INFEASIBLE,
    OPTIMAL,
    TIME_LIMIT,
    SolveResult,
    make_plan,
    relative_gap,
)
from ._settings import SolverSettings, TimeBudget
from ._split import greedy_split
from ._strategy import Strategy, choose_strategy, top_k_mask, widen_to_publics

__all__ = ["METHODS", "BACKENDS", "solve"]

METHODS = ("auto", "decompose", "milp")
_NO_POOLED_BOUND = ("no bound on the pooled servers (one evaluation would not fit its time, "
                    "or no finite value); the plan has no bound")
BACKENDS = ("highs", "cvxpy")


def _check_arguments(time_limit: float, mip_gap: float, method: str, backend: str) -> None:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if not (isinstance(time_limit, (int, float)) and math.isfinite(time_limit) and time_limit > 0):
        raise ValueError(f"time_limit must be positive and finite, got {time_limit!r}")
    if not (isinstance(mip_gap, (int, float)) and 0 <= mip_gap < 1):
        raise ValueError(f"mip_gap must be in [0, 1), got {mip_gap!r}")
    if method == "decompose" and backend != "highs":
        raise ValueError("the decomposition proves with HiGHS; backend='cvxpy' needs method='milp'")


def solve(
    instance: Instance,
    *,
    time_limit: float = 60.0,
    mip_gap: float = 1e-4,
    method: str = "auto",
    top_k: int | str | None = "auto",
    backend: str = "highs",
    warm_start: SolveResult | None = None,
    settings: SolverSettings | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
    ray_address: str | None = None,
) -> SolveResult:
    """Find the best plan for ``instance``; see the module docstring.

    ``time_limit`` (s) bounds the whole call; ``mip_gap`` is the relative gap at which a plan is
    declared optimal. ``top_k``: ``"auto"`` (candidates per user sized by the memory plan),
    ``None`` (all) or a positive integer. ``warm_start``: a previous result (for example the
    last round's) whose server prices start the price searches. ``progress`` receives events
    (``incumbent``, ``bound``) as dicts. ``ray_address`` (``"local"`` or a cluster address)
    runs the Lagrangian dual's line-search grid of prices as Ray tasks (large instances); the bound is
    valid either way. The solver draws no random numbers.
    """
    _check_arguments(time_limit, mip_gap, method, backend)
    settings = settings or SolverSettings()
    margin = min(max(settings.return_margin_s, 0.02 * time_limit), 0.5 * time_limit)
    budget = TimeBudget(time_limit, margin_s=margin)
    strategy = choose_strategy(instance, settings, method=method, top_k=top_k)
    table = build_option_table(instance)
    budget.lap("setup")
    inc = Incumbent(instance, strategy.pair_mask, budget, progress)
    stats: dict[str, Any] = {"route": strategy.route, "top_k": strategy.top_k,
                             "users": instance.n_users, "publics": instance.n_publics,
                             "servers": instance.n_servers, "server_classes": len(strategy.classes),
                             "min_share_similarity": instance.min_share_similarity,
                             "users_isolated_by_share_floor": strategy.share_floor_users}
    prices = _start_prices(instance, warm_start)
    _primal_start(instance, table, strategy, inc, prices, settings, budget)
    if strategy.route == "enumerate":
        proof = enumerate_route(instance, inc, budget)
    elif strategy.route == "milp":
        proof = milp_route(instance, table, strategy, inc, backend=backend, mip_gap=mip_gap,
                           budget=budget, stats=stats)
    elif strategy.route == "lp":
        proof = lp_route(instance, table, strategy, inc, settings=settings, mip_gap=mip_gap,
                         budget=budget, stats=stats)
    else:  # dual, or heuristic (plans on pools of servers, the bound on pooled servers)
        proof = _dual_route(instance, table, strategy, inc, prices, settings, budget, stats,
                            ray_address)
    bound = bound_from_proof(proof, proof.scope or strategy.scope, strategy.route)
    if inc.decision is None:
        return _infeasible(instance, table, strategy, budget, settings, stats, proof)
    return _result(instance, strategy, inc, bound, proof, mip_gap, budget, stats)


def _start_prices(inst: Instance, warm_start: SolveResult | None) -> np.ndarray:
    if warm_start is not None:
        warm = np.asarray(warm_start.stats.get("server_price", []), dtype=float)
        if warm.shape == (inst.n_servers,) and np.all(np.isfinite(warm)):
            return np.maximum(warm, 0.0)
    return price_guess(inst)


def _primal_start(inst: Instance, table: OptionTable, strategy: Strategy, inc: Incumbent,
                  prices: np.ndarray, settings: SolverSettings, budget: TimeBudget) -> None:
    """The first plans: greedy grouping, then (enumeration and LP routes) the dense facility
    search at the start prices and two multiples."""
    inc.offer(solo_plan(inst, table), "solo")
    deadline = budget.deadline(settings.share_primal)
    if greedy_threshold_seconds(inst, settings) < budget.left():
        inc.offer(greedy_grouping(inst, table, deadline=deadline), "greedy")
    budget.lap("greedy")
    if strategy.route in ("dual", "heuristic"):
        return  # the dual route's first step is the facility search at these prices
    for mult in (1.0, 0.5, 2.0):
        if budget.expired():
            break
        inc.offer(dense_search(inst, table, prices * mult, pair_mask=strategy.pair_mask,
                               settings=settings, deadline=budget.deadline(settings.share_primal)),
                  "facility search")
    budget.lap("facility search")


def _dual_route(inst: Instance, table: OptionTable, strategy: Strategy, inc: Incumbent,
                prices: np.ndarray, settings: SolverSettings, budget: TimeBudget,
                stats: dict[str, Any], ray_address: str | None = None) -> Proof:
    """Lagrangian bound over the server classes (its price evaluations on Ray when
    ``ray_address`` is given), then plans at its prices."""
    proof = Proof()
    bounded = strategy.route == "dual"
    lam0 = np.array([prices[c[0]] for c in strategy.classes])
    pooled = pooled_instance(inst, strategy.classes)
    p_table = table if pooled is inst else build_option_table(pooled)
    widened = bounded and strategy.pair_mask is not None and strategy.top_k is not None
    if widened:
        strategy = _first_plan_scope(inst, table, strategy, inc, pooled, p_table, lam0,
                                     settings, budget, stats)
        proof.scope = strategy.scope
    mask = strategy.pair_mask
    steps = _bound_steps(inst, strategy, settings)
    dual: ServerDual | None = None  # per class: the sparse search's entries, a bound step
    if bounded:
        if mask is None:
            pairs = np.divmod(np.arange(inst.n_publics * inst.n_users), inst.n_users)
        else:
            pairs = np.nonzero(mask)
        dual = ServerDual(inst, table, strategy.classes, pairs)

    def evaluation_cost(n_classes: int) -> float:
        """Estimated seconds of one price evaluation of the dual over ``n_classes``."""
        return (len(pairs[0]) * n_classes * len(inst.x_values)
                * settings.dual_seconds_per_entry)
    plans_on: list[tuple[Instance, OptionTable, list[list[int]]]] = []

    def targets() -> list[tuple[Instance, OptionTable, list[list[int]]]]:
        """The instances the searches plan on, built at the first search (the heuristic
        route plans on its own pools)."""
        if not plans_on:
            plans_on.append((pooled, p_table, strategy.classes))
            if len(strategy.classes) > 1:  # unequal servers: also plan on all merged, then place
                merged = merged_instance(inst)
                plans_on.append((merged, build_option_table(merged),
                                 [list(range(inst.n_servers))]))
        return plans_on

    def search(lam_cls: np.ndarray, share: float = settings.share_search) -> None:
        """Facility search on the pooled classes at class prices, placed on the servers."""
        searched = False
        for on, on_table, classes in targets():
            lam_on = lam_cls if on is pooled else lam_cls.mean(keepdims=True)
            found = dense_search(on, on_table, lam_on, pair_mask=mask, settings=settings,
                                 deadline=budget.deadline(share))
            if found is not None:
                searched = True
                inc.offer(place_groups(inst, table, found, classes), "facility search")
        if (not searched and dual is not None
                and evaluation_cost(len(strategy.classes)) < budget.share(settings.share_search)):
            inc.offer(priced_plan(dual, table, lam_cls, settings=settings,
                                  deadline=budget.deadline(settings.share_primal)),
                      "sparse search")

    if not bounded:
        return _heuristic_route(inst, table, strategy, inc, prices, settings, budget, stats,
                                search, ray_address)
    if not widened:
        search(lam0, settings.share_first_search)
    budget.lap("facility search")
    evaluator = RayPriceEvaluator(ray_address) if ray_address is not None else None
    server_price, start = None, prices
    for classes, share, key in steps:
        if evaluation_cost(len(classes)) > budget.share(share):
            break  # not even one evaluation fits its share
        d = dual if classes is strategy.classes else _server_dual(inst, table, classes, pairs)
        if evaluator is not None:
            evaluator.bind(d)
        b = dual_bound(d, lam0=_class_prices(start, classes), target=inc.objective,
                       scope=strategy.scope, settings=settings, budget=budget,
                       evaluator=evaluator, time_share=share)
        stats.update({key: b.value, f"{key}_evaluations": b.evaluations,
                      f"{key}_entries": len(d.en)})
        start = _server_prices(inst, classes, d, b.server_price)
        if server_price is None or b.value < proof.bound:  # the smaller valid bound is valid
            proof.bound, server_price = b.value, start
    if server_price is None:
        proof.notes.append("no time left for the Lagrangian bound; the plan has no bound")
        proof.timed_out = True
        return proof
    if evaluator is not None:
        stats.update(ray_tasks=evaluator.tasks, ray_cpus=evaluator.workers)
    proof.prices = server_price
    budget.lap("dual bound")
    inc.note("bound", bound=proof.bound)
    _search_at(search, np.array([server_price[c[0]] for c in strategy.classes]),
               (1.0, 0.99, 1.01), budget)
    if inst.n_servers > 1 and inc.decision is not None and not budget.expired():
        inc.offer(column_milp(inst, table, inc.decision, mask, settings=settings,
                              time_limit=budget.share(0.5), mip_gap=1e-4), "re-placement milp")
        budget.lap("re-placement milp")
    proof.timed_out = budget.expired()
    return proof


def _heuristic_route(inst: Instance, table: OptionTable, strategy: Strategy, inc: Incumbent,
                     prices: np.ndarray, settings: SolverSettings, budget: TimeBudget,
                     stats: dict[str, Any], search: Callable[..., None],
                     ray_address: str | None) -> Proof:
    """Many distinct servers, planned on pools of them, one per GPU profile, each merged at its
    largest figures (all servers merged at the slowest figures would leave users with
    deadlines no option). Each plan is placed on the real servers and re-placed by the group
    placement MILP. When a bound fits (on ``strategy.bound_classes``), the Lagrangian dual on
    the pooled servers (a relaxation) over the scope the first plan widens
    (:func:`_widen_scope`), then the plans at its prices inside that scope; otherwise the
    plans at multiples of the start prices. Servers of one profile each and no bound: the
    facility searches of the dual route."""
    proof = Proof()
    classes = strategy.bound_classes
    pools = inst.servers_by_profile()
    if classes is None and len(pools) == inst.n_servers:  # nothing to pool, no bound
        proof.notes.append(strategy.scope)
        _search_at(search, np.array([prices[c[0]] for c in strategy.classes]), (1.0, 0.8, 1.25),
                   budget)
        proof.timed_out = budget.expired()
        return proof
    merged = merged_instance(inst, pools)
    target = (merged, build_option_table(merged), pools)
    first = _pool_plan(inst, table, target, prices, strategy.pair_mask, settings, budget,
                       settings.share_search if classes is None
                       else settings.share_pool_first_search)
    wide = strategy
    if classes is not None:
        wide = _widen_scope(inst, strategy, inc, first, settings, stats)
    else:
        inc.offer(first, "facility search")
    budget.lap("facility search")
    if inc.decision is not None:  # the MILP keeps the plan's pairs, so its scope
        _replace_groups(inst, table, inc, inc.decision, prices, settings, budget)
    found = None
    if classes is not None:
        if wide is strategy:  # the first plan did not widen the scope: top-k and its pairs
            dec = inc.decision
            members = (dec.public[dec.user_group] if dec is not None
                       else np.full(inst.n_users, -1))
            wide = replace(strategy, pair_mask=top_k_mask(inst, strategy.bound_top_k or 1,
                                                          members))
        found = _pooled_bound(inst, table, classes, wide.pair_mask, inc,
                              _class_prices(prices, classes), settings, budget, stats,
                              ray_address)
    if found is None:
        proof.notes.append(strategy.scope if classes is None else _NO_POOLED_BOUND)
        if classes is not None:
            proof.scope = f"none: {_NO_POOLED_BOUND}"
        inc.pair_mask, wide = strategy.pair_mask, strategy
        base, mults = prices, settings.heuristic_price_steps
    else:
        dual, b = found
        proof.bound, proof.scope = b.value, wide.scope
        proof.prices = base = _server_prices(inst, classes, dual, b.server_price)
        inc.pair_mask = wide.pair_mask  # from here on every plan must lie in the bound's scope
        mults = settings.bound_price_steps
    for mult in mults:
        if budget.left() <= 0.5:
            break
        placed = _pool_plan(inst, table, target, base * mult, wide.pair_mask, settings,
                            budget, settings.share_primal)
        inc.offer(placed, "facility search")
        budget.lap("facility search")
        if placed is not None:
            _replace_groups(inst, table, inc, placed, base * mult, settings, budget)
    proof.timed_out = budget.expired()
    return proof


def _search_at(search: Callable[..., None], lam: np.ndarray, mults: tuple[float, ...],
               budget: TimeBudget) -> None:
    """The dual route's facility searches at multiples of the class prices ``lam``."""
    for mult in mults:
        if budget.left() <= 0.5:
            break
        search(lam * mult)
    budget.lap("facility search")


def _pool_plan(inst: Instance, table: OptionTable,
               target: tuple[Instance, OptionTable, list[list[int]]], prices: np.ndarray,
               mask: np.ndarray | None, settings: SolverSettings, budget: TimeBudget,
               share: float) -> Decision | None:
    """The facility search on the merged instance of ``target`` (instance, its table, the
    pools it merges) at the per-server ``prices`` (each pool at its servers' mean), within
    ``share`` of the time left, placed on the real servers."""
    merged, m_table, pools = target
    found = dense_search(merged, m_table, _class_prices(prices, pools), pair_mask=mask,
                         settings=settings, deadline=budget.deadline(share))
    return place_groups(inst, table, found, pools) if found is not None else None


def _replace_groups(inst: Instance, table: OptionTable, inc: Incumbent, dec: Decision,
                    prices: np.ndarray, settings: SolverSettings, budget: TimeBudget) -> None:
    """The groups of the feasible plan ``dec`` re-placed on the servers with their edge steps
    re-chosen (:func:`~._placement.place_by_milp`), then split again; offered to ``inc``."""
    cells = (inst.n_users * inst.n_servers * (len(settings.placement_levels) + 1)
             * (inst.scenario.edge_steps_max + 1))
    if budget.left() <= 0.5 or cells * settings.placement_seconds_per_cell > budget.left() / 2:
        return
    placed = place_by_milp(inst, table, dec, prices, levels=settings.placement_levels,
                           max_vars=settings.max_placement_options,
                           time_limit=max(budget.share(settings.share_placement),
                                          min(settings.min_placement_s, budget.left() / 3)))
    if placed is not None:
        inc.offer(placed, "group placement milp")
        inc.offer(greedy_split(inst, table, placed), "group placement milp")
    budget.lap("group placement milp")


def _pooled_bound(inst: Instance, table: OptionTable, classes: list[list[int]],
                  mask: np.ndarray, inc: Incumbent, lam0: np.ndarray, settings: SolverSettings,
                  budget: TimeBudget, stats: dict[str, Any], ray_address: str | None
                  ) -> tuple[ServerDual, Bound] | None:
    """The ``heuristic`` route's bound: the dual over the pooled ``classes`` and the pairs of
    ``mask``; None when one evaluation would not fit the bound's share of the time."""
    share = budget.share(settings.share_pooled_bound)
    if int(mask.sum()) * len(classes) * len(inst.x_values) * settings.dual_seconds_per_entry \
            > share:
        return None  # not even one evaluation would fit
    d = _server_dual(inst, table, classes, np.nonzero(mask))
    evaluator = RayPriceEvaluator(ray_address) if ray_address is not None else None
    if evaluator is not None:
        evaluator.bind(d)
    budget.lap("dual setup")
    b = dual_bound(d, lam0=lam0, target=inc.objective, scope="",
                   settings=replace(settings, search_share=settings.pooled_search_share),
                   budget=budget, time_share=settings.share_pooled_bound, evaluator=evaluator)
    stats.update(pooled_bound=b.value, pooled_bound_evaluations=b.evaluations,
                 pooled_bound_entries=len(d.en), pooled_bound_classes=len(classes))
    if evaluator is not None:
        stats.update(ray_tasks=evaluator.tasks, ray_cpus=evaluator.workers)
    budget.lap("dual bound")
    if not math.isfinite(b.value):
        return None
    inc.note("bound", bound=b.value)
    return d, b


def _server_dual(inst: Instance, table: OptionTable, classes: list[list[int]],
                 pairs: tuple[np.ndarray, np.ndarray]) -> ServerDual:
    """The Lagrangian dual over ``classes``: on ``inst`` itself when every class holds
    interchangeable servers, else on their pooled relaxation (:func:`pooled_instance`)."""
    ident = {s: k for k, c in enumerate(inst.servers_identical()) for s in c}
    if all(len({ident[s] for s in c}) == 1 for c in classes):
        return ServerDual(inst, table, classes, pairs)
    relaxed = pooled_instance(inst, classes)
    return ServerDual(relaxed, build_option_table(relaxed), [[k] for k in range(len(classes))],
                      pairs)


def _bound_steps(inst: Instance, strategy: Strategy, settings: SolverSettings
                 ) -> list[tuple[list[list[int]], float, str]]:
    """The Lagrangian bounds to compute, in order, with their time shares and stats keys.
    Servers of one GPU profile that differ in budget or cap: first the servers of each profile
    merged (fewer entries, so more price evaluations fit: often the tighter bound), then
    the per-class dual from its prices; otherwise the per-class dual alone."""
    profiles = inst.servers_by_profile()
    if len(profiles) < len(strategy.classes):
        return [(profiles, settings.share_bound, "merged_bound"),
                (strategy.classes, settings.share_second_bound, "dual_bound")]
    one = len(strategy.classes) == 1
    return [(strategy.classes, settings.share_dual_one_class if one else settings.share_bound,
             "dual_bound")]


def _class_prices(prices: np.ndarray, classes: list[list[int]]) -> np.ndarray:
    """Per-server prices as one start price per class (their mean)."""
    return np.array([float(prices[c].mean()) for c in classes])


def _server_prices(inst: Instance, classes: list[list[int]], dual: ServerDual,
                   price: np.ndarray) -> np.ndarray:
    """The dual's prices (per server of ``dual.inst``) on the real servers of each class."""
    out = np.zeros(inst.n_servers)
    for c, dc in zip(classes, dual.classes, strict=True):
        out[c] = price[dc[0]]
    return out


def _first_plan_scope(inst: Instance, table: OptionTable, strategy: Strategy, inc: Incumbent,
                      pooled: Instance, p_table: OptionTable, lam0: np.ndarray,
                      settings: SolverSettings, budget: TimeBudget,
                      stats: dict[str, Any]) -> Strategy:
    """The first facility search over every allowed pair (not only each user's most similar
    candidates: large groups form around publics far down many users' lists); when its plan
    is the best, the bound's scope is widened to cover it (:func:`widen_to_publics`)."""
    wide = None if inst.share_allowed.all() else inst.share_allowed
    found = dense_search(pooled, p_table, lam0, pair_mask=wide, settings=settings,
                         deadline=budget.deadline(settings.share_first_search))
    plan = place_groups(inst, table, found, strategy.classes) if found is not None else None
    return _widen_scope(inst, strategy, inc, plan, settings, stats)


def _widen_scope(inst: Instance, strategy: Strategy, inc: Incumbent, plan: Decision | None,
                 settings: SolverSettings, stats: dict[str, Any]) -> Strategy:
    """Offer ``plan`` in the scope widened to its largest groups' publics
    (:func:`widen_to_publics`); the widened strategy when it is the best plan so far."""
    if plan is None:
        return strategy
    size = np.bincount(plan.user_group, minlength=plan.n_groups)
    order = np.argsort(-size, kind="stable")
    publics = plan.public[order]
    publics = publics[publics >= 0]
    _, first = np.unique(publics, return_index=True)
    widened, opened = widen_to_publics(inst, strategy, publics[np.sort(first)],
                                       plan.public[plan.user_group], settings)
    before = inc.pair_mask
    inc.pair_mask = widened.pair_mask
    if not inc.offer(plan, "facility search"):
        inc.pair_mask = before  # the plan in the first scope stays the best
        return strategy
    stats.update(top_k=widened.top_k, scope_publics=opened)
    return widened


def _result(inst: Instance, strategy: Strategy, inc: Incumbent, bound: Bound, proof: Proof,
            mip_gap: float, budget: TimeBudget, stats: dict[str, Any]) -> SolveResult:
    dec: Decision = inc.decision  # type: ignore[assignment]
    ev = score_decision(inst, dec)
    value = max(bound.value, ev.objective)
    gap = relative_gap(ev.objective, value)
    if gap <= mip_gap + 1e-12:
        status = OPTIMAL
    elif proof.timed_out or budget.expired():
        status = TIME_LIMIT
    else:
        status = FEASIBLE_GAP
    stats["timing_s"] = budget.rounded_timings()
    stats["incumbent_source"] = inc.source
    if proof.prices is not None:
        stats["server_price"] = [float(v) for v in proof.prices]
    res_kw = dict(status=status, objective=ev.objective, bound=value, gap=gap,
                  solve_time_s=budget.elapsed(), bound_scope=bound.scope, method=strategy.route)
    plan = make_plan(inst, dec, status={**res_kw, "diagnostics": proof.notes},
                     provenance=_provenance(inst))
    names = inst.server_names
    return SolveResult(
        plan=plan, terms=ev.terms(),
        gpu_time_s=dict(zip(names, map(float, ev.gpu_time_s), strict=True)),
        gpu_time_simulated_s=dict(zip(names, map(float, ev.gpu_time_simulated_s), strict=True)),
        diagnostics=proof.notes, stats=stats, **res_kw,
    )


def _infeasible(inst: Instance, table: OptionTable, strategy: Strategy, budget: TimeBudget,
                settings: SolverSettings, stats: dict[str, Any], proof: Proof) -> SolveResult:
    """No plan: why (within the time left), and whether that is proven or a time-out."""
    reasons = diagnose(inst, table, time_limit=max(budget.share(settings.share_diagnose), 0.05),
                       max_options=settings.max_universe)
    # a proof over a top-k subset of the candidates proves nothing about the whole problem
    proven = (proof.infeasible and strategy.top_k is None) or bool(reasons)
    status = INFEASIBLE if proven else TIME_LIMIT
    if not reasons:
        reasons = ["no plan meets every constraint (no single cause found)" if proven
                   else "no plan was found within the time limit"]
    stats["timing_s"] = budget.rounded_timings()
    return SolveResult(status=status, objective=-math.inf,
                       bound=-math.inf if status == INFEASIBLE else math.inf, gap=math.inf,
                       solve_time_s=budget.elapsed(), bound_scope=strategy.scope, plan=None,
                       method=strategy.route, diagnostics=reasons, stats=stats)


def _provenance(inst: Instance) -> dict[str, Any]:
    hiqm = inst.hiqm
    return {
        "optimizer": "his_opt.allocation",
        "hiqm": {"variant": getattr(hiqm, "variant", None), "form": getattr(hiqm, "form", None)},
        "servers": [{"name": s.name, "profile": getattr(s.profile, "name", None),
                     "kind": getattr(s.profile, "kind", None), "budget_s": s.budget_s}
                    for s in inst.servers],
        "publics": inst.n_publics,
        "min_share_similarity": inst.min_share_similarity,
    }
