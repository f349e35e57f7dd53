"""Who arrives in a round: the paper's fixed N per slot, or a Poisson stream over the round."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._config import ArrivalSettings

__all__ = ["Arrivals", "draw_arrivals"]


@dataclass(frozen=True)
class Arrivals:
    """The round's users as rows of the prompt pool, and each one's wait for the plan (s)."""

    pool_index: np.ndarray
    wait_s: np.ndarray


def draw_arrivals(rng: np.random.Generator, settings: ArrivalSettings, pool_size: int, *,
                  round_length_s: float | None, queue: bool) -> Arrivals:
    """Draw one round's arrivals.

    Fixed mode draws ``users_per_round`` pool rows. Poisson mode draws the count from
    ``Poisson(rate * round_length_s)`` and each arrival time uniformly within the round. In queue
    mode a user that arrives at ``t`` waits ``round_length_s - t`` for the plan made at the end of
    the round; otherwise the wait is 0 (the paper's slots: everyone is there when it plans).
    """
    if settings.mode == "fixed":
        n = settings.users_per_round
        arrive = np.zeros(n)
    else:
        n = int(rng.poisson(settings.rate_per_s * round_length_s))
        arrive = np.sort(rng.uniform(0.0, round_length_s, n))
    idx = rng.choice(pool_size, size=n, replace=settings.replace)
    wait = (round_length_s - arrive) if queue else np.zeros(n)
    return Arrivals(pool_index=np.asarray(idx, dtype=int), wait_s=np.asarray(wait, dtype=float))
