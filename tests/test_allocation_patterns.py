"""The server-pattern bound (one knapsack per server) and its whole-pattern plans."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from his_opt.allocation import check_feasible, evaluate, exact_optimum, solve
from his_opt.allocation._knapsack_dual import (
    KnapsackDual,
    column_generation,
    pattern_plan,
    plan_patterns,
)
from his_opt.allocation._options import build_option_table
from his_opt.allocation._synthetic import tiny_instance


def _dual(inst, **kw):  # noqa: ANN001, ANN202
    classes = inst.servers_identical()
    return KnapsackDual(inst, build_option_table(inst), classes, **kw), classes


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), n_users=st.integers(2, 7),
       fractions=st.sampled_from([(0.3,), (0.2, 0.2), (1.0, 0.3), (0.4, 0.2, 0.1),
                                  (0.15, 0.15, 0.15)]),
       solo=st.booleans(), deadlines=st.booleans(), groups=st.sampled_from([None, 1]),
       mixed=st.booleans(), coarse=st.booleans())
def test_pattern_bound_and_plan_hold(seed: int, n_users: int, fractions: tuple[float, ...],
                                     solo: bool, deadlines: bool, groups: int | None,
                                     mixed: bool, coarse: bool) -> None:
    """At any prices ``L`` bounds the exact optimum; column generation only lowers it, never
    below the optimum; a whole-pattern plan is feasible and never above the optimum."""
    inst = tiny_instance(seed, n_users=n_users, server_budget_fractions=fractions,
                         common_steps_min=0 if solo else 1, max_groups=groups,
                         deadlines=(3.0, 6.0) if deadlines else None,
                         mixed_profiles=mixed and len(fractions) > 1)
    best, _ = exact_optimum(inst)
    assume(math.isfinite(best))
    tol = 1e-7 * max(1.0, abs(best))
    dual, classes = _dual(inst, max_units=4 if coarse else 160)
    rng = np.random.default_rng(seed)
    for _ in range(3):
        assert dual.evaluate(rng.normal(0.0, 5.0, inst.n_users))[0] >= best - tol
    pi0 = rng.normal(0.0, 1.0, inst.n_users)
    cg = column_generation(dual, [[] for _ in classes], pi0, deadline=time.perf_counter() + 20)
    assert best - tol <= cg.value <= dual.evaluate(pi0)[0] + tol
    plan = pattern_plan(dual, cg.patterns, classes, time_limit=5.0)
    if plan is not None:
        assert check_feasible(inst, plan) == []
        assert evaluate(inst, plan).objective <= best + tol


def test_incumbent_patterns_reproduce_the_plan() -> None:
    """A plan's loads, read back as patterns and picked by the MILP, are worth the plan."""
    inst = tiny_instance(3, n_users=6, server_budget_fractions=(0.3, 0.3, 0.3))
    best, dec = exact_optimum(inst)
    dual, classes = _dual(inst)
    plan = pattern_plan(dual, plan_patterns(dual, dec, classes), classes, time_limit=5.0)
    assert plan is not None and check_feasible(inst, plan) == []
    assert math.isclose(evaluate(inst, plan).objective, best, rel_tol=1e-9, abs_tol=1e-9)


def test_patterns_close_the_gap_on_tight_identical_servers() -> None:
    """Three identical tight servers: the LP lets a common phase be paid in thirds on each
    server; the pattern step keeps groups whole, so the bound it reports lies below the LP's."""
    inst = tiny_instance(11, n_users=12, server_budget_fractions=(0.12, 0.12, 0.12),
                         total_steps=10, common_steps_max=4, edge_steps_max=5)
    res = solve(inst, time_limit=20, settings=_lp_route())
    assert res.stats.get("pattern_rounds", 0) > 0
    assert res.bound < res.stats["lp_bound"] - 1e-6 * abs(res.stats["lp_bound"])


def _lp_route():  # noqa: ANN202
    from his_opt.allocation import SolverSettings

    return SolverSettings(enumerate_users=0, pattern_min_gap=0.0)


