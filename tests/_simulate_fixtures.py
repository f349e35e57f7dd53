"""Shared helpers for the simulate tests: a small config and the pool's real MiniLM matrix,
embedded once per test process."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "his_opt" / "data" / "examples"


@functools.lru_cache(maxsize=4)
def pool_similarity(users: str) -> np.ndarray:
    """The real all-MiniLM-L6-v2 cosine matrix of the pool's prompts."""
    from his_opt.io import load_users
    from his_opt.similarity import PromptSimilarity

    prompts = list(load_users(users)["prompt"])
    return PromptSimilarity().matrix(prompts)


def write_config(folder: Path, *, name: str = "sim.yaml", **fields: str) -> Path:
    """A small paper-cycle config (6 users per round from users_paper.csv); ``fields`` replace
    top-level YAML entries (values are YAML text)."""
    base = {
        "users": str(EXAMPLES / "users_paper.csv"),
        "scenario": str(EXAMPLES / "paper_cycle.yaml"),
        "seed": "0",
        "arrivals": "{mode: fixed, users_per_round: 6}",
        "episodes": "2",
        "rounds_per_episode": "2",
        "policies": "[his, ippo, iis, gfis, ppgfis, greedy]",
        "ippo": "{episodes: 3, slots_per_episode: 16, minibatch: 16, hidden: [16, 16]}",
    }
    base.update(fields)
    text = "".join(f"{k}: {v}\n" for k, v in base.items() if v is not None)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


class GreedyPlugin:
    """A user's own policy, loaded by name from the config (``tests._simulate_fixtures:...``)."""

    name = "mine"

    def __init__(self, builder, config) -> None:
        self.builder, self.config = builder, config

    def decide(self, rnd, inst):
        from his_opt.allocation import greedy
        from his_opt.simulate import Outcome

        return Outcome(plan=greedy(inst).plan, decision_s=0.0, status="plugin")
