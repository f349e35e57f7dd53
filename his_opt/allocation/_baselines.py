"""The published baselines, each optimised within its own rules and scored by the same evaluator.

* ``IIS`` (independent inference): no sharing, ``x = 0`` for everyone; servers and the edge/device
  split are optimised under the budgets (exact MILP).
* ``GFIS``: one group of all users; a randomly chosen user's prompt is the public prompt; the
  server, ``x`` and the split are optimised (exact MILP).
* ``PPGFIS``: one group per ``subject`` (or, when subjects are missing, per cluster of the
  prompts: average-linkage clustering of ``1 - similarity`` with the number of clusters chosen
  by silhouette); a random member's prompt per group; servers, ``x`` per group and the split are
  optimised (exact MILP).
* ``greedy``: similarity-threshold grouping with medoid public prompts, each group's best ``x`` at
  an estimated budget price, greedy split (no MILP).

Random choices use ``random_state``. Each returns a :class:`SolveResult` whose bound and gap
refer to the baseline's own restricted problem. ``time_limit`` bounds the whole call: each step
(option table, start plan, model, MILP) starts only while time is left, HiGHS gets what is left,
and a baseline out of time returns what it has (the start plan, or no plan) with status and
reason ``time_limit``. :func:`run_baselines` logs one line as each baseline starts and ends.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence

import numpy as np

from ._decision import Decision
from ._evaluate import check_feasible, score_decision
from ._heuristics import _complete, assign_servers, greedy_grouping, greedy_threshold_seconds
from ._highs import solve_highs
from ._instance import Instance
from ._milp import build_compact_model, usable_options
from ._options import OptionTable, build_option_table
from ._result import (
    FEASIBLE_GAP,
    INFEASIBLE,
    OPTIMAL,
    TIME_LIMIT,
    SolveResult,
    make_plan,
    relative_gap,
)
from ._split import greedy_split

__all__ = ["BASELINES", "gfis", "greedy", "iis", "ppgfis", "run_baselines", "subject_groups"]

BASELINES = ("IIS", "GFIS", "PPGFIS", "greedy")

logger = logging.getLogger(__name__)

_HIGHS_OPTIONS = {"presolve": "off"}
"""HiGHS's MIP presolve does not watch the time limit (13 s of a 10 s limit on the 1,000-user
GFIS model) while its simplex and branch and bound do; the baselines' models are restricted
already, and without presolve HiGHS found the better GFIS plan within the limit."""
_PRESOLVE_BELOW = 5_000
"""Models with fewer variables keep presolve: it takes milliseconds there and proves an
infeasible restriction at once (30 users: GFIS ran its whole 10 s limit without it)."""


def _deadline(time_limit: float) -> float:
    if not time_limit >= 0:
        raise ValueError(f"time_limit must be a non-negative number of seconds, got {time_limit}")
    return time.perf_counter() + time_limit


def _out_of_time(deadline: float) -> bool:
    return time.perf_counter() >= deadline


def _no_time(name: str, has_plan: bool) -> str:
    then = "the heuristic start plan, no bound" if has_plan else "no plan"
    return f"time_limit: {name} ran out of its time limit before its MILP; {then}"


def _result(inst: Instance, dec: Decision | None, *, name: str, scope: str, t0: float,
            bound: float, kind: str, mip_gap: float, notes: list[str]) -> SolveResult:
    if dec is None:
        return SolveResult(status=INFEASIBLE if kind != "time_limit" else TIME_LIMIT,
                           objective=-math.inf, bound=-math.inf, gap=math.inf,
                           solve_time_s=time.perf_counter() - t0, bound_scope=scope, plan=None,
                           method=name, diagnostics=notes)
    ev = score_decision(inst, dec)
    bound = max(bound, ev.objective)
    gap = relative_gap(ev.objective, bound)
    status = OPTIMAL if gap <= mip_gap + 1e-12 else (TIME_LIMIT if kind == "time_limit"
                                                       else FEASIBLE_GAP)
    kw = dict(status=status, objective=ev.objective, bound=bound, gap=gap,
              solve_time_s=time.perf_counter() - t0, bound_scope=scope, method=name)
    plan = make_plan(inst, dec, status={**kw, "diagnostics": notes},
                     provenance={"optimizer": f"his_opt.allocation baseline {name}"})
    violations = check_feasible(inst, plan)
    if violations:
        # a baseline's fixed choices (random public, subject groups) can break a constraint:
        # report that, never an infeasible plan
        return _result(inst, None, name=name, scope=scope, t0=t0, bound=bound, kind=kind,
                       mip_gap=mip_gap, notes=[*notes, *violations])
    names = inst.server_names
    return SolveResult(plan=plan, terms=ev.terms(),
                       gpu_time_s=dict(zip(names, map(float, ev.gpu_time_s), strict=True)),
                       gpu_time_simulated_s=dict(zip(names, map(float, ev.gpu_time_simulated_s),
                                                     strict=True)),
                       diagnostics=notes, **kw)


_MAX_BASELINE_OPTIONS = 60_000


def _restricted(inst: Instance, table: OptionTable, options: tuple[np.ndarray, ...],
                solo: np.ndarray, warm: Decision | None, *, deadline: float,
                mip_gap: float) -> tuple[Decision | None, float, str]:
    """Exact optimum over the given options (each public opens at most one group) within the
    time left before ``deadline``. Beyond 60,000 options the MILP is skipped (HiGHS may overrun
    its time limit on such models) and the heuristic ``warm`` plan is returned with no bound;
    so it is, with kind ``no_time``, when the deadline passes before the model is solved."""
    if len(options[0]) + int(solo.sum()) > _MAX_BASELINE_OPTIONS:
        return warm, math.inf, "skipped" if warm is not None else "time_limit"
    if _out_of_time(deadline):
        return warm, math.inf, "no_time"
    if not _coverable(inst, table, options, solo).all():
        return None, -math.inf, "infeasible"  # a user has no option at all: no MILP needed
    began = time.perf_counter()
    model = build_compact_model(inst, table, options, solo, one_per_public=True)
    start = model.encode(warm, inst.total_steps) if warm is not None else None
    # handing the model to HiGHS and reading its answer back cost about what building it did
    built = time.perf_counter()
    left = deadline - built - (built - began)
    if left <= 0:
        return warm, math.inf, "no_time"
    out = solve_highs(model.c, model.A, model.row_lo, model.row_hi, model.col_lo, model.col_hi,
                      model.integrality, time_limit=left, mip_gap=mip_gap,
                      offset=model.offset, start=start,
                      options=None if model.n_vars < _PRESOLVE_BELOW else _HIGHS_OPTIONS)
    best = warm
    if out.x is not None:
        cand = model.decode(out.x)
        if warm is None or score_decision(inst, cand).objective >= \
                score_decision(inst, warm).objective - 1e-9:
            best = cand
    if out.kind == "infeasible":
        return None, -math.inf, "infeasible"
    return best, out.bound if math.isfinite(out.bound) else math.inf, out.kind


def _coverable(inst: Instance, table: OptionTable, options: tuple[np.ndarray, ...],
               solo: np.ndarray) -> np.ndarray:
    """Per user: some option meets its minimum quality with a feasible split, or it may go
    solo (then the MILP has a row it can cover; otherwise the restriction is infeasible)."""
    ok = usable_options(inst, table, *options)
    n = options[1]
    solo_ok = (solo & table.any_y[:, :, 0]).any(axis=1) & (inst.solo_quality >= inst.min_quality)
    return solo_ok | (np.bincount(n[ok], minlength=inst.n_users) > 0)


def _notes(name: str, dec: Decision | None, kind: str, *, infeasible: str,
           skipped: str) -> tuple[list[str], str]:
    """The reasons to record and the kind ``_result`` grades by (``no_time`` is a time limit)."""
    if kind == "no_time":
        return [_no_time(name, dec is not None)], "time_limit"
    notes = [] if dec is not None else [infeasible]
    if kind == "skipped":
        notes.append(f"{name}: too large for the exact MILP; {skipped}")
    return notes, kind


def _timed_out(inst: Instance, name: str, scope: str, t0: float) -> SolveResult:
    """No plan: the deadline passed before the baseline had one."""
    return _result(inst, None, name=name, scope=scope, t0=t0, bound=-math.inf,
                   kind="time_limit", mip_gap=0.0, notes=[_no_time(name, False)])


def iis(inst: Instance, *, time_limit: float = 30.0, mip_gap: float = 1e-6,
        table: OptionTable | None = None) -> SolveResult:
    """IIS: everyone solo (x = 0); servers and split optimised."""
    t0, deadline = time.perf_counter(), _deadline(time_limit)
    scope = "IIS plans (no sharing)"
    if not inst.allow_solo:
        return _result(inst, None, name="IIS", scope=scope, t0=t0, bound=-math.inf, kind="",
                       mip_gap=mip_gap, notes=[f"IIS needs common_steps_min = 0 (it is "
                                               f"{inst.scenario.common_steps_min})"])
    if _out_of_time(deadline):
        return _timed_out(inst, "IIS", scope, t0)
    table = table or build_option_table(inst)
    N = inst.n_users
    srv = assign_servers(inst, np.full(N, 1.0))
    warm = greedy_split(inst, table, Decision(srv, -np.ones(N, dtype=int), np.zeros(N, dtype=int),
                                              np.arange(N), np.zeros(N, dtype=int)))
    empty = tuple(np.zeros(0, dtype=np.int64) for _ in range(4))
    dec, bound, kind = _restricted(inst, table, empty, np.ones((N, inst.n_servers), dtype=bool),
                                   warm, deadline=deadline, mip_gap=mip_gap)
    notes, kind = _notes("IIS", dec, kind, skipped="greedy split",
                         infeasible="no IIS plan meets the budgets, deadlines and quality limits")
    return _result(inst, dec, name="IIS", scope=scope, t0=t0, bound=bound, kind=kind,
                   mip_gap=mip_gap, notes=notes)


def _public_of(inst: Instance, n: int) -> int:
    p = int(inst.own_public[n])
    return p if p >= 0 else int(np.argmax(inst.sim[:, n]))


def _groups_solve(inst: Instance, table: OptionTable, groups: list[tuple[int, np.ndarray]], *,
                  name: str, scope: str, t0: float, deadline: float,
                  mip_gap: float) -> SolveResult:
    if _out_of_time(deadline):
        return _timed_out(inst, name, scope, t0)
    S = inst.n_servers
    xi = np.arange(1, len(table.xs))
    # pairs below the similarity floor may not share: those users are kept solo
    groups = [(p, mem[inst.share_allowed[p, mem]]) for p, mem in groups]
    kept = np.setdiff1d(np.arange(inst.n_users), np.concatenate([m for _, m in groups]))
    parts = [[], [], [], []]
    for p, mem in groups:
        for s in range(S):
            pp, nn, ii = np.meshgrid([p], mem, xi, indexing="ij")
            parts[0].append(pp.ravel())
            parts[1].append(nn.ravel())
            parts[2].append(np.full(pp.size, s))
            parts[3].append(ii.ravel())
    opts = tuple(np.concatenate(a).astype(np.int64) for a in parts)
    warm = _complete(inst, table, groups, kept, np.zeros(S))
    solo = np.zeros((inst.n_users, S), dtype=bool)
    solo[kept] = inst.allow_solo
    dec, bound, kind = _restricted(inst, table, opts, solo, warm, deadline=deadline,
                                   mip_gap=mip_gap)
    notes, kind = _notes(
        name, dec, kind,
        infeasible=f"no {name} plan meets the budgets, deadlines, quality limits and step ranges",
        skipped="x per group at an estimated GPU price and the greedy split")
    if kept.size:
        notes.append(f"{name}: {kept.size} user(s) below min_share_similarity "
                     f"{inst.min_share_similarity:g} to their group's public prompt kept solo")
    return _result(inst, dec, name=name, scope=scope, t0=t0, bound=bound, kind=kind,
                   mip_gap=mip_gap, notes=notes)


def gfis(inst: Instance, *, random_state: int | None = None, time_limit: float = 30.0,
         mip_gap: float = 1e-6, table: OptionTable | None = None) -> SolveResult:
    """GFIS: one group of everyone, a random member's prompt as public prompt."""
    t0, deadline = time.perf_counter(), _deadline(time_limit)
    if _out_of_time(deadline):
        return _timed_out(inst, "GFIS", "GFIS plans", t0)
    table = table or build_option_table(inst)
    rng = np.random.default_rng(random_state)
    n = int(rng.integers(inst.n_users))
    p = _public_of(inst, n)
    scope = f"GFIS plans with public prompt of user {inst.user_ids[n]}"
    return _groups_solve(inst, table, [(p, np.arange(inst.n_users))], name="GFIS", scope=scope,
                         t0=t0, deadline=deadline, mip_gap=mip_gap)


