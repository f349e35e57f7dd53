"""The Lagrangian dual with one price per server class, the strategy's memory plan, the
per-server primal steps and the similarity floor, checked against the exact enumerator."""

from __future__ import annotations

import math
import sys
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from his_opt.allocation import (
    INFEASIBLE,
    OPTIMAL,
    CapacityError,
    SolverSettings,
    TimeBudget,
    brute_force,
    check_feasible,
    choose_strategy,
    evaluate,
    solve,
)
from his_opt.allocation._decision import Decision
from his_opt.allocation._dual import ServerDual, dual_bound
from his_opt.allocation._options import build_option_table
from his_opt.allocation._primal import column_milp, priced_plan
from his_opt.allocation._split import greedy_split
from his_opt.allocation._synthetic import tiny_instance


def _all_pairs(inst):  # noqa: ANN001, ANN202
    return np.divmod(np.arange(inst.n_publics * inst.n_users), inst.n_users)


def _dual(inst, target: float = -math.inf, **kw):  # noqa: ANN001, ANN202
    table = build_option_table(inst)
    classes = inst.servers_identical()
    dual = ServerDual(inst, table, classes, _all_pairs(inst))
    return dual_bound(dual, lam0=np.ones(len(classes)), target=target, scope="all",
                      settings=SolverSettings(**kw), budget=TimeBudget(30), time_share=1.0)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), n_users=st.integers(2, 6),
       fractions=st.sampled_from([(0.5,), (0.2, 0.2), (1.0, 0.3), (0.4, 0.2, 0.1)]),
       solo=st.booleans(), deadlines=st.booleans(), groups=st.sampled_from([None, 1, 2]),
       mixed=st.booleans())
# found by hypothesis: no column beats going solo, so the dual has no entries at all
@example(seed=142, n_users=2, fractions=(0.5,), solo=True, deadlines=False, groups=None,
         mixed=False)
def test_dual_bound_holds(seed: int, n_users: int, fractions: tuple[float, ...], solo: bool,
                          deadlines: bool, groups: int | None, mixed: bool) -> None:
    inst = tiny_instance(seed, n_users=n_users, server_budget_fractions=fractions,
                         common_steps_min=0 if solo else 1, max_groups=groups,
                         deadlines=(3.0, 6.0) if deadlines else None,
                         mixed_profiles=mixed and len(fractions) > 1)
    best, _ = brute_force(inst)
    assume(math.isfinite(best))  # an infeasible instance bounds nothing
    bound = _dual(inst, target=best).value
    assert bound >= best - 1e-7 * max(1.0, abs(best))


def test_bundle_only_lowers_the_line_search_bound() -> None:
    inst = tiny_instance(21, n_users=8, server_budget_fractions=(0.4, 0.2, 0.1))
    best, _ = brute_force(inst)
    line = _dual(inst, target=best, bundle_iterations=0).value
    bundled = _dual(inst, target=best).value
    assert best - 1e-9 <= bundled <= line + 1e-9


def test_priced_plan_respects_every_server() -> None:
    inst = tiny_instance(5, n_users=8, server_budget_fractions=(0.3, 0.1), batch_caps=(3, 1))
    table = build_option_table(inst)
    dual = ServerDual(inst, table, inst.servers_identical(), _all_pairs(inst))
    for lam in (0.0, 1.0, 10.0):
        dec = priced_plan(dual, table, np.full(len(dual.classes), lam),
                          settings=SolverSettings(), deadline=math.inf)
        assert dec is not None
        assert not check_feasible(inst, dec)


def test_replacement_milp_never_loses() -> None:
    inst = tiny_instance(15, n_users=5, server_budget_fractions=(0.75, 0.25))
    table = build_option_table(inst)
    # everybody in one group on the smaller server: a poor but feasible start
    one = Decision.from_groups([(1, 0, 1, np.arange(inst.n_users))],
                               np.zeros(inst.n_users, dtype=int), inst.n_users)
    start = greedy_split(inst, table, one)
    assert start is not None and not check_feasible(inst, start)
    better = column_milp(inst, table, start, None, settings=SolverSettings(), time_limit=30.0,
                         mip_gap=1e-9)
    assert better is not None
    assert not check_feasible(inst, better)
    assert evaluate(inst, better).objective > evaluate(inst, start).objective + 1e-6
    assert evaluate(inst, better).objective <= brute_force(inst)[0] + 1e-9


