"""Which route the solver takes, decided from the instance's size and structure alone.

:func:`choose_strategy` is a pure function (no solving), so tests can ask what the solver would
do. Routes:

* ``enumerate``: tiny instances (``SolverSettings.enumerate_users`` users on at most
  ``enumerate_servers`` servers): the structured exact enumerator proves the optimum.
* ``lp``: up to ``exact_users`` users (``exact_users_one_profile`` when the servers are of one
  GPU profile but differ in budget or cap): LP bound over the compact model, reduced-cost
  fixing and the exact reduced MILP.
* ``dual``: larger instances: the Lagrangian bound with one price per server class, primal plans
  at its prices.
* ``milp``: ``method="milp"``: the full compact MILP, on the backend asked for.
* ``heuristic``: too large for the dual over the server classes to keep ``min_dual_top_k``
  candidates per user: plans over every candidate, then the Lagrangian bound on the servers
  pooled per GPU profile (or all into one), whichever first keeps them; no bound when even one
  pool does not.

Memory is planned here: the option table (users x servers x steps) and the dual's entries are
sized before anything is built, and ``top_k`` shrinks to fit.

An option table that does not fit ``max_table_bytes`` is refused with :class:`CapacityError`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ._dual import dual_top_k
from ._instance import Instance, user_chunks
from ._settings import SolverSettings

__all__ = ["CapacityError", "Strategy", "choose_strategy", "top_k_mask", "widen_to_publics"]

_TABLE_BYTES_PER_CELL = 9  # feasible (bool) + value0 (float64); gpu is a broadcast view


class CapacityError(ValueError):
    """The instance does not fit the solver's memory plan."""


@dataclass(frozen=True, eq=False)
class Strategy:
    """The route, the server classes (interchangeable servers pooled), the public candidates
    each user keeps (``pair_mask``; None: all) and what the bound will cover (``scope``)."""

    route: str
    classes: list[list[int]]
    top_k: int | None
    pair_mask: np.ndarray | None
    scope: str
    share_floor_users: int
    bound_classes: list[list[int]] | None = None
    """``heuristic`` route: the servers pooled for its bound (per GPU profile, or all into one;
    None: no bound fits)."""
    bound_top_k: int | None = None
    """Candidates per user of that bound (the first plan's pairs come on top)."""
    bound_pooling: str = ""
    """How that bound pools the servers, in words ("per GPU profile", "into one")."""


def _top_k_mask(inst: Instance, allowed: np.ndarray, k: int | None) -> np.ndarray | None:
    """Each user's ``k`` most similar allowed candidates (and its own prompt), within
    ``allowed``; None when nothing is removed."""
    if (k is None or k >= inst.n_publics) and allowed.all():
        return None
    if k is None or k >= inst.n_publics:
        return allowed
    mask = np.zeros(inst.sim.shape, dtype=bool)
    for cols in user_chunks(inst.n_users, inst.n_publics):  # bounded temporaries
        score = np.where(allowed[:, cols], inst.sim[:, cols], -np.inf)
        idx = np.argpartition(-score, k - 1, axis=0)[:k]
        np.put_along_axis(mask[:, cols], idx, True, axis=0)
    own = inst.own_public >= 0
    mask[inst.own_public[own], np.flatnonzero(own)] = True
    return mask & allowed


def table_bytes(inst: Instance) -> int:
    """Bytes of the option table of ``inst``."""
    xs = len(inst.x_values) + 1
    return inst.n_users * inst.n_servers * xs * (inst.scenario.edge_steps_max + 1) \
        * _TABLE_BYTES_PER_CELL


def isolated_by_floor(inst: Instance) -> int:
    """Users who could share with another user were it not for ``min_share_similarity``: no
    candidate they may share is open to a second user."""
    if inst.n_users < 2:
        return 0
    allowed = inst.share_allowed
    common = allowed.sum(axis=1) >= 2
    return int(np.sum(~(allowed & common[:, None]).any(axis=0)))


