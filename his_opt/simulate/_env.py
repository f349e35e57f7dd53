"""The paper's HID environment, vectorised: one agent per user slot, observation
``(f_UE, phi)``, action ``(x, y)`` with ``z = T - x - y``, shared reward ``w1 U - w2 T - w3 E``.

Grouping and public prompts follow the paper's scheme, where an LLM groups users by subject and
writes one public prompt per group: here the round's users are grouped by their pool label
(subject), the ``max_groups`` (M) largest groups share, and each group's public prompt is its
medoid (the member prompt most similar to the others). Users outside the M groups share nothing
(``x = 0``) when the scenario allows it, else they join the group whose public prompt is most
similar. A group's common steps are the rounded mean of its members' ``x`` actions (the paper
gives x per user and per group; the engine runs one x per group); each ``y`` is clipped to what
that x allows. Group ``m`` runs on server ``m mod S``.

The reward is the plan's objective, computed here without building an instance (training sees
tens of thousands of slots); ``tests/test_simulate_env.py`` checks it equals
:func:`his_opt.allocation.evaluate` on the same plan. GPU time over a server's budget costs
``budget_penalty`` per second (the paper has no budget).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._rounds import Round, RoundBuilder

__all__ = ["Layout", "PaperEnv"]


@dataclass(frozen=True, eq=False)
class Layout:
    """A round seen by the agents: group per user (-1: solo), public pool row per group,
    similarity to the group's public prompt, observations ``[N, 2]``."""

    rnd: Round
    group: np.ndarray
    public_row: np.ndarray
    phi: np.ndarray
    obs: np.ndarray