def test_strategy_routes_by_size_and_plans_memory() -> None:
    s = SolverSettings()
    assert choose_strategy(tiny_instance(1, n_users=6, n_servers=3), s).route == "enumerate"
    assert choose_strategy(tiny_instance(1, n_users=30, n_servers=3), s).route == "lp"
    # one GPU profile, unequal budgets: the dual route from exact_users_one_profile users on;
    # with a second profile the LP route keeps its exact_users
    unequal = tiny_instance(1, n_users=100, server_budget_fractions=(0.3, 0.2))
    mixed = tiny_instance(1, n_users=100, server_budget_fractions=(0.3, 0.2), mixed_profiles=True)
    assert choose_strategy(unequal, s).route == "dual"
    assert choose_strategy(unequal, replace(s, exact_users_one_profile=100)).route == "lp"
    assert choose_strategy(mixed, s).route == "lp"
    big = tiny_instance(1, n_users=200, server_budget_fractions=(0.3, 0.2))
    plan = choose_strategy(big, s)
    assert plan.route == "dual" and plan.top_k is None and len(plan.classes) == 2
    tight = choose_strategy(big, replace(s, max_dual_entries=200 * 2 * 2 * 12))
    assert tight.top_k == 12 and "top-12" in tight.scope
    assert int(tight.pair_mask.sum(axis=0).max()) <= 13  # its 12 and its own prompt
    crowded = choose_strategy(big, replace(s, max_dual_entries=100))
    assert crowded.route == "heuristic" and crowded.pair_mask is None
    assert crowded.scope.startswith("none")
    with pytest.raises(CapacityError, match="option table"):
        choose_strategy(big, replace(s, max_table_bytes=1_000))


def test_large_instance_gets_a_certified_dual_bound() -> None:
    inst = tiny_instance(3, n_users=180, server_budget_fractions=(0.3, 0.15, 0.05),
                         batch_caps=(3, 2, 1))
    res = solve(inst, time_limit=60)
    assert res.method == "dual" and "dual_bound" in res.stats
    assert res.plan is not None and not check_feasible(inst, res.plan)
    assert math.isfinite(res.bound) and res.bound >= res.objective
    assert res.gap < 0.05, res.gap


def test_share_floor_keeps_low_similarity_pairs_apart() -> None:
    free = tiny_instance(4, n_users=6, server_budget_fractions=(0.5,))
    floor = float(np.quantile(free.sim, 0.7))
    inst = tiny_instance(4, n_users=6, server_budget_fractions=(0.5,),
                         min_share_similarity=floor)
    res = solve(inst, time_limit=30, mip_gap=1e-9)
    assert res.status == OPTIMAL
    dec = res.plan.to_decision(inst)
    p_u = dec.public[dec.user_group]
    n = np.flatnonzero(p_u >= 0)
    assert np.all(inst.sim[p_u[n], n] >= floor)
    assert res.objective == pytest.approx(brute_force(inst)[0], rel=1e-9, abs=1e-9)
    assert res.objective <= solve(free, time_limit=30, mip_gap=1e-9).objective + 1e-9
    # a plan that shares below the floor is reported as breaking it
    free_plan = solve(free, time_limit=30, mip_gap=1e-9).plan.to_decision(free)
    fp = free_plan.public[free_plan.user_group]
    if np.any((fp >= 0) & (free.sim[np.maximum(fp, 0), np.arange(6)] < floor)):
        assert any("min_share_similarity" in v for v in check_feasible(inst, free_plan))


def test_infeasible_unequal_servers_are_diagnosed() -> None:
    inst = tiny_instance(16, n_users=5, server_budget_fractions=(0.75, 0.25))
    starved = replace(inst, budget_s=np.zeros(2), scenario=inst.scenario.with_(
        common_steps_min=1, edge_steps_min=1))
    assert brute_force(starved)[1] is None
    res = solve(starved, time_limit=30)
    assert res.status == INFEASIBLE and res.diagnostics


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), deadlines=st.booleans(), solo=st.booleans(),
       grouping=st.sampled_from(["profile", "all"]))