def subject_groups(inst: Instance, *, random_state: int | None = None) -> list[np.ndarray]:
    """PPGFIS's groups: users by ``subject``; if any subject is missing, clusters of the prompts
    (average linkage on ``1 - similarity``, number of clusters by silhouette)."""
    subjects = inst.subjects
    if all(s is not None for s in subjects):
        names = sorted(set(subjects))
        return [np.flatnonzero(np.array([s == nm for s in subjects])) for nm in names]
    N = inst.n_users
    if N < 3:
        return [np.arange(N)]
    from sklearn.cluster import AgglomerativeClustering, KMeans
    from sklearn.metrics import silhouette_score

    own = inst.own_public
    if np.all(own >= 0):
        simm = inst.sim[own, :]
        dist = np.clip(1.0 - 0.5 * (simm + simm.T), 0.0, 2.0)
        np.fill_diagonal(dist, 0.0)
        best, best_s = np.zeros(N, dtype=int), -np.inf
        for k in range(2, min(10, N - 1) + 1):
            lab = AgglomerativeClustering(n_clusters=k, metric="precomputed",
                                          linkage="average").fit_predict(dist)
            if len(set(lab)) < 2:
                continue
            sc = silhouette_score(dist, lab, metric="precomputed")
            if sc > best_s:
                best, best_s = lab, sc
    else:
        feats = inst.sim.T
        best, best_s = np.zeros(N, dtype=int), -np.inf
        for k in range(2, min(10, N - 1) + 1):
            lab = KMeans(n_clusters=k, n_init=4, random_state=random_state).fit_predict(feats)
            sc = silhouette_score(feats, lab)
            if sc > best_s:
                best, best_s = lab, sc
    return [np.flatnonzero(best == c) for c in np.unique(best)]


