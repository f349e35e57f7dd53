"""The exact compact MILP over columns ``c = (public p, server s, common steps x, phi)``.

Variables (one sparse model, built with numpy):

* ``o_c`` binary: column ``c`` is opened (a group). ``a_e`` binary for each option
  ``e = (user n, column c)``: user ``n`` joins ``c``, with ``a_e <= o_c`` (the strong
  facility-location form). ``b_ns`` binary: user ``n`` is solo on server ``s`` (only when
  ``common_steps_min == 0``). Each user takes exactly one option.
* ``y_j`` integer per ``j = (n, s, x)`` (``x = 0``: solo): the user's edge steps, with
  ``lo_j A_j <= y_j <= hi_j A_j`` where ``A_j`` sums the options of ``n`` on ``(s, x)`` and
  ``[lo_j, hi_j]`` spans the steps that keep every range and the deadline.
* ``F_j`` binary where ``z = 0`` is possible: ``F_j = 1`` iff ``y_j = T - x`` (the image is finished
  on the edge, no latent is sent): ``hi_j F_j <= y_j <= (hi_j - 1) A_j + F_j``. The downlink is
  charged as ``1 - sum_j F_j``.
* Launch overhead: columns come in two kinds (``phi_split``). A ``phi = 1`` column may hold
  edge-finished members and pays ``K = T - x`` launches as a constant; a ``phi = 0`` column holds
  none and has ``K_c >= y_j - hi_j (1 - a_e)`` (only where ``alpha_s > 0``). Same optimum as one
  column kind with both, but the LP cannot pay a finished member's launches fractionally as
  easily, and a budget cut (at most ``f_max`` edge-finished members per ``phi = 1`` column on
  ``(s, x)``, ``f_max`` from the budget) removes most of the rest.

GPU time of server ``s`` (the budget row):
``sum_c (x_c tau_pub_s + alpha_s K_c) o_c-terms + beta'_s sum_group y + (alpha_s + beta'_s) sum_solo y``.
Deadline rows are linear in ``a, b, y, F`` because ``z = T - x - y``. Optional rows: ``max_groups``
on ``sum o``; valid symmetry breaking (interchangeable servers ordered by GPU time; members with
identical step tables in one column ordered by edge steps); ``one_per_public`` for the baselines.

Options a user can never take (quality below ``min_quality``, no ``y`` meeting the ranges and the
deadline) are not generated: that is exact. A caller may pass a smaller option list (pruned
publics, or options removed by reduced-cost fixing); the model is then exact over that list.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from ._decision import Decision
from ._instance import Instance
from ._options import OptionTable

__all__ = ["CompactModel", "all_options", "build_compact_model", "usable_options"]


@dataclass(eq=False)
class CompactModel:
    """``max c @ v + offset`` s.t. ``row_lo <= A v <= row_hi``, bounds, integrality; plus the
    index maps that decode a solution."""

    c: np.ndarray
    offset: float
    A: sp.csr_matrix
    row_lo: np.ndarray
    row_hi: np.ndarray
    col_lo: np.ndarray
    col_hi: np.ndarray
    integrality: np.ndarray
    col_p: np.ndarray
    col_s: np.ndarray
    col_x: np.ndarray
    col_phi: np.ndarray
    k_of: np.ndarray
    e_n: np.ndarray
    e_c: np.ndarray
    e_j: np.ndarray
    solo_n: np.ndarray
    solo_s: np.ndarray
    solo_j: np.ndarray
    j_n: np.ndarray
    j_x: np.ndarray
    j_f: np.ndarray
    offsets: dict[str, int] = field(default_factory=dict)
    n_users: int = 0
    rows: dict[str, np.ndarray] = field(default_factory=dict)
    j_codes: np.ndarray | None = None
    col_codes: np.ndarray | None = None
    e_src: np.ndarray | None = None
    lo_j: np.ndarray | None = None
    hi_j: np.ndarray | None = None
    f_ok: np.ndarray | None = None
    e_q: np.ndarray | None = None
    e_phi: np.ndarray | None = None

    @property
    def n_vars(self) -> int:
        return len(self.c)

    def block(self, name: str) -> slice:
        order = ["o", "a", "b", "y", "F", "K", "end"]
        i = order.index(name)
        return slice(self.offsets[name], self.offsets[order[i + 1]])

    def decode(self, v: np.ndarray) -> Decision:
        """The decision of a (near-)integral solution vector."""
        v = np.asarray(v)
        a = v[self.block("a")] > 0.5
        b = v[self.block("b")] > 0.5
        ys = np.rint(v[self.block("y")]).astype(int)
        n_u = self.n_users
        user_group = np.full(n_u, -1)
        y = np.zeros(n_u, dtype=int)
        cols = np.unique(self.e_c[a])
        remap = np.full(len(self.col_p), -1)
        remap[cols] = np.arange(len(cols))
        ea = np.flatnonzero(a)
        user_group[self.e_n[ea]] = remap[self.e_c[ea]]
        y[self.e_n[ea]] = ys[self.e_j[ea]]
        sb = np.flatnonzero(b)
        user_group[self.solo_n[sb]] = len(cols) + np.arange(len(sb))
        y[self.solo_n[sb]] = ys[self.solo_j[sb]]
        if np.any(user_group < 0):
            raise RuntimeError("solution leaves a user unassigned")
        return Decision(
            np.concatenate([self.col_s[cols], self.solo_s[sb]]),
            np.concatenate([self.col_p[cols], -np.ones(len(sb), dtype=int)]),
            np.concatenate([self.col_x[cols], np.zeros(len(sb), dtype=int)]),
            user_group,
            y,
        )

    def encode(self, dec: Decision, total_steps: int) -> np.ndarray | None:
        """The solution vector of ``dec`` (a warm start), or None if it uses a missing option."""
        v = np.zeros(self.n_vars)
        col_key = {k: i for i, k in enumerate(zip(
            self.col_p.tolist(), self.col_s.tolist(), self.col_x.tolist(), self.col_phi.tolist(),
            strict=True))}
        pair_key = {k: e for e, k in enumerate(zip(self.e_n.tolist(), self.e_c.tolist(),
                                                    strict=True))}
        solo_key = {k: i for i, k in enumerate(zip(self.solo_n.tolist(), self.solo_s.tolist(),
                                                    strict=True))}
        off = self.offsets
        launch = np.zeros(dec.n_groups, dtype=int)
        np.maximum.at(launch, dec.user_group, dec.y)
        for n in range(self.n_users):
            g = int(dec.user_group[n])
            s, p, x = int(dec.server[g]), int(dec.public[g]), int(dec.x[g])
            if p < 0:
                k = solo_key.get((n, s))
                if k is None:
                    return None
                v[off["b"] + k] = 1
                j = self.solo_j[k]
            else:
                full = launch[g] == total_steps - x
                c = col_key.get((p, s, x, int(full)))
                if c is None:
                    c = col_key.get((p, s, x, 1 - int(full)))
                e = pair_key.get((n, c)) if c is not None else None
                if e is None:
                    return None
                v[off["o"] + c] = 1
                v[off["a"] + e] = 1
                j = self.e_j[e]
                if self.k_of[c] >= 0:
                    kc = off["K"] + self.k_of[c]
                    v[kc] = min(max(v[kc], launch[g]), self.col_hi[kc])
            v[off["y"] + j] = dec.y[n]
            if self.j_f[j] >= 0 and dec.y[n] == total_steps - x:
                v[off["F"] + self.j_f[j]] = 1
        return v


def usable_options(inst: Instance, table: OptionTable, p: np.ndarray, n: np.ndarray,
                   s: np.ndarray, i: np.ndarray) -> np.ndarray:
    """Mask of the group options ``(p, n, s, i)`` a user can take: some ``y`` meets the ranges
    and the deadline, the quality meets its ``min_quality`` and the pair is not below the
    similarity floor (the rule :func:`all_options` applies to the whole grid)."""
    return (table.any_y[n, s, i] & (inst.quality(p, n, table.xs[i]) >= inst.min_quality[n])
            & inst.share_allowed[p, n])


def all_options(
    inst: Instance, table: OptionTable, pair_mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every possible group option ``(p, n, s, i)`` (``i`` indexes ``table.xs``, ``i >= 1``) among
    the (public, user) pairs of ``pair_mask`` (default all)."""
    if pair_mask is None:
        pp, pn = np.divmod(np.arange(inst.n_publics * inst.n_users), inst.n_users)
    else:
        pp, pn = np.nonzero(pair_mask)
    xs = table.xs[1:]
    q = inst.quality(pp[:, None], pn[:, None], xs[None, :]) if len(pp) else np.zeros((0, len(xs)))
    ok = (q >= inst.min_quality[pn][:, None])[:, None, :] & table.any_y[pn][:, :, 1:]
    k, s, i = np.nonzero(ok)
    return pp[k], pn[k], s, i + 1