class PaperEnv:
    """Cost constants of the servers and the pool, and the reward of agents' actions."""

    def __init__(self, builder: RoundBuilder, n_agents: int, *, budget_penalty: float = 100.0
                 ) -> None:
        from ..allocation import build_instance

        self.builder = builder
        self.n_agents = n_agents
        sc = builder.scenario
        self.scenario = sc
        self.budget_penalty = budget_penalty
        pool = builder.pool
        ref = build_instance(pool.table, builder.servers, sc, builder.hiqm,
                             similarity=pool.sim[:1], candidates=[pool.table["prompt"].iloc[0]])
        self.tau_pub, self.tau_one, self.alpha = ref.tau_pub, ref.tau_one, ref.alpha
        b = ref.batch_images
        self.beta = np.where(b >= n_agents, ref.beta_raw, ref.beta_raw + ref.alpha / b)
        self.power_w = ref.power_w
        self.downlink_s, self.downlink_j = ref.downlink_s, ref.downlink_j
        self.solo_quality = float(builder.hiqm.unshared_quality())
        self.hiqm = builder.hiqm
        self.n_groups = sc.max_groups if sc.max_groups is not None else int(pool.labels.max()) + 1
        self.x_choices = sc.common_steps_max + 1
        self.y_choices = sc.edge_steps_max + 1
        self.allow_solo = sc.common_steps_min == 0
        lo, hi = sc.device_freq_min_hz, sc.device_freq_max_hz
        self.freq_mid, self.freq_half = 0.5 * (lo + hi), max(0.5 * (hi - lo), 1e-12)

    @property
    def action_sizes(self) -> tuple[int, int]:
        return self.x_choices, self.y_choices

    # ------------------------------------------------------------------ observation
    def layout(self, rnd: Round) -> Layout:
        """Groups, public prompts and observations of one round."""
        if rnd.n_users != self.n_agents:
            raise ValueError(f"round has {rnd.n_users} users, the env {self.n_agents} agents")
        sim = self.builder.pool.sim
        rows = rnd.pool_index
        labels = self.builder.pool.labels[rows]
        names, counts = np.unique(labels, return_counts=True)
        order = sorted(range(len(names)), key=lambda k: (-counts[k], names[k]))[: self.n_groups]
        group = np.full(len(rows), -1, dtype=int)
        publics = []
        for m, k in enumerate(order):
            members = np.flatnonzero(labels == names[k])
            sub = sim[np.ix_(rows[members], rows[members])]
            publics.append(int(rows[members[int(np.argmax(sub.sum(axis=1)))]]))
            group[members] = m
        public_row = np.array(publics, dtype=int)
        to_pub = sim[np.ix_(public_row, rows)]
        if not self.allow_solo:
            outside = group < 0
            group[outside] = np.argmax(to_pub[:, outside], axis=0)
        phi = np.where(group >= 0, to_pub[np.maximum(group, 0), np.arange(len(rows))],
                       to_pub.max(axis=0))
        f = (rnd.clock_hz - self.freq_mid) / self.freq_half
        obs = np.stack([f, phi], axis=-1).astype(np.float32)
        return Layout(rnd=rnd, group=group, public_row=public_row, phi=phi, obs=obs)

    # ------------------------------------------------------------------ actions -> plan
    def steps(self, lay: Layout, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per user ``(x, y)`` and per group ``x`` from actions ``[N, 2]`` (see module doc)."""
        sc = self.scenario
        xa, ya = actions[:, 0].astype(int), actions[:, 1].astype(int)
        G = len(lay.public_row)
        x_g = np.zeros(G, dtype=int)
        for m in range(G):
            mem = lay.group == m
            if mem.any():
                x_g[m] = int(np.rint(xa[mem].mean()))
        x_lo = max(1, sc.common_steps_min)
        x_g = np.clip(x_g, 0 if self.allow_solo else x_lo, sc.common_steps_max)
        x_g = np.where((x_g > 0) & (x_g < x_lo), x_lo, x_g)
        x_u = np.where(lay.group >= 0, x_g[np.maximum(lay.group, 0)], 0)
        lo = np.maximum(sc.edge_steps_min, sc.total_steps - x_u - sc.device_steps_max)
        hi = np.minimum(sc.edge_steps_max, sc.total_steps - x_u - sc.device_steps_min)
        y = np.clip(ya, lo, np.maximum(lo, hi))
        return x_u, y, x_g

    def decision(self, lay: Layout, actions: np.ndarray, publics: tuple[str, ...]) -> Any:
        """The plan of the actions as the solvers' ``Decision`` (scored by ``evaluate``);
        ``publics`` are the round instance's public candidates."""
        from ..allocation._decision import Decision

        x_u, y, x_g = self.steps(lay, actions)
        prompts = self.builder.pool.table["prompt"]
        S = len(self.tau_pub)
        groups = []
        for m, row in enumerate(lay.public_row):
            members = np.flatnonzero((lay.group == m) & (x_u > 0))
            if members.size:
                groups.append((m % S, publics.index(prompts.iloc[row]), int(x_g[m]), members))
        for n in np.flatnonzero(x_u == 0):
            groups.append((int(n) % S, -1, 0, [int(n)]))
        return Decision.from_groups(groups, y, len(x_u))

    # ------------------------------------------------------------------ reward
    def score(self, lay: Layout, actions: np.ndarray) -> dict[str, float]:
        """Objective, its terms, GPU time and the budget penalty of the actions."""
        sc = self.scenario
        rnd = lay.rnd
        x_u, y, x_g = self.steps(lay, actions)
        N, S = len(x_u), len(self.tau_pub)
        shared = x_u > 0
        srv_u = np.where(shared, np.maximum(lay.group, 0) % S, np.arange(N) % S)
        q = np.full(N, self.solo_quality)
        if shared.any():
            q[shared] = self.hiqm.predict(lay.phi[shared], x_u[shared])
        z = sc.total_steps - x_u - y
        dl = z > 0
        rows = rnd.pool_index
        delay = (x_u * self.tau_pub[srv_u] + y * self.tau_one[srv_u]
                 + np.where(dl, self.downlink_s[rows], 0.0) + z * rnd.device_step_s)
        user_e = np.where(dl, self.downlink_j[rows], 0.0) + z * rnd.device_step_j
        gpu = np.zeros(S)
        solo = ~shared
        np.add.at(gpu, srv_u[solo], (self.alpha[srv_u[solo]] + self.beta[srv_u[solo]]) * y[solo])
        for m in range(len(x_g)):
            mem = shared & (lay.group == m)
            if mem.any():
                s = m % S
                gpu[s] += (x_g[m] * self.tau_pub[s] + self.alpha[s] * y[mem].max()
                           + self.beta[s] * y[mem].sum())
        energy = float(user_e.sum() + np.sum(self.power_w * gpu))
        quality, delay_sum = float(q.sum()), float(delay.sum())
        objective = sc.w_quality * quality - sc.w_delay * delay_sum - sc.w_energy * energy
        budgets = np.array([s.budget_s for s in rnd.servers])
        over = float(np.maximum(gpu - budgets, 0.0).sum())
        return {"objective": objective, "quality": quality, "delay_s": delay_sum,
                "energy_j": energy, "gpu_s": float(gpu.sum()), "over_budget_s": over,
                "reward": objective - self.budget_penalty * over}
