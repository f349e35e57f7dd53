"""What each sheet shows: its columns (labels with units, formats, widths) and its rows, built from
the plan document; and the overview in plain words.

Rows are dicts keyed by plan field so tests can compare them with the plan; only the labels are
for people.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import numpy as np

from ._cells import Column
from ._compare import lead_percent

__all__ = [
    "BASELINE_COLUMNS",
    "GROUP_COLUMNS",
    "MODEL_COLUMNS",
    "OPTIONAL_USER_KEYS",
    "SERVER_COLUMNS",
    "USER_COLUMNS",
    "baseline_rows",
    "group_rows",
    "humanize",
    "model_rows",
    "overview_lines",
    "server_rows",
    "used_columns",
    "user_rows",
]

_Q = "0.0000"
USER_COLUMNS: tuple[Column, ...] = (
    Column("user_id", "User", width=9),
    Column("group_id", "Group", width=7),
    Column("server", "Server", width=9),
    Column("subject", "Subject", width=10),
    Column("prompt", "Prompt", width=44, wrap=True),
    Column("negative_prompt", "Negative prompt", width=22, wrap=True),
    Column("similarity", "Similarity to the public prompt (cosine)", "0.000", 11),
    Column("common_steps", "Common steps x", "0", 9),
    Column("edge_steps", "Edge steps y", "0", 9),
    Column("device_steps", "Device steps z", "0", 9),
    Column("finishes_on", "Finishes on", width=9),
    Column("predicted_quality", "Predicted quality (CLIP score)", _Q, 10),
    Column("min_quality", "Minimum quality (CLIP score)", _Q, 10),
    Column("delay_s", "Delay (s)", "0.00", 9),
    Column("deadline_s", "Deadline (s)", "0.00", 9),
    Column("energy_j", "Energy (J)", "#,##0", 9),
)
OPTIONAL_USER_KEYS = ("subject", "negative_prompt", "min_quality", "deadline_s")

GROUP_COLUMNS: tuple[Column, ...] = (
    Column("group_id", "Group", width=7),
    Column("server", "Server", width=9),
    Column("public_prompt", "Public prompt (common steps)", width=38, wrap=True),
    Column("size", "Users", "0", 7),
    Column("common_steps", "Common steps x", "0", 9),
    Column("mean_similarity", "Mean similarity (cosine)", "0.000", 10),
    Column("min_similarity", "Lowest similarity (cosine)", "0.000", 10),
    Column("mean_predicted_quality", "Mean predicted quality (CLIP score)", _Q, 11),
    Column("min_predicted_quality", "Lowest predicted quality (CLIP score)", _Q, 11),
    Column("mean_delay_s", "Mean delay (s)", "0.00", 9),
    Column("on_edge", "Users finishing on the edge (z = 0)", "0", 10),
    Column("seed", "Image seed", "0", 13),
    Column("members", "Members", width=40, wrap=True),
)

SERVER_COLUMNS: tuple[Column, ...] = (
    Column("name", "Server", width=12),
    Column("profile", "GPU profile", width=34, wrap=True),
    Column("profile_kind", "Profile kind", width=11),
    Column("budget_s", "GPU budget (s)", "#,##0.00", 11),
    Column("gpu_time_s", "GPU time used (s)", "#,##0.00", 11),
    Column("gpu_time_simulated_s", "GPU time, simulated schedule (s)", "#,##0.00", 12),
    Column("utilisation", "Budget used (%)", "0.0%", 10),
    Column("groups", "Shared groups", "0", 9),
    Column("users", "Users", "0", 8),
    Column("power_w", "Board power (W)", "#,##0", 9),
    Column("max_batch_images", "Largest batch (images)", "0", 10),
)

_PTS = "#,##0.000"
BASELINE_COLUMNS: tuple[Column, ...] = (
    Column("method", "Method", width=20),
    Column("has_plan", "Plan", width=9),
    Column("status", "Solver status", width=13),
    Column("objective", "Objective (points, higher is better)", _PTS, 13),
    Column("quality_term", "Quality term (points)", _PTS, 12),
    Column("delay_term", "Delay term (points)", _PTS, 12),
    Column("energy_term", "Energy term (points)", _PTS, 12),
    Column("gpu_time_s", "GPU time (s)", "#,##0.00", 10),
    Column("groups", "Shared groups", "0", 9),
    Column("lead", "This plan ahead by (points)", "+#,##0.000;-#,##0.000;0", 13),
    Column("lead_pct", "This plan ahead by (% of the method's objective)", "+0.0%;-0.0%;0%", 13,
           wrap=True),
    Column("reason", "Why no plan / notes", width=60, wrap=True),
)

MODEL_COLUMNS: tuple[Column, ...] = (
    Column("section", "Section", width=16),
    Column("key", "Parameter", width=44, wrap=True),
    Column("value", "Value", width=60, wrap=True),
)

_UNITS = {"s": "s", "hz": "Hz", "w": "W", "j": "J", "gib": "GiB", "px": "px"}
_WORDS = {"iqr": "IQR", "vae": "VAE", "gpu": "GPU", "hiqm": "HIQM", "sha256": "SHA-256",
          "r2": "R^2", "cv": "cross-validated", "psd": "PSD", "tx": "transmit", "ue": "UE"}


def _words(piece: str) -> str:
    if piece.startswith("w_"):
        return "weight of " + _words(piece[2:])
    words = [w for w in piece.split("_") if w]
    unit = ""
    if len(words) > 1 and words[-1].lower() in _UNITS:
        unit = _UNITS[words.pop().lower()]
        if len(words) > 2 and words[-1] == "per" and words[-2].lower() in _UNITS:
            words.pop()
            unit = f"{_UNITS[words.pop().lower()]}/{unit}"
    text = " ".join(_WORDS.get(w.lower(), w) for w in words)
    return f"{text} ({unit})" if unit else text


def humanize(key: str) -> str:
    """``"server_budget_s"`` -> ``"server budget (s)"``; dotted paths joined by " / "."""
    return " / ".join(p for p in map(_words, key.split(".")) if p)


def used_columns(columns: Iterable[Column], rows: list[dict[str, Any]],
                 optional: Iterable[str]) -> list[Column]:
    """``columns`` without the optional ones that are empty in every row."""
    optional = set(optional)
    return [c for c in columns
            if c.key not in optional or any(r.get(c.key) is not None for r in rows)]


def _finishes_on(u: dict[str, Any]) -> str:
    return "edge" if u["device_steps"] == 0 else "device"


def user_rows(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per user: where it runs, its split, quality, delay and energy."""
    server_of = {g["group_id"]: g["server"] for g in plan["groups"]}
    public_of = {g["group_id"]: g["public_prompt"] for g in plan["groups"]}
    rows = []
    for u in plan["users"]:
        rows.append({
            **{c.key: u.get(c.key) for c in USER_COLUMNS},
            "server": server_of[u["group_id"]],
            "similarity": u["similarity"] if public_of[u["group_id"]] is not None else None,
            "finishes_on": _finishes_on(u),
        })
    return rows


