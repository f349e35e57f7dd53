"""A Lagrangian bound that keeps every server's budget whole: one knapsack per server.

The LP and the per-class Lagrangian (:mod:`._dual`) let a group's common phase be paid in
fractions, spread over servers; on a few tight servers that loses most of the structure (a
group lives on one server and its members' edge steps must fit there). Here the dualised
constraints are the users' "served exactly once" rows instead, with a price ``pi_n`` each
(free in sign). For any ``pi`` the rest splits per server and is solved exactly:

* a group ``(p, x)`` on server ``s`` pays ``x tau_s`` once and its members ``beta_s y``; each
  user may join it with any feasible ``y`` for ``w q(p, n, x) + value0 - pi_n``. The best member
  set per GPU spend is a multiple-choice knapsack over the users (one pass per user);
* the server then picks groups and solo-on-server users by a knapsack over its budget;
* a solo user with ``y = 0`` uses no server and is a term of its own.

``L(pi) = sum_n pi_n + sum_n (v_dev_n - pi_n)^+ + sum_s Z_s(pi)`` bounds the optimum (weak
duality), whatever ``pi``. To keep the knapsacks small and the bound valid, GPU costs are
rounded *down* to multiples of ``delta_s = beta_s`` (one edge step; coarser when the budget
would hold more than ``max_units``; the budget is rounded down to whole units, and any real
plan still fits), the launch overhead ``alpha K`` is dropped and ``max_groups``
is relaxed (all costs: the value can only rise). Identical servers are solved once.

:func:`column_generation` chooses ``pi`` by Dantzig-Wolfe: the knapsack solutions are columns
("patterns", what one server runs) of a master LP whose user duals are the next prices
(smoothed towards the best prices so far, Wentges); the smallest ``L`` evaluated is the bound,
valid at every round. :func:`pattern_plan` then picks whole patterns by a small MILP: plans
the LP and the facility searches do not see, because they keep each group whole on a server.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from ._decision import Decision
from ._instance import Instance
from ._options import OptionTable

__all__ = ["ColumnBound", "KnapsackDual", "Pattern", "column_generation", "pattern_plan",
           "plan_patterns"]

_EPS = 1e-9


@dataclass(frozen=True, eq=False)
class _Server:
    """One server class's data: units, capacity, fixed costs and member values before prices."""

    count: int
    capacity: int
    fixed_units: np.ndarray  # (X,) common phase, units
    fixed_value: np.ndarray  # (X,) public-phase energy (a cost)
    member_units: np.ndarray  # (Y,) units per edge-step count (the same at every x)
    member_value: np.ndarray  # (N, P, X, Y) price-free value; -inf where not an option
    solo_units: np.ndarray  # (Y,)
    solo_value: np.ndarray  # (N, Y) solo on this server, y >= 1 (-inf elsewhere)
    budget_s: float
    pub_s: np.ndarray  # (X,) common-phase GPU seconds
    alpha: float  # launch overhead per edge step of the longest member
    beta: float  # GPU seconds per member edge step
    launch_value: float  # value of one launch-overhead step (its energy, a cost)

    def true_cost(self, pattern: Pattern) -> float:
        """GPU seconds of ``pattern`` on the real server (launch overhead included)."""
        cost = 0.0
        for _, xi, members in pattern.groups:
            ys = [y for _, y in members]
            cost += self.pub_s[xi] + self.alpha * max(ys, default=0) + self.beta * sum(ys)
        return cost + sum((self.alpha + self.beta) * y for _, y in pattern.solos)

    def true_value(self, pattern: Pattern) -> float:
        """Value of ``pattern`` with the launch overhead's energy."""
        launch = sum(max((y for _, y in m), default=0) for _, _, m in pattern.groups)
        return pattern_value(self, pattern) + self.launch_value * launch

    def trimmed(self, pattern: Pattern) -> Pattern | None:
        """``pattern`` cut to the real budget: members' edge steps lowered one at a time where
        it loses least (None when it cannot fit)."""
        groups = [(p, xi, list(m)) for p, xi, m in pattern.groups]
        solos = list(pattern.solos)
        cur = Pattern(groups=groups, solos=solos)
        for _ in range(64 * (1 + len(solos) + sum(len(m) for _, _, m in groups))):
            if self.true_cost(cur) <= self.budget_s + 1e-9:
                return cur
            best, move = -math.inf, None
            for gi, (p, xi, members) in enumerate(groups):
                for mi, (n, y) in enumerate(members):
                    if y > 0:
                        loss = self.member_value[n, p, xi, y - 1] - self.member_value[n, p, xi, y]
                        if loss > best:
                            best, move = loss, (gi, mi)
            for si, (n, y) in enumerate(solos):
                if y > 1:
                    loss = self.solo_value[n, y - 1] - self.solo_value[n, y]
                    if loss > best:
                        best, move = loss, (-1, si)
            if move is None or not math.isfinite(best):
                return None
            gi, mi = move
            if gi < 0:
                n, y = solos[mi]
                solos[mi] = (n, y - 1)
            else:
                n, y = groups[gi][2][mi]
                groups[gi][2][mi] = (n, y - 1)
        return None


