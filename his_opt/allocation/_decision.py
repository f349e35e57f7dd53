"""The solvers' internal decision: groups as arrays, one edge-step count per user."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Decision"]


@dataclass(frozen=True, eq=False)
class Decision:
    """Groups ``g`` with ``server[g]``, ``public[g]`` (-1: a solo user's own group), ``x[g]``
    (0 for solo); ``user_group[n]`` and ``y[n]`` per user (``z = T - x - y``)."""

    server: np.ndarray
    public: np.ndarray
    x: np.ndarray
    user_group: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        for name in ("server", "public", "x", "user_group", "y"):
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=int))

    @property
    def n_groups(self) -> int:
        return len(self.server)

    def members(self, g: int) -> np.ndarray:
        return np.flatnonzero(self.user_group == g)

    def user_x(self) -> np.ndarray:
        return self.x[self.user_group]

    def user_server(self) -> np.ndarray:
        return self.server[self.user_group]

    def with_y(self, y: np.ndarray) -> Decision:
        return Decision(self.server, self.public, self.x, self.user_group, y)

    def compact(self) -> Decision:
        """Drop empty groups and renumber (stable order)."""
        used = np.unique(self.user_group)
        remap = np.full(self.n_groups, -1, dtype=int)
        remap[used] = np.arange(len(used))
        return Decision(
            self.server[used], self.public[used], self.x[used], remap[self.user_group], self.y
        )

    @classmethod
    def from_groups(
        cls,
        groups: list[tuple[int, int, int, list[int] | np.ndarray]],
        y: np.ndarray,
        n_users: int,
    ) -> Decision:
        """From ``(server, public, x, members)`` tuples (``public = -1``: a solo user); every
        user must appear in exactly one tuple (ValueError otherwise)."""
        user_group = np.full(n_users, -1, dtype=int)
        server, public, xs = [], [], []
        for g, (s, p, x, members) in enumerate(groups):
            members = np.asarray(members, dtype=int)
            if np.any(user_group[members] >= 0):
                raise ValueError("a user appears in two groups")
            user_group[members] = g
            server.append(s)
            public.append(p)
            xs.append(x)
        if np.any(user_group < 0):
            raise ValueError("every user must belong to exactly one group")
        return cls(np.array(server), np.array(public), np.array(xs), user_group, np.asarray(y))
