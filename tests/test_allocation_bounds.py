"""The large-instance machinery: the dual-ascent bound, merged servers, the re-placement MILP.

Every bound must hold against brute force; every plan must be feasible; the large-instance path
of :func:`solve` must report a finite gap."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from his_opt.allocation import (
    INFEASIBLE,
    OPTIMAL,
    brute_force,
    check_feasible,
    evaluate,
    solve,
)
from his_opt.allocation._ascent import ascent_bound
from his_opt.allocation._decision import Decision
from his_opt.allocation._options import build_option_table
from his_opt.allocation._solve import _column_milp, merged_instance
from his_opt.allocation._split import greedy_split
from his_opt.allocation._synthetic import tiny_instance


def _ascent(inst, target: float = -math.inf):  # noqa: ANN001, ANN202
    table = build_option_table(inst)
    return ascent_bound(inst, table, lam_guess=1.0, target=target, time_limit=30)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), n_users=st.integers(2, 6),
       budget=st.sampled_from([0.2, 0.5, 1.0, 3.0]), solo=st.booleans(),
       deadlines=st.booleans())
def test_ascent_bound_holds(seed: int, n_users: int, budget: float, solo: bool,
                            deadlines: bool) -> None:
    inst = tiny_instance(seed, n_users=n_users, budget_fraction=budget,
                         common_steps_min=0 if solo else 1,
                         deadlines=(3.0, 6.0) if deadlines else None)
    best, _ = brute_force(inst)
    assume(math.isfinite(best))  # an infeasible instance bounds nothing
    bound = _ascent(inst, target=best).bound
    assert bound >= best - 1e-7 * max(1.0, abs(best))


def test_polishing_only_lowers_the_ascent_bound() -> None:
    inst = tiny_instance(21, n_users=8, budget_fraction=0.4)
    best, _ = brute_force(inst)
    table = build_option_table(inst)
    raw = ascent_bound(inst, table, lam_guess=1.0, target=best, polish_iter=0)
    polished = ascent_bound(inst, table, lam_guess=1.0, target=best, polish_iter=400)
    assert best - 1e-9 <= polished.bound <= raw.bound + 1e-9


def test_ascent_bound_refuses_what_it_does_not_model() -> None:
    inst = tiny_instance(3, n_users=4, n_servers=2)
    with pytest.raises(ValueError, match="one"):
        _ascent(inst)
    capped = tiny_instance(3, n_users=4, max_groups=1)
    with pytest.raises(ValueError, match="max_groups"):
        _ascent(capped)


def _unequal(seed: int, n_users: int = 5) -> object:
    inst = tiny_instance(seed, n_users=n_users, n_servers=2, budget_fraction=0.5)
    return replace(inst, budget_s=inst.budget_s * np.array([1.5, 0.5]))


@pytest.mark.parametrize("seed", [12, 13, 14])
def test_merged_servers_bound_and_plan(seed: int) -> None:
    inst = _unequal(seed)
    assert len(inst.servers_identical()) == 2
    best, _ = brute_force(inst)
    optimistic = merged_instance(inst, optimistic=True)
    assert brute_force(optimistic)[0] >= best - 1e-9  # a relaxation
    pessimistic = merged_instance(inst, optimistic=False)
    assert pessimistic.budget_s[0] == pytest.approx(inst.budget_s.sum())
    assert pessimistic.beta[0] == inst.beta.max() and optimistic.beta[0] == inst.beta.min()
    res = solve(inst, time_limit=60, mip_gap=1e-9)
    assert res.status == OPTIMAL
    assert res.objective == pytest.approx(best, rel=1e-6, abs=1e-6)
    assert not check_feasible(inst, res.plan)


def test_replacement_milp_never_loses() -> None:
    inst = _unequal(15, n_users=5)
    table = build_option_table(inst)
    # everybody in one group on the smaller server: a poor but feasible start
    one = Decision.from_groups([(1, 0, 1, np.arange(inst.n_users))],
                               np.zeros(inst.n_users, dtype=int), inst.n_users)
    start = greedy_split(inst, table, one)
    assert start is not None and not check_feasible(inst, start)
    better = _column_milp(inst, table, start, None, 30.0, 1e-9)
    assert better is not None
    assert not check_feasible(inst, better)
    assert evaluate(inst, better).objective > evaluate(inst, start).objective + 1e-6
    assert evaluate(inst, better).objective <= brute_force(inst)[0] + 1e-9


def test_infeasible_unequal_servers_are_diagnosed() -> None:
    inst = _unequal(16)
    starved = replace(inst, budget_s=np.zeros(2), scenario=inst.scenario.with_(
        common_steps_min=1, edge_steps_min=1))
    res = solve(starved, time_limit=30)
    assert res.status == INFEASIBLE and res.diagnostics


def test_large_single_class_instance_uses_the_ascent_bound() -> None:
    inst = tiny_instance(3, n_users=180, n_servers=2, budget_fraction=0.4)
    inst = replace(inst, budget_s=np.full(2, inst.budget_s.mean()))
    assert len(inst.servers_identical()) == 1
    res = solve(inst, time_limit=60)
    assert res.plan is not None and not check_feasible(inst, res.plan)
    assert "ascent_bound" in res.stats
    assert math.isfinite(res.bound) and res.bound >= res.objective
    assert res.gap < 0.05, res.gap
