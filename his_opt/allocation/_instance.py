"""The optimisation instance: every figure the solver needs, as plain numpy arrays.

``build_instance`` turns the canonical users table, the edge servers, the scenario and the HIQM
into an :class:`Instance`. Nothing here solves anything; the per-server and per-user constants
are those of the model documented in :mod:`his_opt.allocation`:

* ``tau_pub[s] = profile.step_time(1, public_guided)``: one public image-step (batch 1);
* ``tau_one[s] = profile.step_time(1, personal_guided)``: a user's own edge step, used in delay;
* ``(alpha[s], beta_raw[s]) = profile.affine_bound(personal_guided)`` over 1..B_s images, and
  ``beta[s] = beta_raw[s]`` if ``B_s >= N`` else ``beta_raw[s] + alpha[s] / B_s`` (a launch of
  more than ``B_s`` images is chunked, which costs at most one more ``alpha`` per ``B_s`` images);
* ``power_w[s] = profile.energy_power_w(scenario.default_power_w)``;
* ``downlink_s[n] = downlink_bits(user n's hand-off) / rate_n`` and ``downlink_j[n] = tx_power_w * downlink_s[n]``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._columns import USER_TABLE_COLUMNS
from ..costs import Channel, EdgeServer, downlink_bits
from ..scenario import Scenario

__all__ = ["Instance", "USER_TABLE_COLUMNS", "build_instance", "public_candidates", "user_chunks"]

_CHUNK_CELLS = 4_000_000
"""Cells built at once by the per-user arrays of large instances (option table, top-k mask,
central publics): their temporaries are a few arrays of this size (~30 MB each), not of the
whole instance (50,000 users x 16 servers: 1.5 GB each)."""


def user_chunks(n_users: int, cells_per_user: int) -> Iterator[slice]:
    """Consecutive slices of the users, each about ``_CHUNK_CELLS`` cells."""
    step = max(1, _CHUNK_CELLS // max(cells_per_user, 1))
    for a in range(0, n_users, step):
        yield slice(a, min(a + step, n_users))



@dataclass(frozen=True, eq=False)
class Instance:
    """One allocation problem. Arrays are indexed by user ``n``, public candidate ``p``, server
    ``s``. ``sim[p, n]`` is the cosine similarity of public candidate ``p`` and user ``n``'s
    prompt; ``own_public[n]`` is the candidate equal to user ``n``'s prompt (-1 if none)."""

    scenario: Scenario
    hiqm: Any
    user_ids: tuple[str, ...]
    prompts: tuple[str, ...]
    negative_prompts: tuple[str | None, ...]
    subjects: tuple[str | None, ...]
    publics: tuple[str, ...]
    sim: np.ndarray
    own_public: np.ndarray
    servers: tuple[EdgeServer, ...]
    tau_pub: np.ndarray
    tau_one: np.ndarray
    alpha: np.ndarray
    beta_raw: np.ndarray
    beta: np.ndarray
    batch_images: np.ndarray
    power_w: np.ndarray
    budget_s: np.ndarray
    device_step_s: np.ndarray
    device_step_j: np.ndarray
    downlink_s: np.ndarray
    downlink_j: np.ndarray
    deadline_s: np.ndarray
    min_quality: np.ndarray
    solo_quality: np.ndarray
    random_state: int | None = None
    min_share_similarity: float = -1.0
    """Pairs (public, user) below this similarity are not options: the quality model has no
    evidence there (default: the lowest similarity the HIQM was fitted on)."""

    # ------------------------------------------------------------------ sizes and ranges
    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_publics(self) -> int:
        return len(self.publics)

    @property
    def n_servers(self) -> int:
        return len(self.servers)

    @property
    def server_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.servers)

    @property
    def total_steps(self) -> int:
        return self.scenario.total_steps

    @property
    def allow_solo(self) -> bool:
        """A user may share nothing (x = 0) only when ``common_steps_min == 0``."""
        return self.scenario.common_steps_min == 0

    @property
    def x_values(self) -> np.ndarray:
        """Common-step values a group may use: ``max(1, x_min) .. x_max``."""
        sc = self.scenario
        return np.arange(max(1, sc.common_steps_min), sc.common_steps_max + 1)

    @property
    def weights(self) -> tuple[float, float, float]:
        sc = self.scenario
        return sc.w_quality, sc.w_delay, sc.w_energy

    def y_range(self, x: Any) -> tuple[np.ndarray, np.ndarray]:
        """Edge-step bounds ``(lo, hi)`` for ``x`` common steps (``lo > hi``: x not possible)."""
        sc = self.scenario
        x = np.asarray(x)
        lo = np.maximum(sc.edge_steps_min, sc.total_steps - x - sc.device_steps_max)
        hi = np.minimum(sc.edge_steps_max, sc.total_steps - x - sc.device_steps_min)
        return lo, hi

    def quality(self, p: Any, n: Any, x: Any) -> np.ndarray:
        """HIQM quality of user ``n`` in a group with public ``p`` and ``x >= 1`` common steps."""
        return np.asarray(self.hiqm.predict(self.sim[p, n], x), dtype=float)

    def delay(self, n: Any, s: Any, x: Any, y: Any) -> np.ndarray:
        """Delay of user ``n`` on server ``s`` with ``x`` common and ``y`` edge steps."""
        z = self.total_steps - np.asarray(x) - np.asarray(y)
        return (
            np.asarray(x) * self.tau_pub[s]
            + np.asarray(y) * self.tau_one[s]
            + np.where(z > 0, self.downlink_s[n], 0.0)
            + z * self.device_step_s[n]
        )

    def user_energy(self, n: Any, x: Any, y: Any) -> np.ndarray:
        """Energy of user ``n`` outside the edge GPU: downlink (if z > 0) and its device steps."""
        z = self.total_steps - np.asarray(x) - np.asarray(y)
        return np.where(z > 0, self.downlink_j[n], 0.0) + z * self.device_step_j[n]

    @property
    def share_allowed(self) -> np.ndarray:
        """``(publics, users)``: the pair may share (similarity at or above the floor)."""
        return self.sim >= self.min_share_similarity

    def servers_identical(self) -> list[list[int]]:
        """Classes of servers with equal cost figures and budgets (interchangeable)."""
        return self._server_classes(exact=True)

    def servers_by_profile(self) -> list[list[int]]:
        """Classes of servers with equal per-step figures (one GPU profile), whatever their
        budgets and batch caps: pooled at their smallest figures they relax the instance."""
        return self._server_classes(exact=False)

    def _server_classes(self, *, exact: bool) -> list[list[int]]:
        classes: dict[tuple[float, ...], list[int]] = {}
        for s in range(self.n_servers):
            key = (float(self.tau_pub[s]), float(self.tau_one[s]), float(self.alpha[s]),
                   float(self.beta_raw[s]), float(self.power_w[s]))
            if exact:
                key += (float(self.beta[s]), float(self.budget_s[s]),
                        float(self.batch_images[s]))
            classes.setdefault(key, []).append(s)
        return list(classes.values())


