"""Evaluate a plan from scratch: quality, delay, energy, GPU time (model bound and replayed
schedule), objective, and the list of constraint violations.

Every solver and baseline is scored by this one evaluator, so their objectives are comparable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ._decision import Decision
from ._instance import Instance

if TYPE_CHECKING:
    pass

__all__ = ["Evaluation", "check_feasible", "evaluate", "score_decision", "simulate_gpu_time"]

_TOL = 1e-7


@dataclass(frozen=True, eq=False)
class Evaluation:
    """Every term of the objective for one plan.

    ``gpu_time_s`` is the model's affine upper bound (what the budget constrains);
    ``gpu_time_simulated_s`` replays the engine's schedule with the profile's real step times.
    ``user_energy_j`` is each user's share: its downlink and device steps, its edge steps at
    ``beta``, and an equal share of its group's public phase and launch overhead, so the shares sum
    to ``energy_j``.
    """

    objective: float
    quality: float
    delay_s: float
    energy_j: float
    gpu_energy_j: float
    gpu_time_s: np.ndarray
    gpu_time_simulated_s: np.ndarray
    user_similarity: np.ndarray
    user_quality: np.ndarray
    user_delay_s: np.ndarray
    user_energy_j: np.ndarray
    group_launch_steps: np.ndarray
    n_groups: int
    n_solo: int

    def terms(self) -> dict[str, float]:
        return {
            "objective": self.objective,
            "quality": self.quality,
            "delay_s": self.delay_s,
            "energy_j": self.energy_j,
            "gpu_energy_j": self.gpu_energy_j,
        }


def _as_decision(inst: Instance, plan: Any) -> Decision:
    if isinstance(plan, Decision):
        return plan
    return plan.to_decision(inst)


def score_decision(inst: Instance, dec: Decision) -> Evaluation:
    """Compute every term of ``dec`` (no feasibility check; see :func:`check_feasible`)."""
    dec = _as_decision(inst, dec)
    n = np.arange(inst.n_users)
    g = dec.user_group
    s_u = dec.server[g]
    x_u = dec.x[g]
    p_u = dec.public[g]
    y = dec.y
    shared = p_u >= 0
    sim = np.ones(inst.n_users)
    sim[shared] = inst.sim[p_u[shared], n[shared]]
    q = inst.solo_quality.copy()
    if shared.any():
        q[shared] = inst.quality(p_u[shared], n[shared], x_u[shared])
    delay = inst.delay(n, s_u, x_u, y)
    user_e = inst.user_energy(n, x_u, y)
    n_g = dec.n_groups
    launch = np.zeros(n_g, dtype=int)
    np.maximum.at(launch, g, y)
    size = np.bincount(g, minlength=n_g)
    y_sum = np.bincount(g, weights=y, minlength=n_g)
    gs = dec.server
    grp_public = dec.public >= 0
    # Group GPU time: public phase + one launch overhead per personal step + beta per image-step;
    # a solo user's own launch carries the overhead on each of its steps.
    pub_t = np.where(grp_public, dec.x * inst.tau_pub[gs], 0.0)
    over_t = inst.alpha[gs] * launch
    grp_t = pub_t + over_t + inst.beta[gs] * y_sum
    gpu_t = np.bincount(gs, weights=grp_t, minlength=inst.n_servers)
    gpu_e = float(np.sum(inst.power_w * gpu_t))
    # Energy shares: public and overhead split equally, edge steps at beta.
    shared_e = np.where(size > 0, (pub_t + over_t) * inst.power_w[gs] / np.maximum(size, 1), 0.0)
    share = user_e + shared_e[g] + inst.beta[s_u] * y * inst.power_w[s_u]
    energy = float(user_e.sum() + gpu_e)
    wq, wd, we = inst.weights
    quality = float(q.sum())
    delay_sum = float(delay.sum())
    used = size > 0
    return Evaluation(
        objective=wq * quality - wd * delay_sum - we * energy,
        quality=quality,
        delay_s=delay_sum,
        energy_j=energy,
        gpu_energy_j=gpu_e,
        gpu_time_s=gpu_t,
        gpu_time_simulated_s=simulate_gpu_time(inst, dec),
        user_similarity=sim,
        user_quality=q,
        user_delay_s=delay,
        user_energy_j=share,
        group_launch_steps=launch,
        n_groups=int(np.sum(used & grp_public)),
        n_solo=int(np.sum(used & ~grp_public)),
    )


def simulate_gpu_time(inst: Instance, plan: Any) -> np.ndarray:
    """GPU seconds per server when the engine runs the plan with the profile's real step times.

    Per group: ``x`` public steps of one image; then personal step ``k = 1..max(y)`` runs the
    ``a_k`` members with ``y >= k`` in launches of at most ``B_s`` images (full launches and one
    remainder). A solo user runs its ``y`` steps alone. Public phases of different groups are not
    batched together (as in the model).
    """
    dec = _as_decision(inst, plan)
    out = np.zeros(inst.n_servers)
    per_g = inst.scenario.personal_guided
    pub_g = inst.scenario.public_guided
    cache: dict[tuple[int, int, bool], float] = {}

    def step(s: int, images: int, guided: bool) -> float:
        key = (s, images, guided)
        if key not in cache:
            cache[key] = float(inst.servers[s].profile.step_time(images, guided=guided))
        return cache[key]

    for gi in range(dec.n_groups):
        members = dec.members(gi)
        if members.size == 0:
            continue
        s = int(dec.server[gi])
        b_s = int(inst.batch_images[s])
        t = dec.x[gi] * step(s, 1, pub_g) if dec.public[gi] >= 0 else 0.0
        ys = np.sort(dec.y[members])
        k_max = int(ys[-1]) if ys.size else 0
        if k_max > 0:
            active = members.size - np.searchsorted(ys, np.arange(1, k_max + 1), side="left")
            for a, count in zip(*np.unique(active, return_counts=True), strict=True):
                full, rest = divmod(int(a), b_s)
                one = full * step(s, b_s, per_g) + (step(s, rest, per_g) if rest else 0.0)
                t += count * one
        out[s] += t
    return out


def evaluate(inst: Instance, plan: Any) -> Evaluation:
    """Score a :class:`Plan` (or an internal decision) from scratch on ``inst``."""
    return score_decision(inst, _as_decision(inst, plan))


def check_feasible(inst: Instance, plan: Any, *, tol: float = 1e-6) -> list[str]:
    """Every violated constraint of ``plan`` on ``inst``, as one readable line each (empty: ok)."""
    dec = _as_decision(inst, plan)
    sc = inst.scenario
    out: list[str] = []
    n_u = inst.n_users
    if dec.user_group.shape != (n_u,) or dec.y.shape != (n_u,):
        return [f"plan must assign each of the {n_u} users exactly once"]
    if np.any(dec.user_group < 0) or np.any(dec.user_group >= dec.n_groups):
        return ["a user refers to a group that does not exist"]
    if np.any(dec.server < 0) or np.any(dec.server >= inst.n_servers):
        return ["a group refers to a server that does not exist"]
    if np.any(dec.public >= inst.n_publics):
        return ["a group refers to a public prompt that does not exist"]
    ev = score_decision(inst, dec)
    uid = inst.user_ids
    x_lo = max(1, sc.common_steps_min)
    for gi in range(dec.n_groups):
        if not np.any(dec.user_group == gi):
            continue
        x, p = int(dec.x[gi]), int(dec.public[gi])
        if p < 0:
            if x != 0:
                out.append(f"group {gi}: no public prompt but {x} common steps")
            elif not inst.allow_solo:
                out.append(f"group {gi}: solo users need common_steps_min = 0 "
                           f"(it is {sc.common_steps_min})")
            elif dec.members(gi).size != 1:
                out.append(f"group {gi}: a group without public prompt must have one member")
        elif not x_lo <= x <= sc.common_steps_max:
            out.append(f"group {gi}: common steps {x} outside [{x_lo}, {sc.common_steps_max}]")
    x_u = dec.user_x()
    p_u = dec.public[dec.user_group]
    for n in np.flatnonzero(p_u >= 0):
        s_pn = float(inst.sim[p_u[n], n])
        if s_pn < inst.min_share_similarity:
            out.append(f"user {uid[n]}: shares a public prompt below min_share_similarity "
                       f"{inst.min_share_similarity:.4g} (the quality model's evidence)")
    z = sc.total_steps - x_u - dec.y
    for n in range(n_u):
        if not sc.edge_steps_min <= dec.y[n] <= sc.edge_steps_max:
            out.append(f"user {uid[n]}: edge steps {dec.y[n]} outside "
                       f"[{sc.edge_steps_min}, {sc.edge_steps_max}]")
        if not sc.device_steps_min <= z[n] <= sc.device_steps_max:
            out.append(f"user {uid[n]}: device steps {z[n]} outside "
                       f"[{sc.device_steps_min}, {sc.device_steps_max}]")
        if ev.user_delay_s[n] > inst.deadline_s[n] * (1 + tol) + tol:
            out.append(f"user {uid[n]}: delay {ev.user_delay_s[n]:.6g} s exceeds deadline "
                       f"{inst.deadline_s[n]:.6g} s by {ev.user_delay_s[n] - inst.deadline_s[n]:.6g} s")
        if ev.user_quality[n] < inst.min_quality[n] - tol:
            out.append(f"user {uid[n]}: quality {ev.user_quality[n]:.6g} below min_quality "
                       f"{inst.min_quality[n]:.6g}")
    for s in range(inst.n_servers):
        if ev.gpu_time_s[s] > inst.budget_s[s] * (1 + tol) + tol:
            out.append(f"server {inst.server_names[s]}: GPU time {ev.gpu_time_s[s]:.6g} s exceeds "
                       f"budget {inst.budget_s[s]:.6g} s by {ev.gpu_time_s[s] - inst.budget_s[s]:.6g} s")
    if sc.max_groups is not None and ev.n_groups > sc.max_groups:
        out.append(f"{ev.n_groups} groups exceed max_groups = {sc.max_groups}")
    return out
