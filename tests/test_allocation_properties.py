"""Properties of every plan the solver and the baselines return (hypothesis)."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from his_opt.allocation import (
    PLAN_SCHEMA,
    STATUSES,
    check_feasible,
    evaluate,
    run_baselines,
    solve,
)
from his_opt.allocation._synthetic import tiny_instance

instances = st.builds(
    tiny_instance,
    seed=st.integers(0, 10_000),
    n_users=st.integers(2, 7),
    n_servers=st.integers(1, 2),
    total_steps=st.integers(5, 8),
    common_steps_min=st.integers(0, 1),
    common_steps_max=st.integers(2, 3),
    edge_steps_max=st.integers(2, 4),
    budget_fraction=st.floats(0.1, 2.0),
    cycle_model=st.booleans(),
    deadlines=st.sampled_from([None, (3.0, 6.0)]),
    min_quality=st.sampled_from([None, (0.15, 0.25)]),
    max_groups=st.sampled_from([None, 1, 2]),
)


def _check_plan(inst, plan) -> None:  # noqa: ANN001
    sc = inst.scenario
    T = sc.total_steps
    assert not check_feasible(inst, plan)
    ev = evaluate(inst, plan)
    assert np.all(ev.gpu_time_s <= inst.budget_s * (1 + 1e-9) + 1e-9)
    # the replayed schedule never exceeds the affine bound the budget constrains
    assert np.all(ev.gpu_time_simulated_s <= ev.gpu_time_s + 1e-9)
    doc = plan.to_dict()
    assert doc["schema"] == PLAN_SCHEMA
    groups = {g["group_id"]: g for g in doc["groups"]}
    user_index = {u: i for i, u in enumerate(inst.user_ids)}
    seen = set()
    for u in doc["users"]:
        x, y, z = u["common_steps"], u["edge_steps"], u["device_steps"]
        assert x + y + z == T
        assert sc.edge_steps_min <= y <= sc.edge_steps_max
        assert sc.device_steps_min <= z <= sc.device_steps_max
        g = groups[u["group_id"]]
        assert u["user_id"] in g["members"] and g["common_steps"] == x
        n = user_index[u["user_id"]]
        if g["public_prompt"] is None:
            assert x == 0 and len(g["members"]) == 1
            expected = inst.hiqm.unshared_quality()
            assert u["similarity"] == 1.0
        else:
            assert max(1, sc.common_steps_min) <= x <= sc.common_steps_max
            p = g["public_index"]
            assert inst.publics[p] == g["public_prompt"]
            assert abs(u["similarity"] - inst.sim[p, n]) < 1e-12
            expected = inst.hiqm.predict(inst.sim[p, n], x)
        assert abs(u["predicted_quality"] - float(expected)) < 1e-12
        if np.isfinite(inst.min_quality[n]):
            assert u["predicted_quality"] >= inst.min_quality[n] - 1e-9
        if np.isfinite(inst.deadline_s[n]):
            assert u["delay_s"] <= inst.deadline_s[n] + 1e-9
        seen.add(u["user_id"])
    assert seen == set(inst.user_ids)
    if sc.max_groups is not None:
        assert sum(g["public_prompt"] is not None for g in doc["groups"]) <= sc.max_groups
    # energy shares add up to the total
    assert abs(sum(u["energy_j"] for u in doc["users"]) - ev.energy_j) < 1e-6 * max(1, ev.energy_j)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inst=instances)
def test_every_plan_respects_the_model(inst) -> None:  # noqa: ANN001
    res = solve(inst, time_limit=20, mip_gap=1e-6)
    assert res.status in STATUSES
    if res.plan is None:
        assert res.status in ("infeasible", "time_limit") and res.diagnostics
    else:
        _check_plan(inst, res.plan)
        assert res.bound >= res.objective - 1e-9
    for name, b in run_baselines(inst, random_state=0, time_limit=10).items():
        assert b.status in STATUSES, name
        if b.plan is not None:
            _check_plan(inst, b.plan)
            # the solver's optimum is at least as good as any baseline
            if res.plan is not None and res.status == "optimal":
                assert res.objective >= b.objective - 1e-6 * max(1.0, abs(b.objective))
