"""Plans and solve results: what the optimizer returns, and the plan JSON contract.

A :class:`Plan` lists groups (a solo user is a one-member group with ``common_steps = 0`` and no
public prompt) and one row per user with its steps and predicted figures. ``Plan.to_dict()``
writes the ``his-opt/plan/1`` schema read by ``his-opt generate``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._decision import Decision
from ._evaluate import Evaluation, score_decision
from ._instance import Instance

__all__ = [
    "FEASIBLE_GAP",
    "INFEASIBLE",
    "OPTIMAL",
    "PLAN_SCHEMA",
    "STATUSES",
    "TIME_LIMIT",
    "GroupPlan",
    "Plan",
    "SolveResult",
    "UserPlan",
    "make_plan",
]

PLAN_SCHEMA = "his-opt/plan/1"

OPTIMAL = "optimal"
"""The plan is optimal within the requested relative gap (``gap <= mip_gap``)."""
FEASIBLE_GAP = "feasible_gap"
"""A feasible plan whose gap to the bound exceeds the requested one; the search ended for a
reason other than the time limit (for example the method does not close gaps)."""
TIME_LIMIT = "time_limit"
"""The time limit stopped the search; ``plan`` is the best found (None if none was found)."""
INFEASIBLE = "infeasible"
"""No plan meets every constraint; ``diagnostics`` says which and by how much."""
STATUSES = (OPTIMAL, FEASIBLE_GAP, TIME_LIMIT, INFEASIBLE)


@dataclass(frozen=True)
class GroupPlan:
    """One group: ``public_index``/``public_prompt`` are None for a solo user."""

    group_id: str
    server: str
    public_index: int | None
    public_prompt: str | None
    common_steps: int
    members: tuple[str, ...]
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "group_id": self.group_id,
            "server": self.server,
            "public_prompt": self.public_prompt,
            "public_index": self.public_index,
            "common_steps": self.common_steps,
            "seed": self.seed,
            "members": list(self.members),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GroupPlan:
        """Inverse of :meth:`to_dict` (validate the document first: ``his_opt.plan``)."""
        return cls(
            group_id=d["group_id"],
            server=d["server"],
            public_index=d.get("public_index"),
            public_prompt=d["public_prompt"],
            common_steps=d["common_steps"],
            members=tuple(d["members"]),
            seed=d["seed"],
        )


@dataclass(frozen=True)
class UserPlan:
    """One user's allocation and predicted figures (``energy_j`` is its share, see
    :class:`~his_opt.allocation.Evaluation`)."""

    user_id: str
    prompt: str
    negative_prompt: str | None
    group_id: str
    similarity: float
    common_steps: int
    edge_steps: int
    device_steps: int
    predicted_quality: float
    delay_s: float
    energy_j: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "group_id": self.group_id,
            "similarity": self.similarity,
            "common_steps": self.common_steps,
            "edge_steps": self.edge_steps,
            "device_steps": self.device_steps,
            "predicted_quality": self.predicted_quality,
            "delay_s": self.delay_s,
            "energy_j": self.energy_j,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> UserPlan:
        """Inverse of :meth:`to_dict`."""
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Plan:
    """Groups, per-user allocations, totals, and where the plan came from."""

    groups: tuple[GroupPlan, ...]
    users: tuple[UserPlan, ...]
    scenario: dict[str, Any]
    totals: dict[str, Any]
    status: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The ``his-opt/plan/1`` JSON document."""
        return {
            "schema": PLAN_SCHEMA,
            "scenario": dict(self.scenario),
            "groups": [g.to_dict() for g in self.groups],
            "users": [u.to_dict() for u in self.users],
            "totals": dict(self.totals),
            "status": dict(self.status),
            "provenance": dict(self.provenance),
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Plan:
        """A ``Plan`` from a ``his-opt/plan/1`` document (check it with
        ``his_opt.plan.validate_plan`` first: this only converts)."""
        return cls(
            groups=tuple(GroupPlan.from_dict(g) for g in doc["groups"]),
            users=tuple(UserPlan.from_dict(u) for u in doc["users"]),
            scenario=dict(doc["scenario"]),
            totals=dict(doc.get("totals", {})),
            status=dict(doc.get("status", {})),
            provenance=dict(doc.get("provenance", {})),
        )

    def to_decision(self, inst: Instance) -> Decision:
        """The plan as arrays over ``inst`` (ValueError if it names unknown users or servers)."""
        user_index = {u: i for i, u in enumerate(inst.user_ids)}
        server_index = {s: i for i, s in enumerate(inst.server_names)}
        n = inst.n_users
        user_group = np.full(n, -1)
        y = np.zeros(n, dtype=int)
        server, public, xs = [], [], []
        gid = {}
        for gi, grp in enumerate(self.groups):
            if grp.server not in server_index:
                raise ValueError(f"group {grp.group_id!r}: unknown server {grp.server!r}")
            server.append(server_index[grp.server])
            p = -1 if grp.public_index is None else int(grp.public_index)
            if p >= 0 and (p >= inst.n_publics or inst.publics[p] != grp.public_prompt):
                raise ValueError(f"group {grp.group_id!r}: public index {p} does not match its "
                                 "public prompt")
            public.append(p)
            xs.append(int(grp.common_steps))
            gid[grp.group_id] = gi
            for m in grp.members:
                if m not in user_index:
                    raise ValueError(f"group {grp.group_id!r}: unknown user {m!r}")
                if user_group[user_index[m]] >= 0:
                    raise ValueError(f"user {m!r} is in two groups")
                user_group[user_index[m]] = gi
        for u in self.users:
            if u.user_id not in user_index:
                raise ValueError(f"unknown user {u.user_id!r}")
            y[user_index[u.user_id]] = u.edge_steps
        if np.any(user_group < 0):
            missing = inst.user_ids[int(np.flatnonzero(user_group < 0)[0])]
            raise ValueError(f"user {missing!r} is in no group")
        return Decision(np.array(server, dtype=int), np.array(public, dtype=int),
                        np.array(xs, dtype=int), user_group, y)


def make_plan(
    inst: Instance,
    dec: Decision,
    *,
    status: dict[str, Any] | None = None,
    provenance: dict[str, Any] | None = None,
) -> Plan:
    """Build a :class:`Plan` from an internal decision, scoring it from scratch."""
    dec = dec.compact()
    ev = score_decision(inst, dec)
    rng = np.random.default_rng(inst.random_state)
    seeds = rng.integers(0, 2**31 - 1, size=dec.n_groups)
    groups = []
    gids = []
    for g in range(dec.n_groups):
        members = dec.members(g)
        p = int(dec.public[g])
        gid = f"g{g + 1}"
        gids.append(gid)
        groups.append(GroupPlan(
            group_id=gid,
            server=inst.server_names[int(dec.server[g])],
            public_index=p if p >= 0 else None,
            public_prompt=inst.publics[p] if p >= 0 else None,
            common_steps=int(dec.x[g]),
            members=tuple(inst.user_ids[m] for m in members),
            seed=int(seeds[g]),
        ))
    T = inst.total_steps
    users = []
    for n in range(inst.n_users):
        g = int(dec.user_group[n])
        x, y = int(dec.x[g]), int(dec.y[n])
        users.append(UserPlan(
            user_id=inst.user_ids[n],
            prompt=inst.prompts[n],
            negative_prompt=inst.negative_prompts[n],
            group_id=gids[g],
            similarity=float(ev.user_similarity[n]),
            common_steps=x,
            edge_steps=y,
            device_steps=T - x - y,
            predicted_quality=float(ev.user_quality[n]),
            delay_s=float(ev.user_delay_s[n]),
            energy_j=float(ev.user_energy_j[n]),
        ))
    return Plan(
        groups=tuple(groups),
        users=tuple(users),
        scenario=inst.scenario.to_dict(),
        totals=_totals(inst, ev),
        status=dict(status or {}),
        provenance=dict(provenance or {}),
    )


def _totals(inst: Instance, ev: Evaluation) -> dict[str, Any]:
    names = inst.server_names
    return {
        "objective": ev.objective,
        "quality": ev.quality,
        "delay_s": ev.delay_s,
        "energy_j": ev.energy_j,
        "gpu_energy_j": ev.gpu_energy_j,
        "mean_quality": ev.quality / inst.n_users,
        "mean_delay_s": ev.delay_s / inst.n_users,
        "groups": ev.n_groups,
        "solo_users": ev.n_solo,
        "gpu_time_s": {s: float(t) for s, t in zip(names, ev.gpu_time_s, strict=True)},
        "gpu_time_simulated_s": {
            s: float(t) for s, t in zip(names, ev.gpu_time_simulated_s, strict=True)
        },
        "budget_s": {s: float(b) for s, b in zip(names, inst.budget_s, strict=True)},
    }


@dataclass(frozen=True)
class SolveResult:
    """The outcome of :func:`~his_opt.allocation.solve` (or of a baseline).

    ``objective`` is the plan's objective (evaluated from scratch), ``bound`` a proven upper
    bound on the optimum over ``bound_scope``, ``gap = (bound - objective) / |objective|``.
    ``gpu_time_s`` is the model's (affine upper bound) GPU time per server,
    ``gpu_time_simulated_s`` the replayed schedule. ``diagnostics`` holds the solver's notes and,
    for an infeasible instance, one line per reason.
    """

    status: str
    objective: float
    bound: float
    gap: float
    solve_time_s: float
    bound_scope: str
    plan: Plan | None
    method: str
    terms: dict[str, float] = field(default_factory=dict)
    gpu_time_s: dict[str, float] = field(default_factory=dict)
    gpu_time_simulated_s: dict[str, float] = field(default_factory=dict)
    diagnostics: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The status block written into the plan JSON."""
        return {
            "status": self.status,
            "objective": self.objective,
            "bound": self.bound,
            "gap": self.gap,
            "solve_time_s": self.solve_time_s,
            "bound_scope": self.bound_scope,
            "method": self.method,
            "diagnostics": list(self.diagnostics),
        }


def relative_gap(objective: float, bound: float) -> float:
    """``(bound - objective) / |objective|`` (0 when equal, inf without a plan)."""
    if not (math.isfinite(objective) and math.isfinite(bound)):
        return math.inf
    return max(bound - objective, 0.0) / max(abs(objective), 1e-9)