class KnapsackDual:
    """``L(pi)`` and the patterns behind it; see the module docstring. ``pair_mask`` (public x
    user) restricts who may share which public; the bound then covers that restriction."""

    def __init__(self, inst: Instance, table: OptionTable, classes: list[list[int]], *,
                 pair_mask: np.ndarray | None = None, max_units: int = 160) -> None:
        N, P = inst.n_users, inst.n_publics
        wq = inst.weights[0]
        gx = table.xs[1:]
        q = inst.hiqm.predict(inst.sim[None, :, :], gx[:, None, None])  # (X, P, N)
        ok = (q >= inst.min_quality[None, None, :]) & inst.share_allowed[None]
        if pair_mask is not None:
            ok &= pair_mask[None]
        quality = np.where(ok, wq * q, -np.inf).transpose(2, 1, 0)  # (N, P, X)
        solo_ok = inst.allow_solo & (inst.solo_quality >= inst.min_quality)
        solo_q = np.where(solo_ok, wq * inst.solo_quality, -np.inf)
        dev = np.where(table.feasible[:, :, 0, 0], table.value0[:, :, 0, 0], -np.inf).max(axis=1)
        self.v_dev = solo_q + dev  # (N,) solo, every step on the device
        self.servers: list[_Server] = []
        for cls in classes:
            s = cls[0]
            beta = float(inst.beta[s])
            delta = max(beta, float(inst.budget_s[s]) / max_units, 1e-12)
            units = np.floor(table.gpu[0, s] / delta + _EPS).astype(np.int64)  # (X+1, Y)
            val = np.where(table.feasible[:, s], table.value0[:, s], -np.inf)  # (N, X+1, Y)
            member = quality[:, :, :, None] + val[:, None, 1:, :]
            pub = gx * inst.tau_pub[s]
            self.servers.append(_Server(
                count=len(cls),
                capacity=int(math.floor(inst.budget_s[s] / delta + 1e-6)),
                fixed_units=np.floor(pub / delta + _EPS).astype(np.int64),
                fixed_value=-inst.weights[2] * inst.power_w[s] * pub,
                member_units=units[1:].max(axis=0),
                member_value=member,
                solo_units=units[0],
                solo_value=np.where(np.arange(val.shape[2])[None] >= 1,
                                    solo_q[:, None] + val[:, 0], -np.inf),
                budget_s=float(inst.budget_s[s]),
                pub_s=pub,
                alpha=float(inst.alpha[s]),
                beta=beta,
                launch_value=-inst.weights[2] * inst.power_w[s] * float(inst.alpha[s]),
            ))
        self.n_users, self.n_publics = N, P
        self.max_groups = inst.scenario.max_groups
        self.group_steps = gx

    def evaluate(self, pi: np.ndarray) -> tuple[float, list[tuple[float, Pattern]]]:
        """``L(pi)`` and, per server class, its knapsack value and pattern at ``pi``."""
        value = float(pi.sum() + np.maximum(self.v_dev - pi, 0.0).sum())
        solved = [_server_knapsack(sv, pi) for sv in self.servers]
        for sv, (z, _) in zip(self.servers, solved, strict=True):
            value += sv.count * z
        return value, solved


