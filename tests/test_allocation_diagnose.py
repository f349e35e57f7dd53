"""Infeasible instances: which constraint cannot be met, and by how much."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np

from his_opt.allocation import INFEASIBLE, OPTIMAL, diagnose, solve
from his_opt.allocation._synthetic import tiny_instance


def _fastest_delay(inst, n: int) -> float:  # noqa: ANN001
    sc = inst.scenario
    best = np.inf
    xs = [0] if inst.allow_solo else []
    xs += list(range(max(1, sc.common_steps_min), sc.common_steps_max + 1))
    for s in range(inst.n_servers):
        for x in xs:
            for y in range(sc.edge_steps_min, sc.edge_steps_max + 1):
                z = sc.total_steps - x - y
                if not sc.device_steps_min <= z <= sc.device_steps_max:
                    continue
                d = (x * inst.tau_pub[s] + y * inst.tau_one[s]
                     + (inst.downlink_s[n] if z > 0 else 0.0) + z * inst.device_step_s[n])
                best = min(best, d)
    return best


def test_deadline_below_fastest_delay_names_user_and_shortfall() -> None:
    inst = tiny_instance(seed=21, n_users=5, budget_fraction=1.0)
    fastest = _fastest_delay(inst, 2)
    deadline = inst.deadline_s.copy()
    deadline[2] = fastest - 0.25
    bad = replace(inst, deadline_s=deadline)
    res = solve(bad, time_limit=20)
    assert res.status == INFEASIBLE and res.plan is None
    line = next(d for d in res.diagnostics if inst.user_ids[2] in d)
    assert "deadline" in line
    short = float(re.search(r"short by ([0-9.eE+-]+) s", line).group(1))
    assert abs(short - 0.25) < 1e-4
    fast = float(re.search(r"fastest possible delay ([0-9.eE+-]+) s", line).group(1))
    assert abs(fast - fastest) < 1e-4 * max(1.0, fastest)


def test_min_quality_above_reachable() -> None:
    inst = tiny_instance(seed=22, n_users=4)
    mq = np.full(inst.n_users, -np.inf)
    mq[1] = 0.99
    res = solve(replace(inst, min_quality=mq), time_limit=20)
    assert res.status == INFEASIBLE
    assert any(inst.user_ids[1] in d and "min_quality" in d for d in res.diagnostics)


def test_budget_too_small_reports_smallest_feasible_budget() -> None:
    # every user needs at least 2 edge steps, so the GPU budget cannot be zero-ish
    inst = tiny_instance(seed=23, n_users=5, n_servers=1, edge_steps_min=2,
                         budget_fraction=0.05)
    res = solve(inst, time_limit=30)
    assert res.status == INFEASIBLE
    line = next(d for d in res.diagnostics if "budget" in d)
    assert inst.server_names[0] in line and "smallest feasible budget" in line
    need = float(re.search(r"smallest feasible budget is ([0-9.eE+-]+) s", line).group(1))
    assert need > inst.budget_s[0]
    # with that budget the instance is feasible ...
    ok = solve(replace(inst, budget_s=np.array([need])), time_limit=30)
    assert ok.status == OPTIMAL and ok.plan is not None
    # ... and with a little less it is not
    less = replace(inst, budget_s=np.array([need * (1 - 1e-3)]))
    assert solve(less, time_limit=30).status == INFEASIBLE
    assert diagnose(less)


def test_feasible_instance_has_no_diagnosis() -> None:
    assert diagnose(tiny_instance(seed=24, n_users=4, budget_fraction=1.0)) == []
