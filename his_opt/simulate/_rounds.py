"""The prompt pool and the round builder: each round's users, device clocks, budgets, instance.

The pool's MiniLM similarities are computed once (``Pool.sim``, pool x pool); every round slices
them, so no round re-embeds a prompt. Random draws of round ``(episode, round)`` come from a
generator seeded by ``(seed, stream, episode, round)``: a round is the same whatever ran before
it, which is what makes a resumed run equal to an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from ..costs import EdgeServer
from ..scenario import Scenario
from ._arrivals import draw_arrivals
from ._config import SimConfig

__all__ = ["STREAMS", "Pool", "Round", "RoundBuilder", "pool_labels"]

STREAMS = {"eval": 0, "train": 1}
"""Random streams: evaluation rounds and ippo training slots never share draws."""


@dataclass(frozen=True, eq=False)
class Pool:
    """The users table rows new users are drawn from, with the pool's similarity matrix and each
    row's group label (its ``subject``, or a prompt cluster when subjects are missing)."""

    table: pd.DataFrame
    sim: np.ndarray
    labels: np.ndarray

    @property
    def size(self) -> int:
        return len(self.table)


def pool_labels(table: pd.DataFrame, sim: np.ndarray, instance: Any) -> np.ndarray:
    """Group label per pool row: its subject, or PPGFIS's prompt clusters if any subject is
    missing (the paper's scheme groups by subject, extracted there by an LLM)."""
    subjects = list(table["subject"])
    if all(s is not None for s in subjects):
        names = sorted(set(subjects))
        return np.array([names.index(s) for s in subjects], dtype=int)
    from ..allocation._baselines import subject_groups

    labels = np.zeros(len(table), dtype=int)
    for k, members in enumerate(subject_groups(instance, random_state=0)):
        labels[members] = k
    return labels


@dataclass(frozen=True, eq=False)
class Round:
    """One round: who is there (pool rows), their device figures and waits, the budgets."""

    episode: int
    index: int
    pool_index: np.ndarray
    clock_hz: np.ndarray
    device_step_s: np.ndarray
    device_step_j: np.ndarray
    wait_s: np.ndarray
    servers: tuple[EdgeServer, ...]

    @property
    def n_users(self) -> int:
        return len(self.pool_index)

    @property
    def budget_s(self) -> float:
        return float(sum(s.budget_s for s in self.servers))


class RoundBuilder:
    """Draws rounds from the pool as the config says and turns them into allocation instances."""

    def __init__(self, cfg: SimConfig, pool: Pool, servers: list[EdgeServer], scenario: Scenario,
                 hiqm: Any) -> None:
        self.cfg = cfg
        self.pool = pool
        self.scenario = scenario
        self.hiqm = hiqm
        budget = None if cfg.round_length_s is None else cfg.round_length_s * cfg.gpu_share
        self.servers = tuple(s if budget is None else replace(s, budget_s=budget)
                             for s in servers)
        redraw = cfg.redraw_device_clock
        self.redraw_clock = scenario.device_model == "cycles" if redraw is None else redraw
        self.freq_range = (scenario.device_freq_min_hz, scenario.device_freq_max_hz)

    def rng(self, stream: str, episode: int, index: int) -> np.random.Generator:
        return np.random.default_rng([self.cfg.seed, STREAMS[stream], episode, index])

    def draw(self, episode: int, index: int, stream: str = "eval") -> Round:
        """Round ``index`` of ``episode`` on a random ``stream`` (``eval`` or ``train``)."""
        rng = self.rng(stream, episode, index)
        arr = draw_arrivals(rng, self.cfg.arrivals, self.pool.size,
                            round_length_s=self.cfg.round_length_s, queue=self.cfg.queue)
        idx = arr.pool_index
        sc = self.scenario
        if self.redraw_clock:
            clock = rng.uniform(*self.freq_range, len(idx))
            step_s = sc.device_cycles_per_step / clock
            step_j = sc.device_kappa * sc.device_cycles_per_step * clock**2
        else:
            step_s = self.pool.table["device_step_s"].to_numpy(float)[idx]
            step_j = self.pool.table["device_step_energy_j"].to_numpy(float)[idx]
            clock = sc.device_cycles_per_step / step_s
        return Round(episode=episode, index=index, pool_index=idx, clock_hz=clock,
                     device_step_s=step_s, device_step_j=step_j, wait_s=arr.wait_s,
                     servers=self.servers)

    def users_table(self, rnd: Round) -> pd.DataFrame:
        """The round's canonical users table: pool rows with fresh ids and device figures."""
        t = self.pool.table.iloc[rnd.pool_index].reset_index(drop=True).copy()
        t["user_id"] = [f"{uid}#{k}" for k, uid in enumerate(t["user_id"])]
        t["device_step_s"] = rnd.device_step_s
        t["device_step_energy_j"] = rnd.device_step_j
        return t

    def instance(self, rnd: Round, *, scenario: Scenario | None = None) -> Any:
        """The round's allocation instance (publics: the users' distinct prompts), its
        similarities sliced from the pool matrix."""
        from ..allocation import build_instance

        table = self.users_table(rnd)
        prompts = list(table["prompt"])
        first: dict[str, int] = {}
        for k, p in enumerate(prompts):
            first.setdefault(p, int(rnd.pool_index[k]))
        pub_rows = np.array(list(first.values()), dtype=int)
        sim = self.pool.sim[np.ix_(pub_rows, rnd.pool_index)]
        seed = int(np.random.SeedSequence([self.cfg.seed, rnd.episode, rnd.index])
                   .generate_state(1)[0])
        return build_instance(table, self.servers, scenario or self.scenario, self.hiqm,
                              similarity=sim, random_state=seed)
