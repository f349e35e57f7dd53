"""The Lagrangian dual with one price per server class, the strategy's memory plan, the
per-server primal steps and the similarity floor, checked against the exact enumerator."""

from __future__ import annotations

import math
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


@pytest.mark.parametrize("seed", [12, 13, 14])
def test_optimistic_merged_servers_relax_the_instance(seed: int) -> None:
    from his_opt.allocation._exact import merged_instance

    inst = tiny_instance(seed, n_users=5, server_budget_fractions=(0.75, 0.25),
                         batch_caps=(3, 1), mixed_profiles=True)
    best, _ = brute_force(inst)
    assert math.isfinite(best)  # the seeds are feasible: the relaxation has something to bound
    relaxed, _ = brute_force(merged_instance(inst, optimistic=True))
    assert relaxed >= best - 1e-9
    pessimistic = merged_instance(inst)
    assert pessimistic.beta[0] == inst.beta.max()
    assert merged_instance(inst, optimistic=True).beta[0] == inst.beta.min()


@pytest.mark.parametrize("seed", [21, 22])
def test_servers_pooled_by_profile_relax_the_instance(seed: int) -> None:
    from his_opt.allocation._exact import pooled_instance

    inst = tiny_instance(seed, n_users=5, server_budget_fractions=(0.5, 0.3, 0.2),
                         batch_caps=(3, 2, 1), mixed_profiles=True)
    profiles = inst.servers_by_profile()
    assert profiles == [[0, 2], [1]]  # servers 1 and 3 share the base profile, not budget/cap
    assert len(inst.servers_identical()) == 3
    best, _ = brute_force(inst)
    assert math.isfinite(best)
    pooled = pooled_instance(inst, profiles)
    assert pooled.n_servers == 2 and pooled.budget_s[0] == pytest.approx(inst.budget_s[[0, 2]].sum())
    assert pooled.beta[0] == inst.beta[[0, 2]].min() and pooled.batch_images[0] == 3
    relaxed, _ = brute_force(pooled)
    assert relaxed >= best - 1e-9