def public_candidates(prompts: Sequence[str], candidates: Sequence[str] | None = None) -> list[str]:
    """The public-prompt candidates of an instance: ``candidates`` deduplicated in order, or by
    default the users' distinct prompts in order of first use (rows of the similarity matrix)."""
    if candidates is None:
        return list(dict.fromkeys(str(p) for p in prompts))
    publics = list(dict.fromkeys(str(c) for c in candidates))
    if not publics:
        raise ValueError("candidates must hold at least one public prompt")
    return publics


def _as_similarity_matrix(similarity: Any, n_p: int, n_u: int, copy: bool = True) -> np.ndarray:
    """The ``(publics, users)`` cosine matrix as finite floats in [-1, 1] (``copy=False``: a
    float64 array is used, and clipped, in place)."""
    if similarity is None or hasattr(similarity, "matrix"):
        raise ValueError(
            "similarity must be a (publics, users) array of cosines; compute it with "
            "his_opt.app.similarity_matrix or read one with his_opt.io.load_similarity_table"
        )
    sim = np.array(similarity, dtype=float) if copy else np.asarray(similarity, dtype=float)
    if sim.shape != (n_p, n_u):
        raise ValueError(
            f"similarity matrix must have shape (publics, users) = {(n_p, n_u)}, got {sim.shape}"
        )
    lo, hi = (float(sim.min()), float(sim.max())) if sim.size else (0.0, 0.0)
    if not (math.isfinite(lo) and math.isfinite(hi)) or max(-lo, hi) > 1.0 + 1e-6:
        raise ValueError("similarity values must be finite and within [-1, 1]")
    return np.clip(sim, -1.0, 1.0, out=sim)