def build_compact_model(
    inst: Instance,
    table: OptionTable,
    options: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
    solo_mask: np.ndarray | None = None,
    *,
    symmetry: bool = True,
    phi_split: bool = True,
    one_per_public: bool = False,
) -> CompactModel:
    """Build the compact MILP over group ``options`` (``(p, n, s, i)`` arrays, default
    :func:`all_options`) and the solo options in ``solo_mask`` (``(N, S)``, default all
    feasible). ``symmetry`` adds valid symmetry-breaking rows (interchangeable servers and
    interchangeable members). ``phi_split`` splits columns by whether a member finishes on the
    edge (same optimum and LP bound, far less branching); without it every column has a launch
    variable ``K_c`` and admits edge-finished members (a smaller LP, used for bounds).
    ``one_per_public`` lets each public prompt open at most one group (used by the baselines,
    whose groups are fixed sets of users)."""
    N, S = inst.n_users, inst.n_servers
    sc = inst.scenario
    T = sc.total_steps
    wq, wd, we = inst.weights
    xs = table.xs
    X = len(xs)
    ys = table.ys
    if options is None:
        options = all_options(inst, table)
    o_p, o_n, o_s, o_i = (np.asarray(a, dtype=np.int64) for a in options)
    feas0 = table.feasible[:, :, 0, :].any(axis=2)
    if solo_mask is None:
        solo_mask = feas0 & (inst.solo_quality >= inst.min_quality)[:, None]
    else:
        solo_mask = np.asarray(solo_mask, dtype=bool) & feas0
    solo_n, solo_s = np.nonzero(solo_mask)
    B0 = len(solo_n)
    # y variables per (n, s, i), solo ones included (i = 0).
    j_code_all = np.concatenate([(o_n * S + o_s) * X + o_i, (solo_n * S + solo_s) * X])
    js, j_inv = np.unique(j_code_all, return_inverse=True)
    o_j, solo_j = j_inv[:len(o_n)], j_inv[len(o_n):]
    j_n, j_s, j_i = js // (S * X), (js // X) % S, js % X
    J = len(js)
    feas_j = table.feasible[j_n, j_s, j_i]
    lo_j = np.where(feas_j, ys[None, :], 10**9).min(axis=1)
    hi_j = np.where(feas_j, ys[None, :], -1).max(axis=1)
    j_x = xs[j_i]
    full_y = T - j_x
    f_ok = (full_y <= ys[-1]) & (hi_j == full_y)
    f_ok &= feas_j[np.arange(J), np.minimum(full_y, ys[-1])]
    Fn = int(f_ok.sum())
    fidx = np.cumsum(f_ok) - 1
    # Expand options by phi: phi = 1 columns may hold members that finish on the edge and pay
    # K = T - x launches; phi = 0 columns hold none and pay K = max y (a variable).
    x_o = xs[o_i]
    full_possible = (T - x_o <= ys[-1]) & (sc.device_steps_min == 0)
    has_alpha_o = inst.alpha[o_s] > 0
    if phi_split:
        make1 = full_possible
        make0 = has_alpha_o | ~full_possible
        make0 &= ~(f_ok[o_j] & (lo_j[o_j] == hi_j[o_j]))  # only the full y is feasible
    else:
        make1 = np.zeros(len(o_n), dtype=bool)
        make0 = np.ones(len(o_n), dtype=bool)
    src0 = np.flatnonzero(make0)
    e_src = np.concatenate([src0, np.flatnonzero(make1)])
    e_phi = np.concatenate([np.zeros(len(src0), dtype=np.int64),
                            np.ones(int(make1.sum()), dtype=np.int64)])
    e_p, e_n, e_s, e_i, e_j = o_p[e_src], o_n[e_src], o_s[e_src], o_i[e_src], o_j[e_src]
    E = len(e_n)
    e_q = inst.quality(e_p, e_n, xs[e_i]) if E else np.zeros(0)
    col_code = ((e_p * S + e_s) * X + e_i) * 2 + e_phi
    cols, e_c = np.unique(col_code, return_inverse=True)
    col_phi = cols % 2
    col_p, col_s, col_i = cols // (2 * S * X), (cols // (2 * X)) % S, (cols // 2) % X
    col_x = xs[col_i]
    C = len(cols)
    has_alpha = inst.alpha[col_s] > 0
    kvar = has_alpha & (col_phi == 0)
    f_link = (e_phi == 1) if phi_split else np.ones(E, dtype=bool)
    kcols = np.flatnonzero(kvar)
    Kn = len(kcols)
    k_of = np.full(C, -1)
    k_of[kcols] = np.arange(Kn)
    off = {"o": 0, "a": C, "b": C + E, "y": C + E + B0, "F": C + E + B0 + J,
           "K": C + E + B0 + J + Fn, "end": C + E + B0 + J + Fn + Kn}
    nv = off["end"]
    dev = wd * inst.device_step_s + we * inst.device_step_j
    dlc = wd * inst.downlink_s + we * inst.downlink_j
    coef_j = np.where(j_i == 0, inst.alpha[j_s] + inst.beta[j_s], inst.beta[j_s])
    x_e = xs[e_i]
    open_gpu = col_x * inst.tau_pub[col_s] + np.where(
        (col_phi == 1) & has_alpha, inst.alpha[col_s] * (T - col_x), 0.0)
    c = np.zeros(nv)
    c[off["o"]:off["a"]] = -we * inst.power_w[col_s] * open_gpu
    c[off["a"]:off["b"]] = wq * e_q - wd * x_e * inst.tau_pub[e_s] - (T - x_e) * dev[e_n]
    c[off["b"]:off["y"]] = wq * inst.solo_quality[solo_n] - T * dev[solo_n]
    c[off["y"]:off["F"]] = dev[j_n] - wd * inst.tau_one[j_s] - we * inst.power_w[j_s] * coef_j
    c[off["F"]:off["K"]] = dlc[j_n[f_ok]]
    c[off["K"]:] = -we * inst.power_w[col_s[kcols]] * inst.alpha[col_s[kcols]]
    offset = -float(dlc.sum())
    col_lo = np.zeros(nv)
    col_hi = np.ones(nv)
    integ = np.ones(nv, dtype=np.uint8)
    col_hi[off["y"]:off["F"]] = np.maximum(hi_j, 0)
    hi_c = np.zeros(C)
    if E:
        np.maximum.at(hi_c, e_c, hi_j[e_j])
    col_hi[off["K"]:] = hi_c[kcols]

    R: list[np.ndarray] = []
    K_: list[np.ndarray] = []
    V: list[np.ndarray] = []
    RL: list[np.ndarray] = []
    RH: list[np.ndarray] = []
    nr = 0

    def add(r, k, v, lo, hi) -> int:  # noqa: ANN001
        nonlocal nr
        first = nr
        lo = np.atleast_1d(np.asarray(lo, dtype=float))
        R.append(np.asarray(r, dtype=np.int64) + nr)
        K_.append(np.asarray(k, dtype=np.int64))
        V.append(np.asarray(v, dtype=float))
        RL.append(lo)
        RH.append(np.atleast_1d(np.asarray(hi, dtype=float)))
        nr += len(lo)
        return first

    inf = math.inf
    ea = off["a"] + np.arange(E)
    sb = off["b"] + np.arange(B0)
    jy = off["y"] + np.arange(J)
    ones_e = np.ones(E)
    rows: dict[str, np.ndarray] = {}
    # each user exactly one option
    rows["assign"] = add(np.concatenate([e_n, solo_n]), np.concatenate([ea, sb]), np.ones(E + B0),
        np.ones(N), np.ones(N)) + np.arange(N)
    # a_e <= o_c
    add(np.tile(np.arange(E), 2), np.concatenate([ea, off["o"] + e_c]),
        np.concatenate([ones_e, -ones_e]), np.full(E, -inf), np.zeros(E))
    # y_j <= hi_j A_j - (1 - F_j) where F exists, else y_j <= hi_j A_j ; y_j >= lo_j A_j
    sel_k = np.concatenate([ea, sb])
    sel_j = np.concatenate([e_j, solo_j])
    hi_cap = np.where(f_ok, hi_j - 1, hi_j)
    cap_sel = np.concatenate([hi_cap[e_j], hi_cap[solo_j]])
    fj = np.flatnonzero(f_ok)
    rows["yhi"] = np.arange(J) + add(np.concatenate([np.arange(J), sel_j, fj]),
        np.concatenate([jy, sel_k, off["F"] + np.arange(Fn)]),
        np.concatenate([np.ones(J), -cap_sel, -np.ones(Fn)]), np.full(J, -inf),
        np.zeros(J))
    lo_rows = np.flatnonzero(lo_j > 0)
    rows["ylo"] = np.full(J, -1)
    if len(lo_rows):
        rid = np.full(J, -1)
        rid[lo_rows] = np.arange(len(lo_rows))
        m = rid[sel_j] >= 0
        rows["ylo"][lo_rows] = np.arange(len(lo_rows)) + add(
            np.concatenate([rid[lo_rows], rid[sel_j[m]]]), np.concatenate([jy[lo_rows], sel_k[m]]),
            np.concatenate([-np.ones(len(lo_rows)), lo_j[sel_j[m]]]),
            np.full(len(lo_rows), -inf), np.zeros(len(lo_rows)))
    if Fn:
        # y_j >= hi_j F_j ; F_j <= options of j in phi = 1 columns (+ solo)
        add(np.tile(np.arange(Fn), 2), np.concatenate([off["F"] + np.arange(Fn), jy[fj]]),
            np.concatenate([hi_j[fj], -np.ones(Fn)]), np.full(Fn, -inf), np.zeros(Fn))
        e1 = np.flatnonzero(f_link & f_ok[e_j])
        s1 = np.flatnonzero(f_ok[solo_j])
        rows["flink"] = np.full(J, -1)
        rows["flink"][fj] = np.arange(Fn) + add(np.concatenate([np.arange(Fn), fidx[e_j[e1]], fidx[solo_j[s1]]]),
            np.concatenate([off["F"] + np.arange(Fn), ea[e1], sb[s1]]),
            np.concatenate([np.ones(Fn), -np.ones(len(e1)), -np.ones(len(s1))]),
            np.full(Fn, -inf), np.zeros(Fn))
    if Fn and phi_split:
        # Budget cut: a phi = 1 column on (s, x) holds at most f_max edge-finished members, where
        # f_max = floor((B_s - x tau_pub - alpha (T - x)) / (beta (T - x))). This removes LP
        # mixtures that pay the column's launches only fractionally.
        c1 = np.flatnonzero(col_phi == 1)
        keys1 = col_s[c1] * X + col_i[c1]
        fj_key = j_s[fj] * X + j_i[fj]
        for key in np.unique(keys1):
            s_k, i_k = int(key // X), int(key % X)
            x_k = int(xs[i_k])
            steps = T - x_k
            room = inst.budget_s[s_k] - x_k * inst.tau_pub[s_k] - inst.alpha[s_k] * steps
            per = inst.beta[s_k] * steps
            f_max = math.floor(room / per + 1e-9) if per > 0 else N
            f_max = int(min(max(f_max, 0), N))
            fk = np.flatnonzero(fj_key == key)
            ck = c1[keys1 == key]
            add(np.zeros(len(fk) + len(ck), dtype=int),
                np.concatenate([off["F"] + fidx[fj[fk]], off["o"] + ck]),
                np.concatenate([np.ones(len(fk)), -float(f_max) * np.ones(len(ck))]), -inf, 0.0)
    # K_c >= y_j - hi_j (1 - a_e) for phi = 0 columns with alpha > 0
    ek = np.flatnonzero(kvar[e_c])
    if len(ek):
        m = len(ek)
        hj = hi_j[e_j[ek]].astype(float)
        add(np.tile(np.arange(m), 3),
            np.concatenate([jy[e_j[ek]], ea[ek], off["K"] + k_of[e_c[ek]]]),
            np.concatenate([np.ones(m), hj, -np.ones(m)]), np.full(m, -inf), hj)
    # GPU budget per server
    gpu_k = np.concatenate([off["o"] + np.arange(C), off["K"] + np.arange(Kn), jy])
    gpu_v = np.concatenate([open_gpu, inst.alpha[col_s[kcols]], coef_j])
    gpu_s = np.concatenate([col_s, col_s[kcols], j_s])
    rows["budget"] = np.arange(S) + add(gpu_s, gpu_k, gpu_v, np.full(S, -inf), inst.budget_s)
    # deadlines: delay = x tau_pub + y tau_one + dl (1 - F) + d z
    dl_users = np.flatnonzero(np.isfinite(inst.deadline_s))
    if len(dl_users):
        rid = np.full(N, -1)
        rid[dl_users] = np.arange(len(dl_users))
        d = inst.device_step_s
        r_all = np.concatenate([e_n, solo_n, j_n, j_n[fj]])
        k_all = np.concatenate([ea, sb, jy, off["F"] + np.arange(Fn)])
        v_all = np.concatenate([
            x_e * inst.tau_pub[e_s] + (T - x_e) * d[e_n], T * d[solo_n],
            inst.tau_one[j_s] - d[j_n], -inst.downlink_s[j_n[fj]],
        ])
        m = rid[r_all] >= 0
        rows["dl"] = np.full(N, -1)
        rows["dl"][dl_users] = np.arange(len(dl_users)) + add(
            rid[r_all[m]], k_all[m], v_all[m], np.full(len(dl_users), -inf),
            inst.deadline_s[dl_users] - inst.downlink_s[dl_users])
    if sc.max_groups is not None and C:
        rows["maxg"] = np.array([add(np.zeros(C, dtype=int), off["o"] + np.arange(C), np.ones(C),
                                     -inf, sc.max_groups)])
    if one_per_public and C:
        # baselines: each public prompt opens at most one group (one server, one x)
        pubs, pr = np.unique(col_p, return_inverse=True)
        add(pr, off["o"] + np.arange(C), np.ones(C), np.full(len(pubs), -inf), np.ones(len(pubs)))
    if symmetry and E:
        # Interchangeable members (identical step tables) of one column take their edge steps
        # in decreasing order of user index: any optimum can be permuted to satisfy it.
        type_key = np.stack([inst.device_step_s, inst.device_step_j, inst.downlink_s,
                             inst.downlink_j, inst.deadline_s], axis=1)
        _, utype = np.unique(type_key, axis=0, return_inverse=True)
        utype = utype.ravel()
        order = np.lexsort((e_n, utype[e_n], e_c))
        e1, e2 = order[:-1], order[1:]
        same = (e_c[e1] == e_c[e2]) & (utype[e_n[e1]] == utype[e_n[e2]])
        e1, e2 = e1[same], e2[same]
        m = len(e1)
        if m:
            h2 = np.maximum(hi_j[e_j[e1]], hi_j[e_j[e2]]).astype(float)
            add(np.tile(np.arange(m), 4),
                np.concatenate([jy[e_j[e1]], jy[e_j[e2]], ea[e1], ea[e2]]),
                np.concatenate([np.ones(m), -np.ones(m), -h2, -h2]),
                -2 * h2, np.full(m, inf))
    if symmetry:
        # Interchangeable servers: GPU time non-increasing along each class.
        for cls in inst.servers_identical():
            for s1, s2 in zip(cls[:-1], cls[1:], strict=True):
                m1, m2 = gpu_s == s1, gpu_s == s2
                kk = np.concatenate([gpu_k[m1], gpu_k[m2]])
                vv = np.concatenate([gpu_v[m1], -gpu_v[m2]])
                add(np.zeros(len(kk), dtype=int), kk, vv, 0.0, inf)
    A = sp.csr_matrix((np.concatenate(V), (np.concatenate(R), np.concatenate(K_))), shape=(nr, nv))
    return CompactModel(
        c=c, offset=offset, A=A, row_lo=np.concatenate(RL), row_hi=np.concatenate(RH),
        col_lo=col_lo, col_hi=col_hi, integrality=integ, col_p=col_p, col_s=col_s, col_x=col_x,
        col_phi=col_phi, k_of=k_of, e_n=e_n, e_c=e_c, e_j=e_j, solo_n=solo_n, solo_s=solo_s,
        solo_j=solo_j, j_n=j_n, j_x=j_x, j_f=np.where(f_ok, fidx, -1), offsets=off, n_users=N,
        rows=rows, j_codes=js, col_codes=cols, e_src=e_src, lo_j=lo_j, hi_j=hi_j, f_ok=f_ok,
        e_q=e_q, e_phi=e_phi,
    )