def group_rows(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per group: its public prompt, size, x and what its members get."""
    by_user = {u["user_id"]: u for u in plan["users"]}
    rows = []
    for g in plan["groups"]:
        members = [by_user[m] for m in g["members"]]
        shared = g["public_prompt"] is not None
        sims = [float(m["similarity"]) for m in members]
        quals = [float(m["predicted_quality"]) for m in members]
        rows.append({
            "group_id": g["group_id"],
            "server": g["server"],
            "public_prompt": g["public_prompt"] if shared else "(none: runs alone)",
            "size": len(members),
            "common_steps": g["common_steps"],
            "mean_similarity": float(np.mean(sims)) if shared else None,
            "min_similarity": float(np.min(sims)) if shared else None,
            "mean_predicted_quality": float(np.mean(quals)),
            "min_predicted_quality": float(np.min(quals)),
            "mean_delay_s": float(np.mean([m["delay_s"] for m in members])),
            "on_edge": sum(1 for m in members if m["device_steps"] == 0),
            "seed": g.get("seed"),
            "members": ", ".join(g["members"]),
        })
    return rows


def server_rows(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per edge server: its budget and the GPU time this plan uses."""
    return [{c.key: s.get(c.key) for c in SERVER_COLUMNS} for s in plan.get("servers", [])]


def _reason_text(b: dict[str, Any]) -> str | None:
    reason = b.get("reason")
    reasons = b.get("reasons") or []
    notes = b.get("notes") or []
    lines = []
    if reason:
        lines.append(reason)
    if len(reasons) > 1 or (reasons and reasons[0] != reason):
        shown = reasons[:12]
        lines.append("; ".join(shown) + (f"; +{len(reasons) - 12} more" if len(reasons) > 12
                                         else ""))
    lines.extend(notes)
    return "\n".join(lines) if lines else None


def baseline_rows(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """This plan, then one row per baseline; a baseline without a plan says why."""
    totals, status = plan.get("totals", {}), plan.get("status", {})
    obj = totals.get("objective")
    rows = [{
        "method": "his-opt (this plan)",
        "has_plan": "plan",
        "status": status.get("status"),
        **{k: totals.get(k) for k in ("objective", "quality_term", "delay_term", "energy_term",
                                      "gpu_time_s")},
        "groups": totals.get("shared_groups"),
        "reason": "; ".join(status.get("violations") or []) or None,
    }]
    for b in plan.get("baselines", []):
        has = b.get("objective") is not None
        row = {k: b.get(k) for k in ("status", "objective", "quality_term", "delay_term",
                                     "energy_term", "gpu_time_s", "groups")}
        row |= {"method": b["name"], "has_plan": "plan" if has else "no plan",
                "reason": _reason_text(b)}
        if has and obj is not None:
            row["lead"] = obj - b["objective"]
            pct = lead_percent(obj, b["objective"])
            row["lead_pct"] = pct if pct is not None else "n/a (objective \u2264 0)"
        if has and not b.get("feasible", True):
            row["has_plan"] = "breaks limits"
        rows.append(row)
    return rows


def _flatten(prefix: str, obj: Any) -> Iterable[tuple[str, Any]]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _flatten(f"{prefix}.{k}" if prefix else str(k), v)
    elif isinstance(obj, list) and any(isinstance(v, (dict, list)) for v in obj):
        for i, v in enumerate(obj):
            yield from _flatten(f"{prefix}.{i + 1}", v)
    elif isinstance(obj, list):
        yield prefix, ", ".join(f"{v:.6g}" if isinstance(v, float) else str(v) for v in obj)
    else:
        yield prefix, obj


def model_rows(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """HIQM, GPU profiles and scenario as (section, parameter, value) rows."""
    prov = plan.get("provenance", {})
    rows: list[tuple[str, str, Any]] = []
    hiqm = prov.get("hiqm", {})
    model = hiqm.get("model", {})
    for key in ("file", "sha256", "variant"):
        if key in hiqm:
            rows.append(("quality model", key, hiqm[key]))
    for key in ("form", "quality_metric", "total_steps", "similarity_range", "extrapolation",
                "params", "provenance"):
        if key in model:
            rows.extend(("quality model", k, v) for k, v in _flatten(key, model[key]))
    for key in ("model_min_r2", "model_min_r2_cv"):
        if key in model.get("metrics", {}):
            rows.append(("quality model", f"fit {key}", model["metrics"][key]))
    for srv in prov.get("servers", []):
        name = srv.get("name", "?")
        rows.extend((f"server {name}", k, v) for k, v in _flatten("", srv) if k != "name")
    rows.extend(("scenario", k, v) for k, v in _flatten("", plan.get("scenario", {})))
    sim = prov.get("similarity_model")
    if sim is not None:
        rows.append(("similarity", "model", sim))
    return [{"section": s, "key": humanize(k), "value": _model_value(v)} for s, k, v in rows]


def _model_value(v: Any) -> Any:
    """Values of the Model sheet as text (left-aligned, six significant digits for floats)."""
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, int):
        return str(v)
    return v if isinstance(v, str) else json.dumps(v)


def _status_words(status: dict[str, Any]) -> str:
    st, gap, bound = status.get("status"), status.get("gap"), status.get("bound")
    if not status.get("feasible", True):
        return f"{st}: THE PLAN BREAKS A LIMIT: " + "; ".join(status.get("violations") or [])
    if st == "optimal":
        return (f"optimal: no plan can score higher (gap {gap:.3%} to the proven bound)."
                if gap is not None else "optimal.")
    if gap is not None and bound is not None:
        return (f"{st}: a good plan, not proven best: it is within {gap:.2%} of the best "
                f"possible objective (bound {bound:,.3f}).")
    return f"{st}: the best plan found in the time limit; no bound on how far from the best."


def overview_lines(plan: dict[str, Any]) -> list[tuple[str, str]]:
    """(topic, sentence) pairs for the Overview sheet."""
    t, st = plan.get("totals", {}), plan.get("status", {})
    users, groups = plan["users"], plan["groups"]
    n = len(users)
    shared = sorted((g for g in groups if g["public_prompt"] is not None),
                    key=lambda g: -len(g["members"]))
    solo = len(groups) - len(shared)
    sizes = ", ".join(str(len(g["members"])) for g in shared[:12])
    more = f", ... ({len(shared) - 12} more)" if len(shared) > 12 else ""
    on_edge = sum(1 for u in users if u["device_steps"] == 0)
    lines = [
        ("Plan status", _status_words(st)),
        ("Groups", f"{len(shared)} groups share their first steps (group sizes {sizes}{more} "
                   f"users); {solo} users share nothing and run alone."
         if shared else f"No group shares steps; all {n} users run alone."),
        ("Where users finish", f"{on_edge} of {n} users finish on the edge server (z = 0, the "
                               f"image is sent to them); {n - on_edge} finish the last steps "
                               "on their own devices (z > 0, the latent is sent)."),
    ]
    for s in plan.get("servers", []):
        used, budget = s.get("gpu_time_s"), s.get("budget_s")
        pct = f" ({used / budget:.1%})" if used is not None and budget else ""
        lines.append((f"GPU time on {s['name']}",
                      f"{used:,.2f} s of its {budget:,.2f} s budget{pct}, "
                      f"{s.get('groups', 0)} groups and {s.get('users', 0)} users."))
    saved, frac = t.get("gpu_time_saved_by_sharing_s"), t.get("gpu_time_saved_by_sharing_fraction")
    if saved is not None and t.get("gpu_time_unshared_s") is not None:
        lines.append(("What sharing saved",
                      f"{saved:,.2f} s of GPU time ({frac:.1%}): the same edge steps run "
                      f"unshared would take {t['gpu_time_unshared_s']:,.2f} s."))
    if t.get("mean_quality") is not None:
        lines.append(("Quality and delay",
                      f"predicted quality (CLIP score) {t['mean_quality']:.4f} on average, "
                      f"{t['min_quality']:.4f} at worst; delay {t['mean_delay_s']:.2f} s on "
                      f"average, {t['max_delay_s']:.2f} s at worst."))
    lines.append(("Objective",
                  f"{t['objective']:,.3f} points = quality {t['quality_term']:,.3f} - delay "
                  f"{t['delay_term']:,.3f} - energy {t['energy_term']:,.3f} (higher is better)."))
    for b in plan.get("baselines", []):
        lines.append((f"Against {b['name']}", _baseline_words(b, t["objective"])))
    return lines


def _baseline_words(b: dict[str, Any], objective: float) -> str:
    if b.get("objective") is None:
        return f"{b['name']} finds no plan: {b.get('reason') or 'no reason given'}."
    lead = objective - b["objective"]
    pct = lead_percent(objective, b["objective"])
    rel = f" ({pct:+.1%})" if pct is not None else ""
    word = "ahead of" if lead >= 0 else "behind"
    text = (f"{b['name']} scores {b['objective']:,.3f}; this plan is {abs(lead):,.3f} points "
            f"{word} it{rel}.")
    if not b.get("feasible", True):
        text += f" The {b['name']} plan breaks a limit: {b.get('reason')}."
    return text