def _server_knapsack(sv: _Server, pi: np.ndarray) -> tuple[float, Pattern]:
    """Best value of one server at prices ``pi`` and what it runs for it."""
    C = sv.capacity
    w = sv.member_value - pi[:, None, None, None]  # (N, P, X, Y)
    useful = w > 0  # a member worth <= 0 never helps (-inf: not an option)
    active = np.flatnonzero(useful.any(axis=(0, 2, 3)))  # publics some member helps
    w, useful = w[:, active], useful[:, active]
    N, P, X, Y = w.shape
    # members: best value per (p, x) and spend c <= C; choice[n] = y + 1 joined, 0 not
    dp = np.zeros((P, X, C + 1))
    choice = np.zeros((N, P, X, C + 1), dtype=np.int8)
    for n in range(N):
        if not useful[n].any():
            continue
        new = dp.copy()
        for y in np.flatnonzero(useful[n].any(axis=(0, 1))):
            u = int(sv.member_units[y])
            if u > C:
                continue
            cand = dp[:, :, : C + 1 - u] + w[n, :, :, y, None]
            cur = new[:, :, u:]
            better = cand > cur
            cur[better] = cand[better]
            choice[n, :, :, u:][better] = y + 1
        dp = new
    # groups: curve g(c) = dp[c - F_x] + fixed value, open only where it pays
    z = np.zeros(C + 1)
    picks: list[tuple[int, int, np.ndarray]] = []
    for xi in range(X):
        F = int(sv.fixed_units[xi])
        if F > C:
            continue
        gain = dp[:, xi, : C + 1 - F] + sv.fixed_value[xi]  # (P, C+1-F)
        for p in np.flatnonzero(gain.max(axis=1) > 1e-12):
            curve = np.full(C + 1, -np.inf)
            curve[F:] = gain[p]
            z, arg = _maxplus(z, curve)
            picks.append((int(active[p]), xi, arg))
    solo = sv.solo_value - pi[:, None]
    solo_y: dict[int, np.ndarray] = {}
    for n in np.flatnonzero((solo > 1e-12).any(axis=1)):
        curve = np.full(C + 1, -np.inf)
        curve[0] = 0.0
        y_at = np.zeros(C + 1, dtype=np.int64)
        for y in np.flatnonzero(solo[n] > 1e-12):
            u = int(sv.solo_units[y])
            if u <= C and solo[n, y] > curve[u]:
                curve[u], y_at[u] = solo[n, y], y
        z, arg = _maxplus(z, curve)
        picks.append((-1, int(n), arg))
        solo_y[int(n)] = y_at
    best = float(z[C])
    # back through the picks: what the server runs
    groups: list[tuple[int, int, list[tuple[int, int]]]] = []
    solos: list[tuple[int, int]] = []
    c = C
    for p, k, arg in reversed(picks):
        used = int(arg[c])
        if used < 0:
            continue
        c -= used
        if p < 0:
            solos.append((k, int(solo_y[k][used])))
            continue
        cc = used - int(sv.fixed_units[k])
        members = []
        pa = int(np.searchsorted(active, p))
        for n in range(N - 1, -1, -1):
            y = int(choice[n, pa, k, cc]) - 1
            if y >= 0:
                members.append((n, y))
                cc -= int(sv.member_units[y])
        groups.append((p, k, members))
    return best, Pattern(groups=groups, solos=solos)


@dataclass(frozen=True)
class Pattern:
    """What one server runs in a knapsack solution: groups ``(public, x index into the group
    steps, [(user, y)])`` and solo users ``(user, y)``."""

    groups: list[tuple[int, int, list[tuple[int, int]]]]
    solos: list[tuple[int, int]]

    def served(self, n_users: int) -> np.ndarray:
        out = np.zeros(n_users)
        for _, _, members in self.groups:
            for n, _ in members:
                out[n] += 1
        for n, _ in self.solos:
            out[n] += 1
        return out


