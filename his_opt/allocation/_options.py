"""Per-user option tables shared by the solvers: which edge-step counts ``y`` a user may take for
each server and common-step count ``x``, what they are worth, and what GPU time they use.

For user ``n`` on server ``s`` with ``x`` common steps (``x = 0``: solo) and ``y`` edge steps, the
part of the objective that belongs to the user alone (everything but quality and its group's
public phase and launch overhead) is

    value0[n, s, i, y] = -w_delay * delay - w_energy * (user energy + P_s * c_s * y)

with ``c_s = beta_s`` in a group and ``alpha_s + beta_s`` solo, and its GPU time is ``c_s * y``.
``feasible[n, s, i, y]`` says ``y`` lies in the step ranges and meets the user's deadline.
Index ``i`` runs over ``xs = [0, x_lo, ..., x_max]``; column 0 is the solo option.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._instance import Instance, user_chunks

__all__ = ["OptionTable", "build_option_table"]


@dataclass(frozen=True, eq=False)
class OptionTable:
    """See the module docstring. ``ys = 0..y_max``; arrays are ``(N, S, len(xs), len(ys))``."""

    xs: np.ndarray
    ys: np.ndarray
    feasible: np.ndarray
    value0: np.ndarray
    gpu: np.ndarray

    @property
    def any_y(self) -> np.ndarray:
        """``(N, S, len(xs))``: some ``y`` is feasible."""
        return self.feasible.any(axis=3)


def build_option_table(inst: Instance) -> OptionTable:
    """Tabulate every user's feasible ``y`` and its user-only value, per server and ``x``; built
    in chunks of users, so its peak memory is the table itself plus one chunk."""
    sc = inst.scenario
    xs = np.concatenate([[0], inst.x_values])
    ys = np.arange(sc.edge_steps_max + 1)
    shape = (inst.n_users, inst.n_servers, len(xs), len(ys))
    solo = xs[None, :, None] == 0
    c_s = np.where(solo, (inst.alpha + inst.beta)[:, None, None], inst.beta[:, None, None])
    gpu = c_s * ys[None, None, :]  # (S, len(xs), len(ys)): the same for every user
    feasible = np.empty(shape, dtype=bool)
    value0 = np.empty(shape)
    for rows in user_chunks(inst.n_users, gpu.size):
        feasible[rows], value0[rows] = _user_rows(inst, xs, ys, gpu,
                                                  np.arange(rows.start, rows.stop))
    return OptionTable(xs=xs, ys=ys, feasible=feasible, value0=value0,
                       gpu=np.broadcast_to(gpu, shape))  # a read-only view


def _user_rows(inst: Instance, xs: np.ndarray, ys: np.ndarray, gpu: np.ndarray,
               users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``feasible`` and ``value0`` (module docstring) of ``users``; ``gpu`` per (s, x, y)."""
    _, wd, we = inst.weights
    n = users[:, None, None, None]
    s = np.arange(inst.n_servers)[None, :, None, None]
    x = xs[None, None, :, None]
    y = ys[None, None, None, :]
    lo, hi = inst.y_range(xs)
    in_range = (y >= lo[None, None, :, None]) & (y <= hi[None, None, :, None])
    delay = inst.delay(n, s, x, y)
    feasible = in_range & (delay <= inst.deadline_s[users][:, None, None, None] * (1 + 1e-12))
    if not inst.allow_solo:
        feasible[:, :, 0, :] = False
    value0 = -wd * delay - we * (inst.user_energy(n, x, y) + inst.power_w[None, :, None, None]
                                 * gpu[None])
    shape = (len(users), inst.n_servers, len(xs), len(ys))
    return np.broadcast_to(feasible, shape), np.broadcast_to(value0, shape)