def choose_strategy(inst: Instance, settings: SolverSettings, *, method: str = "auto",
                    top_k: int | str | None = "auto") -> Strategy:
    """The route for ``inst`` (see the module docstring); CapacityError when it cannot fit."""
    if table_bytes(inst) > settings.max_table_bytes:
        raise CapacityError(
            f"{inst.n_users} users x {inst.n_servers} servers need "
            f"{table_bytes(inst) / 2**30:.1f} GiB for the option table (limit "
            f"{settings.max_table_bytes / 2**30:.1f} GiB): split the servers into classes of "
            "equal profiles and budgets, or solve fewer users per call")
    if top_k != "auto" and top_k is not None and (not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be 'auto', None or a positive integer, got {top_k!r}")
    classes = inst.servers_identical()
    allowed = inst.share_allowed
    floor_users = isolated_by_floor(inst)
    n_x = len(inst.x_values)
    if method == "milp":
        route = "milp"
    elif (inst.n_users <= settings.enumerate_users and inst.n_servers <= settings.enumerate_servers
          and top_k in ("auto", None)):
        route = "enumerate"
    elif inst.n_users <= settings.exact_users and not (
            len(classes) > 1 and len(inst.servers_by_profile()) == 1
            and inst.n_users > settings.exact_users_one_profile):
        route = "lp"
    else:
        route = "dual"
    k: int | None
    if top_k != "auto":
        k = top_k
    elif route in ("lp", "milp"):
        per_public = inst.n_users * (inst.n_servers if route == "milp" else len(classes)) * n_x
        fits = settings.max_universe // max(per_public, 1)
        k = None if fits >= inst.n_publics else int(fits)
        if route == "lp" and k is not None and k < settings.min_auto_top_k:
            route = "dual"
    else:
        k = None
    if route == "dual" and top_k == "auto":
        fits = dual_top_k(inst, len(classes), settings)
        if fits < min(settings.min_dual_top_k, inst.n_publics):
            # a bound over so few candidates would restrict the plans to them: plan over every
            # candidate (the similarity floor still holds), then bound on pooled servers
            return _heuristic(inst, classes, allowed, floor_users, settings)
        k = None if fits >= inst.n_publics else fits
    mask = _top_k_mask(inst, allowed, k)
    parts = []
    if k is not None:
        parts.append(f"public prompts within each user's top-{k} most similar candidates "
                     "(and its own prompt)")
    if not allowed.all():
        parts.append(_floor_scope(inst))
    scope = ("all groupings, public prompts, servers, common steps and splits"
             if not parts else "; ".join(parts))
    return Strategy(route=route, classes=classes, top_k=k, pair_mask=mask, scope=scope,
                    share_floor_users=floor_users)


def _heuristic(inst: Instance, classes: list[list[int]], allowed: np.ndarray, floor_users: int,
               settings: SolverSettings) -> Strategy:
    """The ``heuristic`` route: plans on pools of servers over every allowed candidate and,
    when one fits, the Lagrangian bound on the servers pooled per GPU profile, or all into
    one, whichever first keeps ``min_late_top_k`` candidates per user (a relaxation:
    :func:`~._exact.pooled_instance`). Its scope adds the first plan's pairs (and its largest
    groups' publics), and every later plan is kept inside it."""
    need = min(settings.min_late_top_k, inst.n_publics)
    for pooled, how in ((inst.servers_by_profile(), "per GPU profile"),
                        ([list(range(inst.n_servers))], "into one")):
        k = dual_top_k(inst, len(pooled), settings)
        if len(pooled) < len(classes) and k >= need:
            scope = (f"public prompts within each user's top-{k} most similar candidates (and "
                     "its own prompt) or its group's public prompt in the plan"
                     + _pooled_scope(how))
            if not allowed.all():
                scope += "; " + _floor_scope(inst)
            return Strategy(route="heuristic", classes=classes, top_k=None,
                            pair_mask=None if allowed.all() else allowed, scope=scope,
                            share_floor_users=floor_users, bound_classes=pooled, bound_top_k=k,
                            bound_pooling=how)
    return Strategy(route="heuristic", classes=classes, top_k=None,
                    pair_mask=None if allowed.all() else allowed,
                    scope=f"none: fewer than {settings.min_late_top_k} candidates per user fit "
                          f"the dual's {settings.max_dual_entries:,} entries, even with every "
                          "server pooled (heuristic plan, no bound)",
                    share_floor_users=floor_users)


def top_k_mask(inst: Instance, k: int, members: np.ndarray) -> np.ndarray:
    """Each user's ``k`` most similar allowed candidates (and its own prompt), plus its pair in
    a plan (``members``: public per user, -1 none): the pairs of a bound that covers the plan."""
    allowed = inst.share_allowed
    mask = _top_k_mask(inst, allowed, min(k, inst.n_publics))
    mask = np.array(allowed if mask is None else mask, dtype=bool, copy=True)
    own = members >= 0
    mask[members[own], np.flatnonzero(own)] = True
    return mask & allowed


def widen_to_publics(inst: Instance, strategy: Strategy, publics: np.ndarray,
                     members: np.ndarray, settings: SolverSettings) -> tuple[Strategy, int]:
    """The bound's scope after the first plan (dual and heuristic routes): every user may also
    share the plan's largest groups' ``publics`` (large groups form around publics far down
    many users' most similar lists), each user keeps its own pair in the plan (``members``:
    public per user, -1 none), and the per-user candidates shrink towards
    ``max_dual_entries`` (see there). ``publics`` are taken largest group first, at most half
    the fit; returns the widened strategy and how many publics it opened to everyone."""
    allowed = inst.share_allowed
    fits = dual_top_k(inst, len(strategy.bound_classes or strategy.classes), settings)
    publics = publics[: max(fits // 2, 0)]
    floor = (settings.min_dual_top_k if strategy.bound_classes is None
             else settings.min_late_top_k)
    k = max(floor, fits - len(publics))
    mask = top_k_mask(inst, k, members)
    mask[publics] |= allowed[publics]
    scope = (f"public prompts within each user's top-{k} most similar candidates (and its own "
             f"prompt), among the {len(publics)} largest groups' public prompts of the first "
             "plan, or the user's own group's there")
    if strategy.bound_classes is not None:
        scope += _pooled_scope(strategy.bound_pooling)
    if not allowed.all():
        scope += "; " + _floor_scope(inst)
    return replace(strategy, top_k=k, pair_mask=mask, scope=scope), len(publics)


def _pooled_scope(how: str) -> str:
    return f", on the servers pooled {how} (a relaxation: budgets at the pool's smallest figures)"


def _floor_scope(inst: Instance) -> str:
    return f"pairs at similarity >= {inst.min_share_similarity:.3g} (min_share_similarity)"
