"""The solver's tuning numbers in one frozen object, and the time budget every step draws on.

Every threshold, share of the time limit and tolerance the solver uses lives in
:class:`SolverSettings`, with the reason for its default; :class:`TimeBudget` owns the deadline
of one ``solve`` call, so each step asks it how long it may run instead of computing its own.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

__all__ = ["SolverSettings", "TimeBudget"]


@dataclass(frozen=True)
class SolverSettings:
    """Tuning numbers of :func:`~his_opt.allocation.solve` (defaults measured on the 2-core
    development machine; see ``benchmarks/bench_solver.py``)."""

    enumerate_users: int = 8
    """Up to this many users (and ``enumerate_servers`` servers) the structured exact enumerator
    proves the optimum directly; the compact MILP's LP is weak on such tight little instances."""
    enumerate_servers: int = 3
    exact_users: int = 150
    """Up to this many users: LP bound, reduced-cost fixing and the exact reduced MILP."""
    exact_users_one_profile: int = 80
    """Up to this many users when the servers differ only in budgets or caps (one GPU profile,
    several classes); above it the dual route, whose servers-merged bound is tight there and
    fast while the LP over the classes is slow (3 unequal servers, one run each: 100 users at
    60 s, LP route 1.06% against dual route 0.45%; 60 users at 30 s, 0.20% against 0.34%;
    with a second profile the LP route stays ahead: 100 users, 0.70% against 4.99%)."""
    max_universe: int = 1_500_000
    """Options (public, user, server class, x) the LP route may enumerate before ``top_k``."""
    max_milp_options: int = 20_000
    """Options the exact reduced MILP accepts after fixing."""
    min_neighbourhood: int = 4_000
    """Smallest neighbourhood MILP (options) when too many options survive fixing."""
    min_auto_top_k: int = 40
    """Fewer public candidates per user than this on the LP route: no LP bound is attempted."""
    max_table_bytes: int = 3 * 2**30
    """The option table (users x servers x common steps x edge steps) may take this much
    memory; a larger instance is refused before anything is built."""
    max_dual_entries: int = 3_000_000
    """Entries (user, public, server class, x) of the Lagrangian dual: caps its memory at about
    ``40 bytes`` per entry and, above all, its time (each price evaluation is a few passes over
    every entry); ``top_k`` shrinks to fit, down to ``min_dual_top_k`` (``min_late_top_k`` on
    the ``heuristic`` route). The publics the first plan's largest groups open to every user
    come on top (at most half the fit), so a widened dual may hold up to half as much again
    (10,000 users / 16 mixed: 3.7 million)."""
    min_dual_top_k: int = 10
    """Fewer candidates per user than this in the dual over the server classes: the
    ``heuristic`` route (plans on pools of servers, the bound on pooled servers)."""
    min_late_top_k: int = 10
    """Candidates per user the ``heuristic`` route's bound on pooled servers needs at least
    (each user's pair in the plan comes on top; fewer: no bound). 50,000 users / 16 mixed
    servers at 4 (all servers pooled, 2.95 million entries): bound 519,003 against plans near
    200,000 and a 3.8 GB peak, more memory and plan time than such a bound is worth."""
    max_dense_cells: int = 20_000_000
    """Cells (column x user) of the dense facility search; beyond it the sparse search runs."""
    dense_seconds_per_cell: float = 1e-7
    """Measured cost of building the dense search's table (per column x user cell, this
    machine); a search whose table would outlast its share of the time is skipped."""
    dual_seconds_per_entry: float = 1e-6
    """Measured cost of one price evaluation of the dual per entry (1,000 users / 4 identical:
    2.6 million entries, 2.5-3.6 s each, ascent and entries); with less time than one
    evaluation for the bound, none is attempted (the result says so)."""
    milp_seconds_per_var: float = 1e-4
    """Measured start-up cost of HiGHS on the compact MILP per variable (26,000 variables: 5 s
    before the first node, whatever the time limit); a MILP that could not start within its
    share of the time is not built."""
    greedy_seconds_per_pair: float = 1e-7
    """Measured cost of one greedy threshold per (public, user) pair, its split included
    (50,000 users x 2,000 publics on 16 servers: 9.9 s for the first); the greedy grouping
    is skipped when even one threshold would outlast the time left."""
    ascent_rounds: int = 600
    """Dual-ascent rounds per price evaluation."""
    polish_rounds: int = 5000
    """Subgradient rounds that lower the dual value of the best price (the time share ends
    them first on large instances)."""
    polish_step: float = 1.0
    """First Polyak step factor of the polish, halved after ``polish_patience`` rounds
    without a lower value (1,000 users / 4 identical, one price, 11 s: 0.1 and 5 stalled at
    8167.5 after 4.8 s; 1.0 and 30 reached 8154.3 in 7.2 s)."""
    polish_patience: int = 30
    """Polish rounds without a lower value before its step is halved."""
    polish_margin: float = 0.05
    """The polish runs on the entries within this share of the mean user price below the
    active ones, re-selected (with a doubled margin when it happens within 10 rounds)
    whenever a price leaves it: exact values on a tenth of the entries or fewer."""
    launch_polish_share: float = 0.8
    """Share of the polish's time for its finish on ``D_L``, the dual with each group's
    launch overhead (``L`` values per entry, so slower per round than ``D``). 3,000 users /
    3 identical at 60 s, one run each: 1.175% (no finish) -> 1.028% at 0.5, 0.78-0.81% at
    0.8 (two runs; others at 0.8 1.00-1.02%), 1.127% at 1.0 (the plain polish moves faster
    at first)."""
    launch_polish_gap: float = 0.005
    """The finish on ``D_L`` aims its Polyak steps at most this share below the value it
    starts from (the incumbent, often a poor first plan, makes steps too long to settle)."""
    max_launch_cells: int = 8_000_000
    """Entries x launch counts the finish on ``D_L`` may hold (about 40 bytes per cell once
    built, 60 while building: 0.5 GB at the cap). A first selection past it keeps ``D``; a
    later re-selection past it ends the finish at its best value so far."""
    price_grid: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
    """Multiples of the start prices: the range the line search brackets in, and the points it
    evaluates at once when the evaluations run on Ray."""
    line_search_factor: float = 1.5
    """The line search's bracketing step (from 1, up or down while the value falls; 300 users /
    3 unequal: the minimum lay at 0.35 times the start price, where a fixed grid walked up
    from 0 had run out of time at 0.25)."""
    golden_steps: int = 5
    """Golden-section refinements of the best multiple."""
    search_share: float = 0.4
    """Share of the bound's time for the price search; the rest polishes the best prices (the
    polish lowers the bound more: 1,000 users / 4 identical 1.85% -> 1.59%, 300 / 3 unequal
    1.71% -> 1.57% against 0.7, same machine, one run each)."""
    bundle_iterations: int = 40
    """Trust-region bundle iterations over the server prices."""
    bundle_accept: float = 0.1
    """A bundle step is serious when it achieves this share of the predicted decrease."""
    repair_rounds: int = 12
    """Price raises on over-budget servers before a primal construction gives up."""
    proof_options: dict[str, bool] = field(default_factory=lambda: {
        "mip_heuristic_run_rens": False,
        "mip_heuristic_run_rins": False,
        "mip_allow_restart": False,
    })
    """HiGHS options for proving a warm-started reduced MILP: the incumbent is already (near)
    optimal, so sub-MIP heuristics and restarts mostly cost time (50 users: 3.5 s -> 0.9 s)."""
    max_pattern_cells: int = 30_000_000
    """Cells (user x public x common steps x (edge steps + budget units)) of the server-pattern
    column generation (several servers, LP route); larger instances skip it."""
    pattern_min_gap: float = 0.01
    """The column generation runs only while the gap after the LP bound and the re-placement
    MILP exceeds this (where the LP is tight the reduced MILP proves faster)."""
    pattern_max_units: int = 160
    """Budget units of a server's knapsack: the GPU cost unit is one edge step, coarser when
    the budget holds more (coarser units give a looser but still valid bound)."""
    share_patterns: float = 0.6
    """Share of the time left for the server-pattern column generation (per phase)."""
    pattern_phases: int = 3
    """Column generation phases, each followed by the whole-pattern MILP and its repair."""
    pattern_smoothing: float = 0.85
    """Wentges smoothing of the column generation's prices towards the best ones so far (30
    users / 3 identical, one run each on the same code: the master reached its final value
    after 7.3 s at 0.85, 9.1 s at 0.7)."""
    pattern_min_rounds: int = 40
    """Rounds the column generation's first phase must be able to afford (from its first
    round's time) to run at all; fewer and it keeps that round's bound only. Later phases
    continue from its patterns however few rounds fit."""
    share_primal: float = 0.3
    """Share of the time left that one primal search may use."""
    share_search: float = 0.5
    """Share of the time left for a large instance's facility search (its main plan)."""
    share_first_search: float = 0.25
    """Share of the time left for the first facility search of a bounded large instance (at
    the start prices; the searches at the bound's prices follow)."""
    share_bound: float = 0.6
    """Share of the time left that a bound computation may use."""
    share_dual_one_class: float = 0.6
    """Share for the Lagrangian bound when every server is in one class (no merged-servers
    bound follows). Before the finish on ``D_L``, 0.8 (1,000 users / 4 identical at 60 s:
    1.59% -> 1.04% against 0.6); with it the polish settles within its time (3,000 users /
    3 identical: ``D_L`` 25416-25418 whether the finish has 8 s or 14 s), so a smaller share
    leaves the plans at the bound's prices more searches: 3,000 users 1.003% / 0.990% /
    0.979% / 0.978% at 0.8 / 0.7 / 0.6 / 0.5, 1,000 users 0.454% / 0.356% / 0.356% / 0.357%
    (one run each)."""
    share_second_bound: float = 0.3
    """Share of the time left for the per-class bound that follows the merged-servers one
    (servers of one profile with unequal budgets or caps, large instances)."""
    share_pool_first_search: float = 0.1
    """``heuristic`` route: share of the time left for the first facility search on the
    servers merged per pool (10,000 users / 16 mixed servers: the same plan after 8 s as after
    15 s; the placement MILP and the searches at the bound's prices gain more)."""
    pooled_search_share: float = 0.7
    """``heuristic`` route: ``search_share`` of the bound on the pooled servers (10,000 users /
    16 mixed, 30 s: 72,486 at 0.4, 71,913 at 0.7, 72,486 at 0.2; its start prices are a guess,
    so the price search gains more than the polish)."""
    bound_price_steps: tuple[float, ...] = (1.0, 0.97, 1.03, 0.9, 1.1)
    """``heuristic`` route: multiples of the bound's prices the plans after it are searched at,
    in turn while time is left."""
    heuristic_price_steps: tuple[float, ...] = (0.8, 1.25, 0.65, 1.5)
    """``heuristic`` route without a bound: multiples of the start prices the plans after the
    first are searched at, in turn while time is left."""
    share_pooled_bound: float = 0.45
    """``heuristic`` route: share of the time left for the bound on the pooled servers, which
    comes before the plans since the plans at its prices are the good ones."""
    placement_levels: tuple[float, ...] = (0.0, 0.5, 0.7, 0.85, 1.0, 1.15, 1.3, 1.6, 2.2, 4.0,
                                           1e6)
    """Multiples of a server's price at which the group placement MILP offers each group's
    members their best edge steps there (0: the best steps when GPU time were free, 1e6:
    nearly the fewest)."""
    max_placement_options: int = 200_000
    """Options (group, server, level) of the group placement MILP; more groups: no MILP."""
    share_placement: float = 0.1
    """Share of the time left for one group placement MILP (10,000 users / 16 mixed servers,
    70 groups, one plan: 71,697 / 71,951 / 72,190 after 5 / 20 / 60 s, HiGHS's own bound
    72,602; 72,236 / 72,337 / 72,468 split again)."""
    placement_seconds_per_cell: float = 2e-8
    """Measured cost of building the placement MILP's options per user x server x level x
    edge-step cell (10,000 users x 16 servers x 12 x 17: 0.64 s); a MILP whose options would
    take more than half the time left is not built."""
    min_placement_s: float = 3.0
    """Seconds a group placement MILP gets at least (at most a third of the time left)."""
    share_diagnose: float = 0.5
    """Share of the time left for the infeasibility diagnosis (the rest is the margin)."""
    return_margin_s: float = 0.05
    """Seconds kept back at the end of the limit for building the result."""


class TimeBudget:
    """The deadline of one call: ``left()``, ``share(f)`` of what is left, ``deadline(f)`` as a
    ``time.perf_counter()`` value, and per-phase timings (``lap``) for the result's stats."""

    def __init__(self, limit_s: float, margin_s: float = 0.0) -> None:
        self.limit_s = float(limit_s)
        self.start = time.perf_counter()
        self.end = self.start + self.limit_s - margin_s
        self.timings: dict[str, float] = {}
        self._mark = self.start

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return max(self.end - time.perf_counter(), 0.0)

    def expired(self) -> bool:
        return self.left() <= 0.0

    def share(self, fraction: float, floor: float = 0.05) -> float:
        """``fraction`` of the time left, at least ``floor`` but never past the deadline."""
        left = self.left()
        return min(max(left * fraction, floor), left) if left > 0 else 0.0

    def deadline(self, fraction: float = 1.0) -> float:
        return time.perf_counter() + self.share(fraction)

    def lap(self, phase: str) -> None:
        """Charge the time since the last lap to ``phase``."""
        now = time.perf_counter()
        self.timings[phase] = self.timings.get(phase, 0.0) + now - self._mark
        self._mark = now

    def rounded_timings(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in self.timings.items() if math.isfinite(v)}