def test_widened_scope_covers_the_plan_and_fits_the_entries() -> None:
    """The dual route's scope after its first plan: each user's pair in that plan, the
    largest groups' publics for everyone, the floor kept, and the entry budget held."""
    from his_opt.allocation import SolverSettings
    from his_opt.allocation._strategy import choose_strategy, widen_to_publics

    inst = tiny_instance(5, n_users=12, n_servers=2, min_share_similarity=0.3)
    settings = SolverSettings(enumerate_users=0, exact_users=0,
                              max_dual_entries=12 * 2 * len(inst.x_values) * 4, min_dual_top_k=2)
    strategy = choose_strategy(inst, settings)
    assert strategy.route == "dual" and strategy.top_k == 4
    members = np.full(inst.n_users, -1)
    allowed = np.flatnonzero(inst.share_allowed[:, 0])
    members[0] = allowed[-1]
    publics = np.array([allowed[-1], 0, 1])
    wide, opened = widen_to_publics(inst, strategy, publics, members, settings)
    assert wide.top_k == 2 and opened == 2  # 4 fit per user, 2 go to the plan's publics
    assert wide.pair_mask[members[0], 0]
    assert not (wide.pair_mask & ~inst.share_allowed).any()
    for p in publics[:2]:
        assert (wide.pair_mask[p] == inst.share_allowed[p]).all()
    assert "largest groups" in wide.scope


def test_dual_route_bound_holds_with_a_widened_scope() -> None:
    """Forced onto the dual route with two candidates per user: the first plan widens the
    scope, the plan stays feasible and below the exact optimum, and the dual's own bound
    (not the reported maximum of bound and plan) lies above the plan."""
    from his_opt.allocation import SolverSettings

    inst = tiny_instance(1, n_users=8, n_servers=2, budget_fraction=0.4)
    best, _ = exact_optimum(inst)
    res = solve(inst, time_limit=20, settings=SolverSettings(
        enumerate_users=0, exact_users=0, max_dual_entries=8 * 2 * len(inst.x_values) * 2,
        min_dual_top_k=1))
    assert res.plan is not None and check_feasible(inst, res.plan.to_decision(inst)) == []
    assert res.objective <= best + 1e-7 * max(1.0, abs(best))
    assert "scope_publics" in res.stats and "largest groups" in res.bound_scope
    assert res.stats["dual_bound"] >= res.objective - 1e-7 * max(1.0, abs(res.objective))


def test_dual_route_on_unequal_servers_bounds_by_profile_then_by_server() -> None:
    """Three unequal servers, two GPU profiles, forced onto the dual route over every
    candidate: the profile-pooled bound and the per-server one that starts from its prices
    both lie above the exact optimum, and the reported bound is the smaller."""
    from his_opt.allocation import SolverSettings

    inst = tiny_instance(3, n_users=7, server_budget_fractions=(0.4, 0.2, 0.15),
                         batch_caps=(3, 2, 1), mixed_profiles=True)
    best, _ = exact_optimum(inst)
    assert math.isfinite(best)
    res = solve(inst, time_limit=20, settings=SolverSettings(enumerate_users=0, exact_users=0))
    assert res.method == "dual" and res.stats["top_k"] is None
    tol = 1e-7 * max(1.0, abs(best))
    assert res.stats["merged_bound"] >= best - tol and res.stats["dual_bound"] >= best - tol
    assert res.bound == pytest.approx(max(min(res.stats["merged_bound"], res.stats["dual_bound"]),
                                          res.objective))
    assert res.plan is not None and check_feasible(inst, res.plan.to_decision(inst)) == []


def test_dual_route_falls_back_to_the_sparse_search() -> None:
    """When no dense facility search fits its time (a prohibitive cost per cell), the plans
    come from the sparse search over the dual's entries: feasible, and the bound holds."""
    from his_opt.allocation import SolverSettings

    inst = tiny_instance(3, n_users=7, server_budget_fractions=(0.5,))
    best, _ = exact_optimum(inst)
    res = solve(inst, time_limit=10, settings=SolverSettings(
        enumerate_users=0, exact_users=0, dense_seconds_per_cell=10.0))
    assert res.method == "dual" and res.plan is not None
    assert check_feasible(inst, res.plan.to_decision(inst)) == []
    assert res.stats["dual_bound"] >= best - 1e-7 * max(1.0, abs(best))
    assert res.objective <= best + 1e-7 * max(1.0, abs(best))