def ppgfis(inst: Instance, *, random_state: int | None = None, time_limit: float = 30.0,
           mip_gap: float = 1e-6, table: OptionTable | None = None) -> SolveResult:
    """PPGFIS: one group per subject (or prompt cluster), a random member's prompt as public."""
    t0, deadline = time.perf_counter(), _deadline(time_limit)
    if _out_of_time(deadline):
        return _timed_out(inst, "PPGFIS", "PPGFIS plans", t0)
    table = table or build_option_table(inst)
    rng = np.random.default_rng(random_state)
    groups = []
    for mem in subject_groups(inst, random_state=random_state):
        n = int(mem[int(rng.integers(mem.size))])
        groups.append((_public_of(inst, n), mem))
    by_subject = all(s is not None for s in inst.subjects)
    scope = ("PPGFIS plans (groups by subject" if by_subject else
             "PPGFIS plans (groups by prompt clusters") + ", seeded random publics)"
    return _groups_solve(inst, table, groups, name="PPGFIS", scope=scope, t0=t0,
                         deadline=deadline, mip_gap=mip_gap)


def greedy(inst: Instance, *, table: OptionTable | None = None,
           time_limit: float = math.inf) -> SolveResult:
    """The greedy baseline (a heuristic: no bound, status ``feasible_gap``); it starts only
    within ``time_limit``, when its first similarity threshold's measured cost
    (``SolverSettings.greedy_seconds_per_pair``) fits, and starts no further threshold that
    would end past it (the first always runs: under a second at 1,000 users, 9.9 s at 50,000
    users x 2,000 publics)."""
    t0, deadline = time.perf_counter(), _deadline(time_limit)
    scope = "none (heuristic, no bound)"
    if _out_of_time(deadline) or greedy_threshold_seconds(inst) > time_limit:
        return _timed_out(inst, "greedy", scope, t0)
    table = table or build_option_table(inst)
    if _out_of_time(deadline):
        return _timed_out(inst, "greedy", scope, t0)
    dec = greedy_grouping(inst, table, deadline=deadline)
    notes = [] if dec is not None else ["the greedy grouping found no feasible plan"]
    return _result(inst, dec, name="greedy", scope=scope, t0=t0, bound=math.inf, kind="",
                   mip_gap=0.0, notes=notes)


