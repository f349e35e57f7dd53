"""``solve --baselines``: which published baselines to score, each within its own time budget,
with one progress line per baseline (through ``logging``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from .._errors import InputError

__all__ = ["BASELINE_NAMES", "parse_baselines", "run_selected_baselines"]

logger = logging.getLogger("his_opt.cli.baselines")

# option spelling -> the name used in the plan, the report and run_baselines
BASELINE_NAMES: dict[str, str] = {"iis": "IIS", "gfis": "GFIS", "ppgfis": "PPGFIS",
                                  "greedy": "greedy"}


def parse_baselines(text: str) -> tuple[str, ...]:
    """``"iis,gfis"`` -> ``("IIS", "GFIS")``; ``"none"`` -> ``()``; ``"all"`` -> every one.
    Case-insensitive; an unknown or repeated name is an ``InputError`` on ``--baselines``."""
    words = [w.strip().lower() for w in text.split(",")]
    if words == ["none"]:
        return ()
    if words == ["all"]:
        return tuple(BASELINE_NAMES.values())
    known = ", ".join([*BASELINE_NAMES, "all", "none"])
    out: list[str] = []
    for w in words:
        if w not in BASELINE_NAMES:
            raise InputError(f"unknown baseline {w!r}; known: {known}", field="--baselines",
                             file="<command line>")
        if BASELINE_NAMES[w] in out:
            raise InputError(f"baseline {w!r} given twice", field="--baselines",
                             file="<command line>")
        out.append(BASELINE_NAMES[w])
    return tuple(out)


def _outcome(result: Any) -> str:
    from ..report import reason_summary

    if result.plan is None:
        why = reason_summary([str(d) for d in result.diagnostics]) or "no reason given"
        return f"no plan ({result.status}): {why}"
    return f"objective {result.objective:.3f} ({result.status})"


def run_selected_baselines(
    instance: Any,
    names: Sequence[str],
    *,
    time_limit: float,
    mip_gap: float,
    random_state: int | None,
    total_s: Callable[[], float] | None = None,
    min_start_s: float = 0.2,
) -> dict[str, Any]:
    """Run the baselines ``names`` (plan spelling) on ``instance``, each within ``time_limit``
    seconds; the option table they share is built once, from their common time. ``total_s()``
    says how many
    seconds all of them may still use (default: ``len(names) * time_limit`` from the start);
    each gets an equal share of it (at least ``min_start_s`` while that lasts, so the first
    ones run when time is short), and one left under ``min_start_s`` is not started (status
    ``time_limit``). Logs one line per baseline at INFO: what it found and how long
    it took."""
    if not names:
        logger.info("baselines: none requested")
        return {}
    from ..allocation import build_option_table, run_baselines

    if total_s is None:
        end = time.perf_counter() + time_limit * len(names)

        def total_s() -> float:
            return max(end - time.perf_counter(), 0.0)
    table = build_option_table(instance) if total_s() >= min_start_s else None
    out: dict[str, Any] = {}
    for i, name in enumerate(names, 1):
        start = time.perf_counter()
        left = total_s()
        # an equal share of what is left, but the earlier ones (IIS first, the summary's
        # reference) get at least min_start_s while it lasts
        budget = min(time_limit, max(left / (len(names) - i + 1), min_start_s), left)
        if budget < min_start_s or table is None:
            budget = 0.0  # a spent budget: the baseline reports time_limit without solving
        (result,) = run_baselines(instance, random_state, time_limit=budget, mip_gap=mip_gap,
                                  names=(name,), table=table).values()
        out[name] = result
        logger.info("baseline %d/%d %s: %s in %.1f s (time limit %.1f s)", i, len(names), name,
                    _outcome(result), time.perf_counter() - start, budget)
    return out
