"""The optimizer: grouping of users, public prompts, servers, common steps and each user's
edge/device step split, solved exactly; plus the published baselines.

The model
---------
User ``n`` in a group with public prompt ``p`` and ``x >= max(1, common_steps_min)`` common steps
has quality ``Q = HIQM(sim[p, n], x)``; a solo user (``x = 0``, allowed only when
``common_steps_min == 0``) has ``HIQM.unshared_quality()``. Steps ``x + y + z = T`` with every count in its
scenario range. On server ``s`` a group costs GPU time
``x tau_pub + alpha K + beta' sum(y)`` (``K = max y`` of its members: one batched launch per
personal step; ``alpha, beta`` the affine upper bound of the profile's launch latency, ``beta'``
adding ``alpha / B_s`` when launches may be chunked), a solo user ``(alpha + beta') y``; the
budget bounds the sum. Delay ``x tau_pub + y tau_one + downlink (if z > 0) + z device_step_s``;
when ``z = 0`` the image is decoded on the edge and the decoded image's transfer is not modelled.
Energy: ``P_s`` times GPU time plus, per user, the downlink's transmit energy (if ``z > 0``) and
``z`` device steps. Objective: maximise ``w_q sum Q - w_d sum delay - w_e energy``, with
per-user ``deadline_s`` and ``min_quality`` and an optional ``max_groups``.

Solving
-------
:func:`solve` returns a :class:`SolveResult`: ``status`` (``OPTIMAL`` within ``mip_gap``,
``FEASIBLE_GAP``, ``TIME_LIMIT``, ``INFEASIBLE``), the plan's ``objective``, a proven ``bound``
and ``gap = (bound - objective) / |objective|``, ``bound_scope`` (what the bound covers),
``solve_time_s``, per-server GPU time (model bound and replayed schedule) and ``diagnostics``.
Tiny instances (<= 8 users, <= 3 servers) are enumerated exactly; up to 150 users the LP over
every option on the pooled server classes bounds the problem, reduced-cost fixing removes
options and HiGHS proves the small remaining MILP; above that the Lagrangian dual with one price
per server class bounds it (:mod:`._dual`), and plans come from facility searches at those
prices, always on the real servers (see :mod:`._solve` for the pipeline and its guarantees).
An infeasible instance comes back with one line
per cause: a user's deadline below its fastest possible delay (and by how much), a
``min_quality`` above the best reachable quality, or the smallest GPU budget per server that
makes the instance feasible.

The baselines (IIS, GFIS, PPGFIS, greedy) return the same result type, evaluated by the same
:func:`evaluate`.

Entry points: :func:`build_instance`, :func:`solve`, :func:`run_baselines`, :func:`evaluate`,
:func:`check_feasible`, :func:`simulate_gpu_time`, :func:`diagnose`, :func:`optimize_split`,
:func:`exact_optimum` (= :func:`brute_force`; tiny instances only, for tests).
"""

from ._baselines import BASELINES, gfis, greedy, iis, ppgfis, run_baselines
from ._bruteforce import brute_force
from ._diagnose import diagnose, smallest_budgets
from ._enumerate import exact_optimum
from ._evaluate import Evaluation, check_feasible, evaluate, simulate_gpu_time
from ._instance import USER_TABLE_COLUMNS, Instance, build_instance, public_candidates
from ._options import OptionTable, build_option_table
from ._result import (
    FEASIBLE_GAP,
    INFEASIBLE,
    OPTIMAL,
    PLAN_SCHEMA,
    STATUSES,
    TIME_LIMIT,
    GroupPlan,
    Plan,
    SolveResult,
    UserPlan,
)
from ._settings import SolverSettings, TimeBudget
from ._solve import solve
from ._split import optimize_split
from ._strategy import CapacityError, Strategy, choose_strategy

__all__ = [
    "BASELINES",
    "CapacityError",
    "SolverSettings",
    "Strategy",
    "TimeBudget",
    "choose_strategy",
    "FEASIBLE_GAP",
    "INFEASIBLE",
    "OPTIMAL",
    "PLAN_SCHEMA",
    "STATUSES",
    "TIME_LIMIT",
    "USER_TABLE_COLUMNS",
    "Evaluation",
    "GroupPlan",
    "Instance",
    "OptionTable",
    "Plan",
    "SolveResult",
    "UserPlan",
    "brute_force",
    "build_option_table",
    "build_instance",
    "check_feasible",
    "diagnose",
    "evaluate",
    "exact_optimum",
    "gfis",
    "greedy",
    "iis",
    "optimize_split",
    "ppgfis",
    "public_candidates",
    "run_baselines",
    "simulate_gpu_time",
    "smallest_budgets",
    "solve",
]
