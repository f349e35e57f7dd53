"""The solver's dual on a local Ray instance: the same bound guarantee as in one process."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from his_opt.allocation import SolverSettings, check_feasible, exact_optimum, solve
from his_opt.allocation._synthetic import tiny_instance

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    from his_opt._ray import connect_ray

    handle = connect_ray("local", num_cpus=2)
    yield handle
    handle.shutdown()


def test_dual_on_ray_bounds_the_optimum(local_ray) -> None:
    inst = tiny_instance(7, n_users=7, server_budget_fractions=(0.3, 0.15), batch_caps=(3, 1))
    best, _ = exact_optimum(inst)
    assert math.isfinite(best)
    # route the 7 users through the dual (as a large instance would be)
    settings = replace(SolverSettings(), enumerate_users=0, exact_users=0)
    res = solve(inst, time_limit=30, settings=settings, ray_address="local")
    assert res.method == "dual"
    assert res.stats["ray_tasks"] >= len(settings.price_grid)
    assert res.plan is not None and not check_feasible(inst, res.plan)
    assert res.bound >= best - 1e-7 * max(1.0, abs(best))
    assert res.objective <= best + 1e-7 * max(1.0, abs(best))
    local = solve(inst, time_limit=30, settings=settings)
    assert local.bound >= best - 1e-7 * max(1.0, abs(best))


def test_heuristic_route_bound_on_ray_bounds_the_optimum(local_ray) -> None:
    """The ``heuristic`` route's bound on pooled servers runs its line search as Ray tasks;
    its value still bounds the exact optimum."""
    inst = tiny_instance(7, n_users=7, server_budget_fractions=(0.4, 0.25, 0.15),
                         batch_caps=(3, 2, 1), mixed_profiles=True)
    best, _ = exact_optimum(inst)
    assert math.isfinite(best)
    per_public = inst.n_users * 2 * len(inst.x_values)  # two profiles pooled
    settings = replace(SolverSettings(), enumerate_users=0, exact_users=0,
                       max_dual_entries=per_public * inst.n_publics,
                       min_dual_top_k=inst.n_publics)
    res = solve(inst, time_limit=30, settings=settings, ray_address="local")
    assert res.method == "heuristic" and res.stats["pooled_bound_classes"] == 2
    assert res.stats["ray_tasks"] >= len(settings.price_grid)
    assert res.plan is not None and not check_feasible(inst, res.plan)
    assert res.stats["pooled_bound"] >= best - 1e-7 * max(1.0, abs(best))