def _maxplus(z: np.ndarray, curve: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``out[c] = max(z[c], max_u z[c - u] + curve[u])`` and the ``u`` taken (-1: none)."""
    C = len(z) - 1
    c = np.arange(C + 1)
    shift = c[:, None] - c[None, :]  # (c, u): c - u
    cand = np.where(shift >= 0, z[np.maximum(shift, 0)] + curve[None, :], -np.inf)
    u = np.argmax(cand, axis=1)
    best = cand[c, u]
    take = best > z
    return np.where(take, best, z), np.where(take, u, -1)


def pattern_value(sv: _Server, pattern: Pattern) -> float:
    """A pattern's value with no prices (launch overhead dropped, as in the knapsack)."""
    v = 0.0
    for p, xi, members in pattern.groups:
        v += sv.fixed_value[xi] + sum(sv.member_value[n, p, xi, y] for n, y in members)
    return v + sum(sv.solo_value[n, y] for n, y in pattern.solos)


def plan_patterns(dual: KnapsackDual, dec: Decision, classes: list[list[int]]
                  ) -> list[list[Pattern]]:
    """A plan's server loads as patterns, per class (one per server that runs something)."""
    cls_of = {s: k for k, c in enumerate(classes) for s in c}
    per_server: dict[int, Pattern] = {}
    gx = dual.group_steps
    for g in range(dec.n_groups):
        members = dec.members(g)
        if len(members) == 0:
            continue
        s = int(dec.server[g])
        pat = per_server.setdefault(s, Pattern(groups=[], solos=[]))
        if dec.public[g] >= 0:
            xi = int(np.searchsorted(gx, dec.x[g]))
            pat.groups.append((int(dec.public[g]), xi, [(int(n), int(dec.y[n])) for n in members]))
        elif dec.y[members[0]] > 0:
            pat.solos.append((int(members[0]), int(dec.y[members[0]])))
    out: list[list[Pattern]] = [[] for _ in classes]
    for s, pat in per_server.items():
        out[cls_of[s]].append(pat)
    return out


@dataclass
class ColumnBound:
    """The best ``L`` found, its user prices, the patterns generated per class, rounds, and
    whether it stopped because the rounds would not fit in its time."""

    value: float
    prices: np.ndarray
    patterns: list[list[Pattern]]
    rounds: int
    too_slow: bool = False


def column_generation(dual: KnapsackDual, start: list[list[Pattern]], pi0: np.ndarray, *,
                      deadline: float, target: float = -math.inf, mip_gap: float = 0.0,
                      max_rounds: int = 1000, min_rounds: int = 40, rel_tol: float = 1e-6,
                      smoothing: float = 0.85) -> ColumnBound:
    """Dantzig-Wolfe on the server patterns, smoothed (Wentges): a master LP (HiGHS) over the
    patterns found so far gives user prices; the server knapsacks are solved at a mix of
    those and the best prices so far (``pi0`` first), which gives ``L`` (a valid bound) and new
    patterns. Stops when ``L`` meets the master's value, is within ``mip_gap`` of ``target``
    (a known plan's value), after ``max_rounds`` or at the deadline. ``start``: known
    patterns per class (a plan's, or an earlier call's). When ``min_rounds`` evaluations would
    not fit before the deadline, it stops after the first (``too_slow``: a bound, no more)."""
    N = dual.n_users
    cols: list[tuple[int, Pattern, float, np.ndarray]] = []
    patterns: list[list[Pattern]] = [[] for _ in dual.servers]

    def add(k: int, pat: Pattern) -> None:
        value = pattern_value(dual.servers[k], pat)
        if (pat.groups or pat.solos) and math.isfinite(value):
            cols.append((k, pat, value, pat.served(N)))
            patterns[k].append(pat)

    for k, pats in enumerate(start):
        for pat in pats:
            add(k, pat)
    t0 = time.perf_counter()
    best, solved = dual.evaluate(pi0)
    best_pi = np.asarray(pi0, dtype=float).copy()
    if (time.perf_counter() - t0) * min_rounds > deadline - time.perf_counter():
        return ColumnBound(value=best, prices=best_pi, patterns=patterns, rounds=1,
                           too_slow=True)
    for k, (_, pat) in enumerate(solved):
        add(k, pat)
    dev_ok = np.isfinite(dual.v_dev)
    big = 1e3 * (1.0 + float(np.max(np.abs(dual.v_dev[dev_ok]), initial=1.0)))
    rounds = 1
    while rounds < max_rounds and time.perf_counter() < deadline:
        if best - target <= mip_gap * max(abs(target), 1e-9):
            break
        rounds += 1
        pi, master = _master(dual, cols, dev_ok, big)
        if best - master <= rel_tol * max(1.0, abs(best)):
            break
        for alpha in (smoothing, 0.0):  # a smoothed step; the master's prices if it misprices
            trial = alpha * best_pi + (1 - alpha) * pi
            value, solved = dual.evaluate(trial)
            before = len(cols)
            for k, (_, pat) in enumerate(solved):
                add(k, pat)
            if value < best:
                best, best_pi = value, trial
            if len(cols) > before and value > master + rel_tol * max(1.0, abs(master)):
                break
    return ColumnBound(value=best, prices=best_pi, patterns=patterns, rounds=rounds)


def pattern_plan(dual: KnapsackDual, patterns: list[list[Pattern]], classes: list[list[int]],
                 *, time_limit: float) -> Decision | None:
    """The best plan made of whole patterns (each on its own server of its class, every user
    in one pattern or solo on its device): a small set-partitioning MILP (HiGHS) over the
    patterns cut to the real budgets (the knapsack's costs are rounded down and leave the
    launch overhead out), with their true values."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    N, K = dual.n_users, len(dual.servers)
    cols = []
    for k, pats in enumerate(patterns):
        sv = dual.servers[k]
        for pat in pats:
            if pat.served(N).max(initial=0) <= 1:
                real = sv.trimmed(pat)
                if real is not None:
                    cols.append((k, real))
    dev_ok = np.isfinite(dual.v_dev)
    n_dev = int(dev_ok.sum())
    J = len(cols)
    if J == 0:
        return None
    a_user = np.zeros((N, J + n_dev))
    a_cls = np.zeros((K, J + n_dev))
    for j, (k, pat) in enumerate(cols):
        a_user[:, j] = pat.served(N)
        a_cls[k, j] = 1.0
    a_user[np.flatnonzero(dev_ok), J + np.arange(n_dev)] = 1.0
    value = np.concatenate([[dual.servers[k].true_value(p) for k, p in cols],
                            dual.v_dev[dev_ok]])
    counts = [sv.count for sv in dual.servers]
    rows = [LinearConstraint(a_user, 1, 1), LinearConstraint(a_cls, 0, counts)]
    if dual.max_groups is not None:
        n_groups = np.zeros(J + n_dev)
        n_groups[:J] = [len(pat.groups) for _, pat in cols]
        rows.append(LinearConstraint(n_groups[None], 0, dual.max_groups))
    res = milp(-value, constraints=rows, integrality=np.ones(J + n_dev), bounds=Bounds(0, 1),
               options={"time_limit": max(time_limit, 0.05)})
    if res.x is None:
        return None
    free = [list(c) for c in classes]
    groups: list[tuple[int, int, int, list[int]]] = []
    y = np.zeros(N, dtype=int)
    served = np.zeros(N, dtype=bool)
    for j in np.flatnonzero(res.x[:J] > 0.5):
        k, pat = cols[j]
        s = free[k].pop(0)
        for p, xi, members in pat.groups:
            groups.append((s, p, int(dual.group_steps[xi]), [n for n, _ in members]))
            for n, yn in members:
                y[n], served[n] = yn, True
        for n, yn in pat.solos:
            groups.append((s, -1, 0, [n]))
            y[n], served[n] = yn, True
    groups += [(classes[0][0], -1, 0, [int(n)]) for n in np.flatnonzero(~served)]
    return Decision.from_groups(groups, y, N)


def _master(dual: KnapsackDual, cols: list, dev_ok: np.ndarray, big: float
            ) -> tuple[np.ndarray, float]:
    """Solve the restricted master LP (uncovered users at a large penalty); its user duals
    and its value."""
    from scipy.optimize import linprog

    N, K = dual.n_users, len(dual.servers)
    J = len(cols)
    n_dev = int(dev_ok.sum())
    c = np.concatenate([[-v for _, _, v, _ in cols], -dual.v_dev[dev_ok], np.full(N, big)])
    a_eq = np.zeros((N, J + n_dev + N))
    for j, (_, _, _, served) in enumerate(cols):
        a_eq[:, j] = served
    a_eq[np.flatnonzero(dev_ok), J + np.arange(n_dev)] = 1.0
    a_eq[np.arange(N), J + n_dev + np.arange(N)] = 1.0
    a_ub = np.zeros((K, J + n_dev + N))
    for j, (k, _, _, _) in enumerate(cols):
        a_ub[k, j] = 1.0
    counts = np.array([sv.count for sv in dual.servers], dtype=float)
    bounds = [(0, None)] * J + [(0, 1)] * n_dev + [(0, None)] * N
    res = linprog(c, A_ub=a_ub, b_ub=counts, A_eq=a_eq, b_eq=np.ones(N), bounds=bounds,
                  method="highs")
    if res.status != 0:
        raise RuntimeError(f"master LP failed: {res.message}")
    return -res.eqlin.marginals, -float(res.fun)
