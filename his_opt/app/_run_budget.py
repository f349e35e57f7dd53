"""How ``his-opt solve`` splits ``--time-limit`` between the solve, the baselines and the report.

The limit bounds the whole run once the inputs are read and the prompts embedded: building
the instance, the solve, the baselines, checking the plan and writing the workbook and the
JSON. The report's time is planned from the number of users (it does not shrink with the
limit), the baselines get at most a share of the limit held back for them (each within
``--baseline-time-limit``), and the solver gets the rest as its own ``time_limit``. A solve that ends early leaves its time to the
baselines. When the report alone would take more than the limit allows, the solver still gets
``min_solve_share`` of it and the run says beforehand that it will take longer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

__all__ = ["RunBudget", "RunSettings", "plan_run"]


@dataclass(frozen=True)
class RunSettings:
    """Tuning numbers of the run's time plan (measured on the 2-core development machine)."""

    report_seconds_per_user: float = 5e-4
    """Checking the plan and writing the workbook and the JSON, per user, with room for the
    baselines' plans checked beside it: 50,000 users on 16 servers took 1.2 s + 17.3 s +
    0.7 s (before named styles and the compiled schema check: 6.7 s + 27.6 s); at 4e-4 the
    whole 50,000-user run ended 1.4 s inside its allowance, too close."""
    report_floor_s: float = 0.5
    """The report's time however few the users (openpyxl's start-up, the charts)."""
    baseline_share: float = 0.15
    """Share of the limit held back for the baselines (at most ``--baseline-time-limit`` each)
    when the solve may use all of its own. Every second taken from the solver costs plan or
    bound on instances that use their whole limit (all baselines, one run each, at 0.25:
    30 users / 3 identical at 10 s, the solver's 7.0 s gave a 5.07% gap against 0.89% with
    10 s; 3,000 users at 60 s, 43.8 s gave 1.06% against 0.98%)."""
    min_solve_share: float = 0.5
    """The solver's smallest share of the limit, whatever the report needs."""
    min_baseline_s: float = 0.2
    """A baseline left less than this is not started (status ``time_limit``)."""


@dataclass(frozen=True)
class RunBudget:
    """The plan of one run: seconds for the solve, held back for the baselines and for the
    report, from ``start`` (a ``time.perf_counter()`` value)."""

    limit_s: float
    solve_s: float
    baselines_s: float
    report_s: float
    start: float
    over_s: float = 0.0
    """How far the plan runs past the limit (the report needs more than it leaves)."""
    settings: RunSettings = RunSettings()

    def baselines_left(self) -> float:
        """Seconds the baselines may use now: what is left of the limit, the report's share
        kept back."""
        end = self.start + self.limit_s - self.report_s + self.over_s
        return max(end - time.perf_counter(), 0.0)


def plan_run(limit_s: float, n_users: int, n_baselines: int, baseline_limit_s: float,
             settings: RunSettings | None = None, *, start: float | None = None) -> RunBudget:
    """The time plan of a run with ``n_users`` users and ``n_baselines`` baselines, its limit
    counted from ``start`` (a ``time.perf_counter()`` value; default now): what has run since
    (building the instance) comes out of the solver's share."""
    st = settings or RunSettings()
    now = time.perf_counter()
    start, spent = (now, 0.0) if start is None else (start, max(now - start, 0.0))
    report = max(st.report_floor_s, n_users * st.report_seconds_per_user)
    baselines = min(n_baselines * baseline_limit_s, st.baseline_share * limit_s)
    solve = limit_s - spent - report - baselines
    over = 0.0
    if solve < st.min_solve_share * limit_s:
        solve = st.min_solve_share * limit_s
        baselines = max(min(baselines, limit_s - spent - solve - report), 0.0)
        over = max(spent + solve + baselines + report - limit_s, 0.0)
    return RunBudget(limit_s=limit_s, solve_s=solve, baselines_s=baselines, report_s=report,
                     start=start, over_s=over, settings=st)
