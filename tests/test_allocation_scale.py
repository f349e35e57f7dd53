"""What keeps large instances within their memory plan and time: the option table, the top-k
mask and the dense search's public choice built in chunks of users (the same numbers as in one
block), and the split's leftover fill in passes (it still ends where no single step fits)."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from his_opt.allocation import (
    SolverSettings,
    _instance,
    _primal,
    _split,
    _strategy,
    check_feasible,
    evaluate,
)
from his_opt.allocation._decision import Decision
from his_opt.allocation._heuristics import greedy_grouping
from his_opt.allocation._options import build_option_table
from his_opt.allocation._primal import solo_plan
from his_opt.allocation._split import greedy_split
from his_opt.allocation._synthetic import tiny_instance


def test_chunked_builds_equal_one_block(monkeypatch) -> None:  # noqa: ANN001
    """Chunks of a few users (boundaries inside the instance) give the one-block arrays."""
    inst = tiny_instance(3, n_users=23, n_servers=3, server_budget_fractions=(0.3, 0.2, 0.1),
                         deadlines=(3.0, 6.0), mixed_profiles=True, min_share_similarity=0.2)
    settings = SolverSettings(max_dense_cells=23 * 3 * len(inst.x_values) * 9)
    whole = build_option_table(inst)
    mask = _strategy._top_k_mask(inst, inst.share_allowed, 3)
    central = _primal._central_publics(inst, inst.share_allowed, settings)
    assert central is not None and 8 <= central.size < inst.n_publics
    cells = 3 * len(whole.xs) * len(whole.ys)
    chunk = 5 * max(cells, inst.n_publics)  # a few users at a time in every build
    assert chunk // cells < inst.n_users and chunk // inst.n_publics < inst.n_users
    monkeypatch.setattr(_instance, "_CHUNK_CELLS", chunk)
    parts = build_option_table(inst)
    assert np.array_equal(parts.feasible, whole.feasible)
    assert np.array_equal(parts.value0, whole.value0)
    assert np.array_equal(parts.gpu, whole.gpu)
    assert np.array_equal(_strategy._top_k_mask(inst, inst.share_allowed, 3), mask)
    assert np.array_equal(_primal._central_publics(inst, inst.share_allowed, settings), central)


def _lowest(inst, table, dec: Decision):  # noqa: ANN001, ANN202
    """``_fill``'s arguments from every user's smallest feasible ``y`` (as ``greedy_split``)."""
    s_u, _, feas, val, gpu = _split._user_tables(inst, table, dec)
    shared = dec.public >= 0
    we = inst.weights[2]
    rho = np.where(shared, we * inst.power_w[dec.server] * inst.alpha[dec.server], 0.0)
    a_g = np.where(shared, inst.alpha[dec.server], 0.0)
    return np.argmax(feas, axis=1), feas, val, gpu, rho, a_g


def _no_single_step_fits_and_gains(inst, table, dec: Decision) -> None:  # noqa: ANN001
    base = evaluate(inst, dec).objective
    for n in range(inst.n_users):
        for y in range(int(dec.y[n]) + 1, len(table.ys)):
            up = dec.y.copy()
            up[n] = y
            cand = dec.with_y(up)
            if not check_feasible(inst, cand):
                assert evaluate(inst, cand).objective <= base + 1e-9, (n, y)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(seed=st.integers(0, 10_000), n_users=st.integers(2, 8), n_servers=st.integers(1, 3),
       budget=st.floats(0.05, 1.0), deadlines=st.sampled_from([None, (3.0, 6.0)]))
def test_split_ends_where_no_single_step_fits_and_gains(seed: int, n_users: int, n_servers: int,
                                                        budget: float, deadlines) -> None:  # noqa: ANN001
    """The fill takes its steps in passes; like one step at a time, it stops only when no user's
    larger edge-step count both fits its server's budget and raises the objective."""
    inst = tiny_instance(seed, n_users=n_users, n_servers=n_servers, budget_fraction=budget,
                         edge_steps_max=4, total_steps=7, deadlines=deadlines)
    table = build_option_table(inst)
    checked = 0
    for dec in (solo_plan(inst, table), greedy_grouping(inst, table)):
        if dec is None:
            continue
        split = greedy_split(inst, table, dec)
        assert split is not None and not check_feasible(inst, split)
        _no_single_step_fits_and_gains(inst, table, split)
        # from every user's smallest feasible y (where the bisection gives up on a server),
        # the fill alone must take several passes to get there
        low = _split._fill(inst, split, *_lowest(inst, table, split))
        assert not check_feasible(inst, split.with_y(low))
        _no_single_step_fits_and_gains(inst, table, split.with_y(low))
        checked += 1
    assume(checked)  # tight deadlines can leave no plan at all


def test_build_instance_takes_over_a_handed_matrix_only_when_asked() -> None:
    from his_opt.allocation import build_instance
    from his_opt.allocation._synthetic import benchmark_workload
    from his_opt.hiqm import load_default_hiqm

    w = benchmark_workload(12, "1", random_state=0)
    sim = w.similarity()
    sim[0, 0] = 1.0 + 1e-9  # rounding past 1: clipped on the instance's matrix
    hiqm = load_default_hiqm(w.scenario.variant)
    kept = build_instance(w.users, w.servers, w.scenario, hiqm, similarity=sim)
    assert not np.shares_memory(kept.sim, sim) and sim[0, 0] > 1.0
    taken = build_instance(w.users, w.servers, w.scenario, hiqm, similarity=sim, copy=False)
    assert np.shares_memory(taken.sim, sim) and sim[0, 0] == 1.0
    assert np.array_equal(taken.sim, kept.sim)
