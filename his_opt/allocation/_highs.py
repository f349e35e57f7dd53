"""A thin HiGHS (``highspy``) call for sparse maximisation MILPs and LPs, with explicit status."""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = ["HighsOutcome", "solve_highs"]


@contextlib.contextmanager
def _quiet_c_stdout() -> Any:
    """Silence C-level stdout: HiGHS prints its banner when the first ``Highs()`` is built,
    before ``output_flag`` can be set, and it would land in the CLI's summary."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no real stdout (embedded interpreters)
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


@dataclass
class HighsOutcome:
    """``kind``: optimal / time_limit / infeasible / other. ``x`` is the best solution (or None);
    ``bound`` the best bound (LP: the optimum); ``row_dual`` LP duals of the maximisation."""

    kind: str
    x: np.ndarray | None
    objective: float
    bound: float
    gap: float
    seconds: float
    nodes: int = 0
    message: str = ""
    row_dual: np.ndarray | None = None
    col_dual: np.ndarray | None = None


def solve_highs(
    c: np.ndarray,
    A: sp.spmatrix,
    row_lo: np.ndarray,
    row_hi: np.ndarray,
    col_lo: np.ndarray,
    col_hi: np.ndarray,
    integrality: np.ndarray | None,
    *,
    time_limit: float,
    mip_gap: float = 1e-6,
    offset: float = 0.0,
    start: np.ndarray | None = None,
    threads: int | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
    verbose: bool = False,
    options: dict[str, Any] | None = None,
) -> HighsOutcome:
    """Maximise ``c @ v + offset`` s.t. ``row_lo <= A v <= row_hi``, bounds; ``integrality`` None
    solves the LP."""
    import highspy

    t0 = time.perf_counter()
    with _quiet_c_stdout():
        h = highspy.Highs()
    h.setOptionValue("output_flag", bool(verbose))
    h.setOptionValue("time_limit", float(max(time_limit, 0.01)))
    h.setOptionValue("mip_rel_gap", float(mip_gap))
    h.setOptionValue("mip_abs_gap", 1e-9)
    if threads is not None:
        h.setOptionValue("threads", int(threads))
    for key, value in (options or {}).items():
        h.setOptionValue(key, value)
    inf = highspy.kHighsInf
    lp = highspy.HighsLp()
    nv = len(c)
    lp.num_col_ = nv
    lp.num_row_ = A.shape[0]
    lp.col_cost_ = -np.asarray(c, dtype=float)
    lp.offset_ = -float(offset)
    lp.col_lower_ = np.where(np.isneginf(col_lo), -inf, col_lo).astype(float)
    lp.col_upper_ = np.where(np.isposinf(col_hi), inf, col_hi).astype(float)
    lp.row_lower_ = np.where(np.isneginf(row_lo), -inf, row_lo).astype(float)
    lp.row_upper_ = np.where(np.isposinf(row_hi), inf, row_hi).astype(float)
    csc = sp.csc_matrix(A)
    csc.sort_indices()
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = csc.indptr.astype(np.int32)
    lp.a_matrix_.index_ = csc.indices.astype(np.int32)
    lp.a_matrix_.value_ = csc.data.astype(float)
    mip = integrality is not None and bool(np.any(integrality))
    if mip:
        kint, kcont = highspy.HighsVarType.kInteger, highspy.HighsVarType.kContinuous
        lp.integrality_ = [kint if k else kcont for k in integrality]
    h.passModel(lp)
    if start is not None and mip:
        sol = highspy.HighsSolution()
        sol.col_value = list(np.asarray(start, dtype=float))
        sol.value_valid = True
        h.setSolution(sol)
    if progress is not None and mip:

        def on_improve(e: Any) -> None:
            d = e.data_out
            progress({"event": "incumbent", "objective": -d.objective_function_value,
                      "bound": -d.mip_dual_bound, "seconds": time.perf_counter() - t0})

        h.cbMipImprovingSolution.subscribe(on_improve)
    h.run()
    status = h.getModelStatus()
    info = h.getInfo()
    M = highspy.HighsModelStatus
    secs = time.perf_counter() - t0
    msg = h.modelStatusToString(status)
    if status in (M.kInfeasible, M.kUnboundedOrInfeasible):
        return HighsOutcome("infeasible", None, -math.inf, -math.inf, math.inf, secs, 0, msg)
    has_sol = info.primal_solution_status == highspy.kSolutionStatusFeasible
    sol = h.getSolution()
    xv = np.asarray(sol.col_value) if has_sol else None
    obj = -info.objective_function_value if has_sol else -math.inf
    if not mip:
        kind = "optimal" if status in (M.kOptimal, M.kUnknown) and has_sol else "other"
        duals = -np.asarray(sol.row_dual) if sol.dual_valid else None
        rc = -np.asarray(sol.col_dual) if sol.dual_valid else None
        return HighsOutcome(kind, xv, obj, obj if kind == "optimal" else math.inf, 0.0, secs,
                            0, msg, duals, rc)
    bound = -info.mip_dual_bound
    if status == M.kOptimal:
        kind = "optimal"
    elif status in (M.kTimeLimit, M.kInterrupt, M.kSolutionLimit, M.kIterationLimit):
        kind = "time_limit"
    else:
        kind = "other"
    gap = _gap(obj, bound)
    return HighsOutcome(kind, xv, obj, bound, gap, secs, int(info.mip_node_count), msg)


def _gap(obj: float, bound: float) -> float:
    if not (math.isfinite(obj) and math.isfinite(bound)):
        return math.inf
    return max(bound - obj, 0.0) / max(abs(obj), 1e-9)
