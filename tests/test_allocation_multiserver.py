"""The solver on several servers (identical, unequal budgets and launch caps, mixed GPU profiles)
against the exact enumerator; limits, bad arguments and conflicting constraints.

Shrinking is off in the property tests: every example runs the solver for up to its time limit,
and the first failing example (printed by hypothesis) is reproducible from its seed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from his_opt.allocation import (
    FEASIBLE_GAP,
    INFEASIBLE,
    OPTIMAL,
    TIME_LIMIT,
    build_instance,
    check_feasible,
    evaluate,
    exact_optimum,
    greedy,
    solve,
)
from his_opt.allocation._synthetic import (
    benchmark_workload,
    cluster_similarity,
    synthetic_users,
    tiny_instance,
)
from his_opt.costs import EdgeServer, load_profile
from his_opt.hiqm import load_default_hiqm
from his_opt.scenario import Scenario

PROPERTY = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow],
                    phases=[Phase.explicit, Phase.reuse, Phase.generate])
SOLVE_LIMIT = 10.0


def _tol(v: float) -> float:
    return 1e-6 * max(1.0, abs(v))


@st.composite
def multiserver_cases(draw, harsh: bool = False):  # noqa: ANN001, ANN201
    """:func:`tiny_instance` options: up to 8 users on 1-3 servers that are identical, unequal (budgets and launch caps) or
    mixed (every second server on a slower GPU); ``harsh`` draws limits that often conflict."""
    n_s = draw(st.integers(1, 3))
    kind = draw(st.sampled_from(["identical", "unequal", "mixed"]))
    kw = dict(
        seed=draw(st.integers(0, 10_000)),
        n_users=draw(st.integers(2, 8)),
        total_steps=draw(st.integers(5, 7)),
        common_steps_min=draw(st.integers(0, 1)),
        common_steps_max=draw(st.integers(2, 3)),
        edge_steps_max=draw(st.integers(2, 3)),
        max_groups=draw(st.sampled_from([None, 1, 2])),
    )
    if harsh:
        kw.update(deadlines=draw(st.sampled_from([(1.0, 3.0), (2.0, 4.0)])),
                  min_quality=draw(st.sampled_from([None, (0.25, 0.32)])))
    else:
        kw.update(deadlines=draw(st.sampled_from([None, (3.0, 6.0)])),
                  min_quality=draw(st.sampled_from([None, (0.15, 0.25)])))
    lo, hi = (0.01, 0.2) if harsh else (0.05, 0.6)
    if kind == "identical":
        f = draw(st.floats(lo, hi))
        kw.update(server_budget_fractions=[f] * n_s, batch_caps=[3] * n_s)
    else:
        kw.update(server_budget_fractions=draw(st.lists(st.floats(lo, hi), min_size=n_s,
                                                        max_size=n_s)),
                  batch_caps=draw(st.lists(st.integers(1, 4), min_size=n_s, max_size=n_s)),
                  mixed_profiles=kind == "mixed")
    return kw


def _check_against_enumerator(inst, best: float) -> None:  # noqa: ANN001
    res = solve(inst, time_limit=SOLVE_LIMIT, mip_gap=1e-7)
    if res.plan is not None:
        assert not check_feasible(inst, res.plan), check_feasible(inst, res.plan)
        assert abs(evaluate(inst, res.plan).objective - res.objective) <= _tol(res.objective)
        base = greedy(inst)
        if base.plan is not None:
            assert res.objective >= base.objective - _tol(base.objective), (res.objective,
                                                                             base.objective)
    if res.status == INFEASIBLE:
        assert best == -math.inf, f"solve says infeasible; the enumerator found {best}"
        assert res.plan is None and res.diagnostics
        return
    assert best > -math.inf, f"no plan exists, yet solve says {res.status}"
    assert res.bound >= best - _tol(best), (res.bound, best)
    assert res.status == OPTIMAL, (res.status, res.objective, res.bound, best, res.diagnostics)
    assert abs(res.objective - best) <= _tol(best), (res.objective, best)


@settings(PROPERTY, max_examples=10)
@given(case=multiserver_cases())
# found by hypothesis: fe5da20 stops at its limit with 192.618 against the optimum 192.828
@example(case=dict(seed=58, n_users=7, total_steps=6, common_steps_min=0, common_steps_max=3,
                   edge_steps_max=3, max_groups=None, deadlines=(3.0, 6.0),
                   min_quality=(0.15, 0.25), server_budget_fractions=[0.24412995989924974] * 3,
                   batch_caps=[3, 3, 3]))
def test_solver_equals_exact_optimum_on_several_servers(case: dict) -> None:
    inst = tiny_instance(**case)
    best, dec = exact_optimum(inst, time_limit=60)
    if dec is not None:
        assert not check_feasible(inst, dec)
    _check_against_enumerator(inst, best)


@settings(PROPERTY, max_examples=8)
@given(case=multiserver_cases(harsh=True))
# found by hypothesis: an infeasible instance on which fe5da20's LP bound raises ValueError
@example(case=dict(seed=3199, n_users=7, total_steps=7, common_steps_min=0, common_steps_max=2,
                   edge_steps_max=2, max_groups=2, deadlines=(2.0, 4.0), min_quality=(0.25, 0.32),
                   server_budget_fractions=[0.024060046897854848, 0.05338457255531316],
                   batch_caps=[3, 1], mixed_profiles=False))
def test_infeasible_verdicts_are_confirmed(case: dict) -> None:
    # tight deadlines, quality floors and budgets: many instances have no plan
    inst = tiny_instance(**case)
    _check_against_enumerator(inst, exact_optimum(inst, time_limit=60)[0])


def test_small_time_limit_on_a_large_instance_returns_a_feasible_plan() -> None:
    inst = benchmark_workload(3000, "3-identical", random_state=0).instance()
    res = solve(inst, time_limit=0.5)
    assert res.status in (TIME_LIMIT, FEASIBLE_GAP), res.status
    assert res.plan is not None
    assert not check_feasible(inst, res.plan)


@pytest.mark.parametrize("kwargs, name", [
    (dict(time_limit=0), "time_limit"),
    (dict(time_limit=-5.0), "time_limit"),
    (dict(time_limit=math.nan), "time_limit"),
    (dict(mip_gap=-1e-3), "gap"),
    (dict(method="fastest"), "method"),
    (dict(backend="gurobi"), "backend"),
])
def test_bad_arguments_raise_value_error(kwargs: dict, name: str) -> None:
    inst = tiny_instance(0, n_users=3, n_servers=2)
    with pytest.raises(ValueError, match=name):
        solve(inst, **kwargs)


def _conflict_instance(min_quality: float, deadline_s: float):  # noqa: ANN202
    """Six users on one roomy A100 server (default scenario and HIQM); user u1 gets the limits."""
    sc = Scenario()
    sim, _ = cluster_similarity(6, 2, spread=0.6, random_state=3)
    users = synthetic_users([f"prompt {i}" for i in range(6)], sc)
    users.loc[0, "min_quality"] = min_quality
    users.loc[0, "deadline_s"] = deadline_s
    server = EdgeServer("es1", load_profile(sc.server_profile), 60.0)
    return build_instance(users, [server], sc, load_default_hiqm(sc.variant), similarity=sim)


def test_constraints_that_conflict_only_together_end_in_a_diagnosis() -> None:
    # each limit alone leaves a plan (the enumerator says so); together none
    assert exact_optimum(_conflict_instance(0.31, np.nan))[1] is not None
    assert exact_optimum(_conflict_instance(np.nan, 5.0))[1] is not None
    inst = _conflict_instance(0.31, 5.0)
    assert exact_optimum(inst) == (-math.inf, None)
    res = solve(inst, time_limit=20)
    assert res.status == INFEASIBLE and res.plan is None
    assert any("u1" in line for line in res.diagnostics), res.diagnostics
