"""The server-pattern bound (one knapsack per server) and its whole-pattern plans."""

from __future__ import annotations

import math
import time

import numpy as np
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
