"""The group placement MILP (whole groups re-placed on the servers, edge steps re-chosen by price
level): exact against enumeration of its options, feasible, never worse than its start."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from his_opt.allocation import solve
from his_opt.allocation._decision import Decision
from his_opt.allocation._evaluate import check_feasible, score_decision
from his_opt.allocation._options import build_option_table
from his_opt.allocation._placement import place_by_milp
from his_opt.allocation._primal import price_guess
from his_opt.allocation._synthetic import tiny_instance

LEVELS = (0.0, 0.25, 1.0, 4.0, 1e6)


def _instance(seed: int, **kw):  # noqa: ANN202
    return tiny_instance(seed, n_users=6, server_budget_fractions=(0.35, 0.2, 0.1),
                         batch_caps=(3, 2, 1), mixed_profiles=True, **kw)


def _start(inst) -> Decision | None:  # noqa: ANN001
    res = solve(inst, time_limit=5)
    return None if res.plan is None else res.plan.to_decision(inst)


def _crowded(inst, dec: Decision) -> Decision:  # noqa: ANN001
    """``dec``'s groups all on server 0 with no edge steps (a poor start), when feasible."""
    dec = dec.compact()
    crowded = Decision(np.zeros(dec.n_groups, dtype=int), dec.public, dec.x, dec.user_group,
                       np.zeros(inst.n_users, dtype=int))
    return dec if check_feasible(inst, crowded) else crowded


def _prices(inst) -> np.ndarray:  # noqa: ANN001
    lam = price_guess(inst)
    return np.where(lam > 0, lam, 1.0)


def _options(inst, table, dec: Decision, lam: np.ndarray) -> list[list[tuple[int, np.ndarray]]]:  # noqa: ANN001
    """Per group, every (server, members' y) the MILP may choose: its own, and each level's best
    response on each server (the module docstring's definition, written out by user)."""
    out = []
    for grp in range(dec.n_groups):
        members = np.flatnonzero(dec.user_group == grp)
        i = int(np.searchsorted(table.xs, dec.x[grp]))
        opts = [(int(dec.server[grp]), dec.y[members].copy())]
        for s in range(inst.n_servers):
            for t in LEVELS:
                ys = []
                for n in members:
                    feas = table.feasible[n, s, i]
                    v = np.where(feas, table.value0[n, s, i] - t * lam[s] * table.gpu[n, s, i],
                                 -np.inf)
                    ys.append(int(np.argmax(v)) if feas.any() else -1)
                if min(ys) >= 0:
                    opts.append((s, np.array(ys)))
        out.append(opts)
    return out


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), solo=st.booleans())
def test_placement_milp_equals_enumeration_of_its_options(seed: int, solo: bool) -> None:
    """From a poor start (every group on one server, no edge steps), over every choice of one
    option per group (server and members' y, checked by the plan evaluator and the
    feasibility check), the MILP's plan is the best feasible one: its values and GPU times are
    the model's, exactly."""
    inst = _instance(seed, common_steps_min=0 if solo else 1, deadlines=(40.0, 90.0))
    dec = _start(inst)
    if dec is None:
        return
    dec = _crowded(inst, dec)
    table = build_option_table(inst)
    lam = _prices(inst)
    opts = _options(inst, table, dec, lam)
    best = -np.inf
    for combo in itertools.product(*opts):
        server = np.array([s for s, _ in combo])
        y = np.zeros(inst.n_users, dtype=int)
        for grp, (_, ys) in enumerate(combo):
            y[dec.user_group == grp] = ys
        cand = Decision(server, dec.public, dec.x, dec.user_group, y)
        if not check_feasible(inst, cand):
            best = max(best, score_decision(inst, cand).objective)
    placed = place_by_milp(inst, table, dec, lam, levels=LEVELS, max_vars=10_000, time_limit=10)
    assert placed is not None and not check_feasible(inst, placed)
    got = score_decision(inst, placed).objective
    assert abs(got - best) <= 1e-4 * max(1.0, abs(best))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), solo=st.booleans())