def build_instance(
    users: Any,
    servers: Sequence[EdgeServer],
    scenario: Scenario,
    hiqm: Any,
    similarity: Any = None,
    candidates: Sequence[str] | None = None,
    random_state: int | None = None,
    copy: bool = True,
) -> Instance:
    """Build the :class:`Instance` from the canonical users table (a pandas DataFrame).

    ``similarity`` is the ``(publics, users)`` array of cosines (numbers only: this layer loads
    no embedding model). Public-prompt candidates (its rows) are :func:`public_candidates`:
    ``candidates`` deduplicated in order or, by default, the users' distinct prompts in order of
    first use. ``random_state`` seeds the image seeds written into plans. ``copy=False`` lets
    the instance keep (and clip in place) a float64 ``similarity`` its caller hands over, so a
    large matrix is never held twice.
    Raises ``ValueError`` on API misuse (missing columns, bad arrays, a HIQM for another T).
    """
    missing = [c for c in USER_TABLE_COLUMNS if c not in users.columns]
    if missing:
        raise ValueError(f"users table lacks columns {missing}; build it with his_opt.io.load_users")
    if len(users) == 0:
        raise ValueError("users table is empty")
    servers = tuple(servers)
    if not servers:
        raise ValueError("need at least one edge server")
    names = [s.name for s in servers]
    if len(set(names)) != len(names):
        raise ValueError(f"server names must be unique, got {names}")
    hiqm_steps = getattr(hiqm, "total_steps", None)
    if hiqm_steps is not None and hiqm_steps != scenario.total_steps:
        raise ValueError(
            f"the HIQM models T = {hiqm_steps} steps but the scenario has total_steps = "
            f"{scenario.total_steps}"
        )
    user_ids = [str(u) for u in users["user_id"]]
    if len(set(user_ids)) != len(user_ids):
        raise ValueError("user_id values must be unique")
    prompts = [str(p) for p in users["prompt"]]

    def opt_str(v: Any) -> str | None:
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)

    negatives = [opt_str(v) for v in users["negative_prompt"]]
    subjects = [opt_str(v) for v in users["subject"]]
    publics = public_candidates(prompts, candidates)
    sim = _as_similarity_matrix(similarity, len(publics), len(prompts), copy=copy)
    index = {t: i for i, t in enumerate(publics)}
    own = np.array([index.get(p, -1) for p in prompts], dtype=int)

    def col(name: str) -> np.ndarray:
        return users[name].to_numpy(dtype=float)

    dev_s, dev_j = col("device_step_s"), col("device_step_energy_j")
    for name, arr in (("device_step_s", dev_s), ("device_step_energy_j", dev_j)):
        if not np.all(np.isfinite(arr)) or np.any(arr < 0):
            raise ValueError(f"users column {name!r} must be finite and non-negative")
    bits = [downlink_bits(scenario, p, q) for p, q in zip(prompts, negatives, strict=True)]
    dl_s = np.empty(len(users))
    dl_j = np.empty(len(users))
    for i, (b, p, g) in enumerate(
        zip(col("bandwidth_hz"), col("tx_power_w"), col("channel_gain"), strict=True)
    ):
        ch = Channel(float(b), float(p), float(g), scenario.noise_psd_w_per_hz)
        dl_s[i], dl_j[i] = ch.time_s(bits[i]), ch.energy_j(bits[i])
    deadline = col("deadline_s")
    deadline = np.where(np.isnan(deadline), np.inf, deadline)
    min_q = col("min_quality")
    min_q = np.where(np.isnan(min_q), -np.inf, min_q)

    n_users = len(users)
    pub_g, per_g = scenario.public_guided, scenario.personal_guided
    tau_pub, tau_one, alpha, beta_raw, beta, batch, power, budget = ([] for _ in range(8))
    for srv in servers:
        prof = srv.profile
        b_s = int(srv.batch_images(per_g))
        a_s, be_s = prof.affine_bound(per_g)
        tau_pub.append(prof.step_time(1, guided=pub_g))
        tau_one.append(prof.step_time(1, guided=per_g))
        alpha.append(a_s)
        beta_raw.append(be_s)
        beta.append(be_s if b_s >= n_users else be_s + a_s / b_s)
        batch.append(b_s)
        power.append(prof.energy_power_w(scenario.default_power_w))
        budget.append(srv.budget_s)
    solo_q = np.full(n_users, hiqm.unshared_quality())
    floor = scenario.min_share_similarity
    if floor is None:
        floor = float(getattr(hiqm, "similarity_range", (-1.0, 1.0))[0])
    arr = np.asarray
    return Instance(
        scenario=scenario,
        hiqm=hiqm,
        user_ids=tuple(user_ids),
        prompts=tuple(prompts),
        negative_prompts=tuple(negatives),
        subjects=tuple(subjects),
        publics=tuple(publics),
        sim=sim,
        own_public=own,
        servers=servers,
        tau_pub=arr(tau_pub, dtype=float),
        tau_one=arr(tau_one, dtype=float),
        alpha=arr(alpha, dtype=float),
        beta_raw=arr(beta_raw, dtype=float),
        beta=arr(beta, dtype=float),
        batch_images=arr(batch, dtype=int),
        power_w=arr(power, dtype=float),
        budget_s=arr(budget, dtype=float),
        device_step_s=dev_s,
        device_step_j=dev_j,
        downlink_s=dl_s,
        downlink_j=dl_j,
        deadline_s=deadline,
        min_quality=min_q,
        solo_quality=solo_q,
        random_state=random_state,
        min_share_similarity=float(floor),
    )