def test_pooled_servers_relax_the_instance(seed: int, deadlines: bool, solo: bool,
                                           grouping: str) -> None:
    """Servers pooled at their smallest figures (per GPU profile, or all into one) never bound
    below the exact optimum; the pessimistic merge takes the largest figures."""
    from his_opt.allocation._exact import merged_instance, pooled_instance

    inst = tiny_instance(seed, n_users=5, server_budget_fractions=(0.5, 0.3, 0.2),
                         batch_caps=(3, 2, 1), mixed_profiles=True,
                         deadlines=(3.0, 6.0) if deadlines else None,
                         common_steps_min=0 if solo else 1)
    best, _ = brute_force(inst)
    assume(math.isfinite(best))
    classes = inst.servers_by_profile() if grouping == "profile" else [[0, 1, 2]]
    assert grouping == "all" or classes == [[0, 2], [1]]  # base profile on servers 1 and 3
    pooled = pooled_instance(inst, classes)
    assert pooled.n_servers == len(classes)
    assert pooled.budget_s.sum() == pytest.approx(inst.budget_s.sum())
    assert pooled.beta[0] == inst.beta[classes[0]].min() and pooled.batch_images[0] == 3
    relaxed, _ = brute_force(pooled)
    assert relaxed >= best - 1e-9
    assert merged_instance(inst).beta[0] == inst.beta.max()


def _every_launch_entry(dual: ServerDual, pi: np.ndarray):  # noqa: ANN202
    return dual._near_launch(pi, math.inf, sys.maxsize)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), lam=st.floats(0.0, 3.0), margin=st.sampled_from([1e-5, 1e-3]),
       launch=st.booleans())
def test_polish_on_near_entries_reports_exact_values(seed: int, lam: float, margin: float,
                                                      launch: bool) -> None:
    """The polish works on the entries near the active ones; its value must be ``D`` (or
    ``D_L``) over every entry at the prices it returns. It starts from perturbed ascent prices,
    so it moves prices well past the margin (a tiny margin forces many re-selections)."""
    import time

    inst = tiny_instance(seed, n_users=12, n_servers=2, budget_fraction=0.3)
    dual = ServerDual(inst, build_option_table(inst), inst.servers_identical(), _all_pairs(inst))
    dual._entries(np.full(len(dual.classes), lam), 0.0)
    pi = dual._ascend(600, time.perf_counter() + 10)
    assume(pi is not None)
    pi = pi + np.random.default_rng(seed).uniform(0.0, 1.0, len(pi))  # too high: it falls

    def exact(p: np.ndarray):  # noqa: ANN202
        return dual._value_launch(p, _every_launch_entry(dual, p)) if launch else dual._value(p)

    start = exact(pi)[0]
    s = SolverSettings(polish_rounds=200, polish_margin=margin)
    val, best_pi, g_lam, _ = dual._polish(pi, start - 0.05 * abs(start), s,
                                          time.perf_counter() + 10, launch=launch)
    full, _, full_g_lam, _ = exact(best_pi)
    assert val == pytest.approx(full, rel=1e-12, abs=1e-9)
    assert np.allclose(g_lam, full_g_lam) and val <= start + 1e-9
    assert float((best_pi - pi).min()) < -margin * float(np.abs(pi).mean())  # left it


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), lam=st.floats(2.0, 8.0), deadlines=st.booleans(),
       solo=st.booleans(), groups=st.sampled_from([None, 1]))
def test_launch_overhead_dual_bounds_the_optimum(seed: int, lam: float, deadlines: bool,
                                                 solo: bool, groups: int | None) -> None:
    """``D_L`` (each group's launch overhead ``alpha max y`` priced in) stays a valid bound when
    polished towards the exact optimum itself, and is never above ``D`` at the same prices.
    The overhead is scaled up (x3, a third of an edge step) so that groups pay it."""
    import time

    inst = tiny_instance(seed, n_users=5, n_servers=2, budget_fraction=0.3,
                         common_steps_min=0 if solo else 1, max_groups=groups,
                         deadlines=(3.0, 6.0) if deadlines else None)
    inst = replace(inst, alpha=inst.alpha * 3)
    best, _ = brute_force(inst)
    assume(math.isfinite(best))
    dual = ServerDual(inst, build_option_table(inst), inst.servers_identical(), _all_pairs(inst))
    dual._entries(np.full(len(dual.classes), lam), 0.5 * lam if groups else 0.0)
    pi = dual._ascend(600, time.perf_counter() + 10)
    assume(pi is not None)
    polished = dual._polish(pi, best, SolverSettings(polish_rounds=400),
                            time.perf_counter() + 10, launch=True)
    assert polished is not None
    assert polished[0] >= best - 1e-9 * max(1.0, abs(best))
    pi = polished[1]
    plain = dual._value(pi)[0]
    with_launch = dual._value_launch(pi, _every_launch_entry(dual, pi))[0]
    assert with_launch == pytest.approx(polished[0]) and with_launch <= plain + 1e-9
