"""Policies: what plans a round. Each is a small class with ``name`` and ``decide(rnd, inst)``
returning a :class:`Decision` (a plan, a ``SolveResult`` or a ``Decision``; ``None`` when it has
no feasible plan) and any notes.

Built in: ``his`` (the exact solver, warm-started from its previous round when the solver takes
``warm_start``), ``ippo`` (the paper's learned HID), ``iis``, ``gfis``, ``ppgfis``, ``greedy``.
A plug-in is any class named ``package.module:ClassName`` in the config's ``policies``: it is
built with keyword arguments ``builder`` and ``config`` and must have ``name`` and ``decide``.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from .._errors import InputError
from ._config import SimConfig
from ._rounds import Round, RoundBuilder

__all__ = ["BaselinePolicy", "HisPolicy", "IppoPolicy", "Outcome", "Policy", "load_plugin",
           "merge_subjects"]


@dataclass
class Outcome:
    """A policy's answer for one round: the plan (``None``: none found), the time it took to
    decide, the solver's status and notes."""

    plan: Any
    decision_s: float
    status: str = "ok"
    notes: list[str] = field(default_factory=list)


class Policy(Protocol):
    name: str

    def decide(self, rnd: Round, inst: Any) -> Outcome: ...


def _from_result(res: Any, t0: float) -> Outcome:
    plan = res.plan if res.plan is not None else None
    return Outcome(plan=plan, decision_s=time.perf_counter() - t0, status=res.status,
                   notes=list(res.diagnostics))


class HisPolicy:
    """The exact optimizer every round (``his_opt.allocation.solve``)."""

    name = "his"

    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.previous: Any = None

    def decide(self, rnd: Round, inst: Any) -> Outcome:
        from ..allocation import solve

        kw: dict[str, Any] = {"time_limit": self.cfg.solver.time_limit_s,
                              "mip_gap": self.cfg.solver.mip_gap}
        if self.previous is not None:
            kw["warm_start"] = self.previous
        t0 = time.perf_counter()
        res = solve(inst, **kw)
        self.previous = res if res.plan is not None else None
        return _from_result(res, t0)


class BaselinePolicy:
    """One of the published baselines (IIS, GFIS, PPGFIS) or the greedy heuristic. PPGFIS groups
    by subject; when a round has more subjects than the scenario's ``max_groups`` (M), the
    smallest subjects are merged into one group so that PPGFIS stays within M groups."""

    def __init__(self, name: str, cfg: SimConfig) -> None:
        self.name = name
        self.cfg = cfg

    def decide(self, rnd: Round, inst: Any) -> Outcome:
        from .. import allocation as al

        kw = {"time_limit": self.cfg.solver.time_limit_s, "mip_gap": self.cfg.solver.mip_gap}
        seed = inst.random_state
        t0 = time.perf_counter()
        if self.name == "iis":
            res = al.iis(inst, **kw)
        elif self.name == "gfis":
            res = al.gfis(inst, random_state=seed, **kw)
        elif self.name == "ppgfis":
            res = al.ppgfis(merge_subjects(inst), random_state=seed, **kw)
        else:
            res = al.greedy(inst)
        return _from_result(res, t0)


def merge_subjects(inst: Any) -> Any:
    """``inst`` with at most ``max_groups`` subjects: the M - 1 largest kept, the rest merged."""
    from collections import Counter
    from dataclasses import replace

    m = inst.scenario.max_groups
    subjects = inst.subjects
    if m is None or any(s is None for s in subjects) or len(set(subjects)) <= m:
        return inst
    ranked = sorted(Counter(subjects).items(), key=lambda kv: (-kv[1], kv[0]))
    keep = {name for name, _ in ranked[: m - 1]}
    merged = "+".join(sorted(name for name, _ in ranked[m - 1:]))
    return replace(inst, subjects=tuple(s if s in keep else merged for s in subjects))


class IppoPolicy:
    """The trained HID agents: each user slot's agent picks its ``(x, y)``."""

    name = "ippo"

    def __init__(self, agents: Any, env: Any, mode: str = "mode") -> None:
        self.agents, self.env, self.mode = agents, env, mode

    def decide(self, rnd: Round, inst: Any) -> Outcome:
        import torch

        torch.manual_seed(rnd.episode * 100_003 + rnd.index)
        t0 = time.perf_counter()
        lay = self.env.layout(rnd)
        actions, _ = self.agents.act(lay.obs[None], mode=self.mode)
        dec = self.env.decision(lay, actions[0], inst.publics)
        return Outcome(plan=dec, decision_s=time.perf_counter() - t0)


def load_plugin(spec: str, builder: RoundBuilder, cfg: SimConfig) -> Policy:
    """Build the plug-in policy ``package.module:ClassName``; ``InputError`` if it cannot."""
    module, _, cls_name = spec.partition(":")
    try:
        cls = getattr(importlib.import_module(module), cls_name)
    except (ImportError, AttributeError) as err:
        raise InputError(f"cannot load policy {spec!r}: {err}", file=cfg.source,
                         field="policies") from err
    policy = cls(builder=builder, config=cfg)
    if not callable(getattr(policy, "decide", None)) or not getattr(policy, "name", None):
        raise InputError(f"policy {spec!r} needs a 'name' and a decide(rnd, inst) method",
                         file=cfg.source, field="policies")
    return policy