def test_placement_is_feasible_and_never_worse(seed: int, solo: bool) -> None:
    """From a feasible plan (the solver's, or its groups crowded onto one server with no edge
    steps), the re-placed plan is feasible and scores at least as much."""
    inst = tiny_instance(seed, n_users=8, server_budget_fractions=(0.3, 0.2, 0.1, 0.1),
                         batch_caps=(3, 2, 1, 2), mixed_profiles=True, deadlines=(40.0, 90.0),
                         min_quality=(0.2, 0.3), common_steps_min=0 if solo else 1)
    dec = _start(inst)
    if dec is None:
        return
    dec = _crowded(inst, dec)
    table = build_option_table(inst)
    placed = place_by_milp(inst, table, dec, _prices(inst),
                           levels=(0.0, 0.5, 1.0, 2.0, 1e6), max_vars=10_000, time_limit=10)
    assert placed is not None and not check_feasible(inst, placed)
    before = score_decision(inst, dec).objective
    assert score_decision(inst, placed).objective >= before - 1e-9 * max(1.0, abs(before))


def test_placement_fills_idle_servers() -> None:
    """Every group crowded onto one server with no edge steps, the others idle: the MILP gains
    (more edge steps, wherever they fit best); with room for one group's options only, the
    largest group moves or re-splits and the others stay as they were."""
    inst = _instance(3, common_steps_min=1)
    dec = _start(inst)
    assert dec is not None and dec.y.max() > 0  # the optimum uses edge steps
    table = build_option_table(inst)
    dec = dec.compact()
    crowded = Decision(np.zeros(dec.n_groups, dtype=int), dec.public, dec.x, dec.user_group,
                       np.zeros(inst.n_users, dtype=int))
    assert not check_feasible(inst, crowded) and dec.n_groups >= 2
    lam = _prices(inst)
    levels = (0.0, *np.geomspace(0.05, 50.0, 25).tolist(), 1e6)  # the start price is a guess
    placed = place_by_milp(inst, table, crowded, lam, levels=levels, max_vars=10_000,
                           time_limit=10)
    assert placed is not None and not check_feasible(inst, placed)
    gain = score_decision(inst, placed).objective - score_decision(inst, crowded).objective
    assert gain > 1e-3
    one = place_by_milp(inst, table, crowded, lam, levels=levels,
                        max_vars=inst.n_servers * (len(levels) + 1), time_limit=10)
    size = np.bincount(crowded.user_group, minlength=crowded.n_groups)
    largest = int(np.argmax(size))
    assert one is not None and not check_feasible(inst, one)
    rest = crowded.user_group != largest
    assert np.all(np.delete(one.server, largest) == 0) and np.all(one.y[rest] == 0)


def test_zero_prices_keep_one_option_per_server(monkeypatch) -> None:  # noqa: ANN001
    """Where every server's price is 0 every level gives the same steps: the MILP holds as many
    options with four levels as with one, and picks an equally good plan."""
    from his_opt.allocation import _placement

    sizes = []
    real = _placement.solve_highs

    def counting(c, *args, **kw):  # noqa: ANN001, ANN002, ANN003, ANN202
        sizes.append(len(c))
        return real(c, *args, **kw)

    monkeypatch.setattr(_placement, "solve_highs", counting)
    inst = _instance(5, common_steps_min=1)
    dec = _start(inst)
    assert dec is not None
    table = build_option_table(inst)
    zero = np.zeros(inst.n_servers)
    many = place_by_milp(inst, table, dec, zero, levels=(0.0, 1.0, 2.0, 1e6), max_vars=10_000,
                         time_limit=10)
    one = place_by_milp(inst, table, dec, zero, levels=(0.0,), max_vars=10_000, time_limit=10)
    assert many is not None and one is not None
    assert sizes[0] == sizes[1]
    assert score_decision(inst, many).objective == score_decision(inst, one).objective
