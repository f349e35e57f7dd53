"""``his-opt solve --time-limit`` bounds the whole run: the plan of its time (solve, baselines,
report) and the baselines' share of what the solve leaves."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from _logs import logged

from his_opt.allocation._synthetic import tiny_instance
from his_opt.app import RunSettings, plan_run
from his_opt.cli._baselines import run_selected_baselines
from his_opt.cli._solve import main

EXAMPLES = Path(__file__).resolve().parents[1] / "his_opt" / "data" / "examples"


@pytest.mark.parametrize("limit,users,n_base,each", [
    (60.0, 50, 4, 10.0), (120.0, 50_000, 4, 10.0), (10.0, 30, 4, 10.0), (60.0, 50, 0, 10.0),
    (5.0, 1000, 1, 0.5),
])
def test_plan_fits_the_limit(limit, users, n_base, each):
    st = RunSettings()
    run = plan_run(limit, users, n_base, each, st)
    assert run.over_s == 0.0
    assert run.solve_s + run.baselines_s + run.report_s == pytest.approx(limit)
    assert run.baselines_s <= n_base * each + 1e-12
    assert run.baselines_s <= st.baseline_share * limit + 1e-12
    assert run.report_s == pytest.approx(max(st.report_floor_s, users * st.report_seconds_per_user))
    assert run.solve_s >= st.min_solve_share * limit
    assert 0 < run.baselines_left() <= limit - run.report_s


def test_a_report_larger_than_the_limit_is_said():
    """50,000 users at a 2 s limit: the report alone needs more; the solver keeps half the
    limit, the baselines get nothing and the plan says by how much the run will overrun."""
    run = plan_run(2.0, 50_000, 4, 10.0)
    assert run.solve_s == pytest.approx(1.0) and run.baselines_s == 0.0
    assert run.over_s == pytest.approx(run.solve_s + run.report_s - 2.0)
    # from the start, the baselines' deadline is the solve's end: nothing of the report's
    # time is theirs, and the overrun is the report's alone
    assert run.baselines_left() == pytest.approx(run.solve_s, abs=0.1)


def test_no_time_left_runs_no_baseline():
    """With nothing left of the limit every baseline reports ``time_limit`` and no plan (one
    that ignored the total would solve this tiny instance)."""
    out = run_selected_baselines(tiny_instance(0), ("IIS", "GFIS", "PPGFIS", "greedy"),
                                 time_limit=10.0, mip_gap=1e-4, random_state=0,
                                 total_s=lambda: 0.0)
    assert [r.status for r in out.values()] == ["time_limit"] * 4
    assert all(r.plan is None for r in out.values())
    solved = run_selected_baselines(tiny_instance(0), ("IIS",), time_limit=10.0, mip_gap=1e-4,
                                    random_state=0, total_s=lambda: 10.0)
    assert solved["IIS"].status != "time_limit"


def test_each_baseline_gets_an_equal_share_of_what_is_left():
    """Four baselines with 2 s left whenever one starts (they end at once): each is given an
    equal share of what is left for it and those after it (as logged), never its full 10 s."""
    with logged("his_opt.cli.baselines") as handler:
        run_selected_baselines(tiny_instance(0), ("IIS", "GFIS", "PPGFIS", "greedy"),
                               time_limit=10.0, mip_gap=1e-4, random_state=0,
                               total_s=lambda: 2.0)
    given = [float(re.search(r"time limit ([0-9.]+) s\)$", line).group(1))
             for line in handler.lines]
    assert given == [0.5, 0.7, 1.0, 2.0]  # 2/4, 2/3, 2/2, 2/1 (logged to 0.1 s)


def test_solve_records_the_run_limit_and_the_solvers_share(tmp_path):
    out, plan = tmp_path / "r.xlsx", tmp_path / "p.json"
    code = main([str(EXAMPLES / "users_small.csv"), "--out", str(out), "--plan", str(plan),
                 "--quiet", "--time-limit", "8"])
    assert code == 0
    status = json.loads(plan.read_text(encoding="utf-8"))["status"]
    run = plan_run(8.0, 8, 4, 10.0)
    assert status["run_time_limit_s"] == 8.0
    # the instance was built inside the limit: its seconds came out of the solver's share
    assert 0.5 * 8.0 <= status["time_limit_s"] <= run.solve_s
    assert status["time_limit_s"] < 8.0 - run.report_s


def test_what_ran_since_the_start_comes_out_of_the_solvers_share():
    import time

    now = plan_run(60.0, 50, 4, 10.0)
    later = plan_run(60.0, 50, 4, 10.0, start=time.perf_counter() - 5.0)
    assert later.solve_s == pytest.approx(now.solve_s - 5.0, abs=0.5)
    assert later.baselines_s == now.baselines_s and later.report_s == now.report_s
    assert later.baselines_left() == pytest.approx(later.solve_s + later.baselines_s, abs=0.5)