def _logged(name: str, time_limit: float, run: Callable[[], SolveResult]) -> SolveResult:
    """``run()`` between a start line and an end line (status, objective, seconds)."""
    logger.info("baseline %s: started, time limit %.1f s", name, time_limit)
    start = time.perf_counter()
    result = run()
    found = f"objective {result.objective:.3f}" if result.plan is not None else "no plan"
    logger.info("baseline %s: %s (%s) in %.1f s", name, found, result.status,
                time.perf_counter() - start)
    return result


def run_baselines(inst: Instance, random_state: int | None = None, *,
                  time_limit: float = 30.0, mip_gap: float = 1e-6,
                  names: Sequence[str] | None = None,
                  table: OptionTable | None = None) -> dict[str, SolveResult]:
    """The baselines on ``inst``: ``{"IIS": ..., "GFIS": ..., "PPGFIS": ..., "greedy": ...}``,
    or only those in ``names`` (spelled as in ``BASELINES``), in that order. ``time_limit``
    bounds each baseline's call; the option table they share (``table``, when the caller has
    it) is built once, before them."""
    names = BASELINES if names is None else tuple(names)
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baselines {unknown}; known: {list(BASELINES)}")
    _deadline(time_limit)
    if table is None and time_limit > 0:  # a spent budget builds nothing: each reports so
        table = build_option_table(inst)
    runs: dict[str, Callable[[], SolveResult]] = {
        "IIS": lambda: iis(inst, time_limit=time_limit, mip_gap=mip_gap, table=table),
        "GFIS": lambda: gfis(inst, random_state=random_state, time_limit=time_limit,
                             mip_gap=mip_gap, table=table),
        "PPGFIS": lambda: ppgfis(inst, random_state=random_state, time_limit=time_limit,
                                 mip_gap=mip_gap, table=table),
        "greedy": lambda: greedy(inst, table=table, time_limit=time_limit),
    }
    return {name: _logged(name, time_limit, runs[name]) for name in names}
