"""How this plan compares with each baseline, in words: why a baseline has no plan (which
constraint, which users) and how far ahead this plan is.

A ratio against a negative objective means nothing (a plan at -100 against one at -400 would
read "+75%"), so the lead is always given as a difference in objective points and as a
percentage only where the baseline's objective is positive.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

__all__ = ["baseline_line", "lead_percent", "reason_summary"]

# check_feasible's per-user lines: "user u04: quality 0.25 below min_quality 0.3"
_USER_LINE = re.compile(r"^user (?P<user>\S+): (?P<what>.*)$")
_CONSTRAINTS = (
    ("below min_quality", "min_quality not met"),
    ("exceeds deadline", "deadline missed"),
    ("edge steps", "edge steps out of range"),
    ("device steps", "device steps out of range"),
    ("min_quality", "min_quality cannot be reached"),
    ("deadline", "deadline cannot be met"),
)
_MAX_NAMED = 5


def _constraint(what: str) -> str:
    for needle, name in _CONSTRAINTS:
        if needle in what:
            return name
    return what


def reason_summary(reasons: Sequence[str]) -> str | None:
    """One line saying which constraints fail for which users, e.g. ``"min_quality not met for
    3 users (u04, u20, u37)"``; server and other lines are kept as they are. None if no reason."""
    if not reasons:
        return None
    by_constraint: dict[str, list[str]] = {}
    others: list[str] = []
    for line in reasons:
        m = _USER_LINE.match(line)
        if m:
            by_constraint.setdefault(_constraint(m["what"]), []).append(m["user"])
        elif line not in others:
            others.append(line)
    parts = []
    for name, users in by_constraint.items():
        named = ", ".join(users[:_MAX_NAMED]) + (
            f", +{len(users) - _MAX_NAMED} more" if len(users) > _MAX_NAMED else ""
        )
        noun = "user" if len(users) == 1 else "users"
        parts.append(f"{name} for {len(users)} {noun} ({named})")
    return "; ".join(parts + others)


def lead_percent(plan_objective: float, other: float | None) -> float | None:
    """``(plan - other) / other`` when ``other`` is positive, else None (no meaningful ratio)."""
    if other is None or not other > 0:
        return None
    return (plan_objective - other) / other


def baseline_line(entry: dict[str, Any]) -> str:
    """The CLI summary's text for one baseline entry of the plan document."""
    if entry.get("objective") is None:
        reason = entry.get("reason") or "no reason given"
        return f"no plan ({entry.get('status')}): {reason}"
    lead = entry.get("lead")
    text = f"{entry['objective']:.3f}"
    if lead is not None:
        text += f" (this plan {lead:+.3f} points"
        pct = entry.get("plan_vs_method")
        text += f", {pct:+.1%})" if pct is not None else ")"
    if not entry.get("feasible", True):
        text += " -- baseline plan violates constraints"
    return text
