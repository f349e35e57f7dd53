"""The Excel report: sheets Summary, Groups, Users, Servers and Model, built from the plan document.

Every figure in the workbook is read from the plan document that is also written as JSON, so the
two cannot disagree. The workbook is written through pandas' ``ExcelWriter(engine="openpyxl")``
to a temporary file that is renamed onto the target only when complete.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._atomic import atomic_path

__all__ = [
    "SHEETS",
    "quality_curves",
    "report_tables",
    "write_excel_report",
    "write_workbook",
]

SHEETS: tuple[str, ...] = ("Summary", "Groups", "Users", "Servers", "Model")
_MAX_CURVES = 10
_MAX_WIDTH = 60

# Number formats by column name (tables) or by item name (key/value rows).
_FORMATS: dict[str, str] = {
    "similarity": "0.000",
    "mean_similarity": "0.000",
    "min_similarity": "0.000",
    "predicted_quality": "0.0000",
    "mean_predicted_quality": "0.0000",
    "min_predicted_quality": "0.0000",
    "min_quality": "0.0000",
    "delay_s": "0.000",
    "mean_delay_s": "0.000",
    "max_delay_s": "0.000",
    "deadline_s": "0.000",
    "energy_j": "#,##0.000",
    "budget_s": "#,##0.000",
    "gpu_time_s": "#,##0.000",
    "gpu_time_simulated_s": "#,##0.000",
    "utilisation": "0.0%",
    "power_w": "#,##0.0",
    "objective": "#,##0.000",
    "quality_term": "#,##0.000",
    "delay_term": "#,##0.000",
    "energy_term": "#,##0.000",
    "plan_vs_method": "0.0%",
    "gap": "0.00%",
    "gpu_time_saved_by_sharing_fraction": "0.0%",
    "gpu_time_iis_s": "#,##0.000",
    "gpu_time_saved_vs_iis_s": "#,##0.000",
    "gpu_time_unshared_s": "#,##0.000",
    "gpu_time_saved_by_sharing_s": "#,##0.000",
    "gpu_budget_s": "#,##0.000",
    "sum_quality": "0.0000",
    "mean_quality": "0.0000",
    "sum_delay_s": "#,##0.000",
    "solve_time_s": "0.00",
    "bound": "#,##0.000",
    "common_steps": "0",
    "edge_steps": "0",
    "device_steps": "0",
    "size": "0",
    "groups": "0",
    "users": "0",
}


def _num(v: Any) -> float:
    return math.nan if v is None else float(v)


def report_tables(plan: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """The data tables of each sheet (without formatting), as DataFrames keyed by table name.

    ``summary`` (item/value), ``baselines``, ``groups``, ``users``, ``servers`` and ``model``
    (section/key/value). Tests compare these with the plan document and with the workbook.
    """
    users = plan["users"]
    by_user = {u["user_id"]: u for u in users}
    server_of = {g["group_id"]: g["server"] for g in plan["groups"]}
    group_rows = []
    for g in plan["groups"]:
        members = [by_user[m] for m in g["members"]]
        sims = [_num(m["similarity"]) for m in members]
        quals = [_num(m["predicted_quality"]) for m in members]
        group_rows.append(
            {
                "group_id": g["group_id"],
                "server": g["server"],
                "public_prompt": g["public_prompt"],
                "common_steps": g["common_steps"],
                "size": len(members),
                "mean_similarity": float(np.mean(sims)) if g["public_prompt"] is not None else None,
                "min_similarity": float(np.min(sims)) if g["public_prompt"] is not None else None,
                "mean_predicted_quality": float(np.mean(quals)),
                "min_predicted_quality": float(np.min(quals)),
                "mean_delay_s": float(np.mean([m["delay_s"] for m in members])),
                "seed": g.get("seed"),
                "members": ", ".join(g["members"]),
            }
        )
    user_rows = []
    for u in users:
        user_rows.append(
            {
                "user_id": u["user_id"],
                "group_id": u["group_id"],
                "server": server_of[u["group_id"]],
                "subject": u.get("subject"),
                "prompt": u["prompt"],
                "negative_prompt": u.get("negative_prompt"),
                "similarity": u["similarity"],
                "common_steps": u["common_steps"],
                "edge_steps": u["edge_steps"],
                "device_steps": u["device_steps"],
                "predicted_quality": u["predicted_quality"],
                "min_quality": u.get("min_quality"),
                "delay_s": u["delay_s"],
                "deadline_s": u.get("deadline_s"),
                "energy_j": u["energy_j"],
            }
        )
    server_cols = [
        "name",
        "profile",
        "profile_kind",
        "budget_s",
        "gpu_time_s",
        "gpu_time_simulated_s",
        "utilisation",
        "groups",
        "users",
        "power_w",
    ]
    servers = pd.DataFrame(
        [{c: s.get(c) for c in server_cols} for s in plan.get("servers", [])], columns=server_cols
    )
    totals, status = plan.get("totals", {}), plan.get("status", {})
    summary_items = [
        ("status", status.get("status")),
        ("objective", totals.get("objective")),
        ("bound", status.get("bound")),
        ("gap", status.get("gap")),
        ("bound_scope", status.get("bound_scope")),
        ("solve_time_s", status.get("solve_time_s")),
        ("quality_term", totals.get("quality_term")),
        ("delay_term", totals.get("delay_term")),
        ("energy_term", totals.get("energy_term")),
        ("sum_quality", totals.get("sum_quality")),
        ("mean_quality", totals.get("mean_quality")),
        ("min_quality", totals.get("min_quality")),
        ("sum_delay_s", totals.get("sum_delay_s")),
        ("mean_delay_s", totals.get("mean_delay_s")),
        ("max_delay_s", totals.get("max_delay_s")),
        ("energy_j", totals.get("energy_j")),
        ("gpu_time_s", totals.get("gpu_time_s")),
        ("gpu_time_simulated_s", totals.get("gpu_time_simulated_s")),
        ("gpu_budget_s", totals.get("gpu_budget_s")),
        ("gpu_time_iis_s", totals.get("gpu_time_iis_s")),
        ("gpu_time_saved_vs_iis_s", totals.get("gpu_time_saved_vs_iis_s")),
        ("gpu_time_unshared_s", totals.get("gpu_time_unshared_s")),
        ("gpu_time_saved_by_sharing_s", totals.get("gpu_time_saved_by_sharing_s")),
        ("gpu_time_saved_by_sharing_fraction", totals.get("gpu_time_saved_by_sharing_fraction")),
        ("users", totals.get("users")),
        ("groups", totals.get("groups")),
        ("shared_groups", totals.get("shared_groups")),
        ("solo_users", totals.get("solo_users")),
        ("seed", plan.get("provenance", {}).get("seed")),
        ("his_opt_version", plan.get("provenance", {}).get("his_opt_version")),
    ]
    summary = pd.DataFrame(summary_items, columns=["item", "value"])
    base_cols = [
        "method",
        "objective",
        "quality_term",
        "delay_term",
        "energy_term",
        "gpu_time_s",
        "groups",
        "plan_vs_method",
        "feasible",
        "status",
    ]
    base_rows = [
        {
            "method": "his-opt (this plan)",
            "objective": totals.get("objective"),
            "quality_term": totals.get("quality_term"),
            "delay_term": totals.get("delay_term"),
            "energy_term": totals.get("energy_term"),
            "gpu_time_s": totals.get("gpu_time_s"),
            "groups": totals.get("shared_groups"),
            "plan_vs_method": 0.0,
            "feasible": "yes" if status.get("feasible") else "NO",
            "status": status.get("status"),
        }
    ]
    for b in plan.get("baselines", []):
        row = {c: b.get(c) for c in base_cols} | {"method": b["name"]}
        row["feasible"] = "yes" if b.get("feasible") else "NO"
        base_rows.append(row)
    baselines = pd.DataFrame(base_rows, columns=base_cols)
    return {
        "summary": summary,
        "baselines": baselines,
        "groups": pd.DataFrame(group_rows, columns=list(group_rows[0]) if group_rows else None),
        "users": pd.DataFrame(user_rows),
        "servers": servers,
        "model": pd.DataFrame(_model_items(plan), columns=["section", "key", "value"]),
    }


def _flatten(prefix: str, obj: Any) -> Iterable[tuple[str, Any]]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _flatten(f"{prefix}.{k}" if prefix else str(k), v)
    elif isinstance(obj, list) and any(isinstance(v, (dict, list)) for v in obj):
        for i, v in enumerate(obj):
            yield from _flatten(f"{prefix}[{i}]", v)
    elif isinstance(obj, list):
        yield prefix, json.dumps(obj)
    else:
        yield prefix, obj


def _model_items(plan: dict[str, Any]) -> list[tuple[str, str, Any]]:
    prov = plan.get("provenance", {})
    rows: list[tuple[str, str, Any]] = []
    hiqm = prov.get("hiqm", {})
    model = hiqm.get("model", {})
    for key in ("file", "sha256", "variant"):
        if key in hiqm:
            rows.append(("hiqm", key, hiqm[key]))
    for key in (
        "form",
        "quality_metric",
        "total_steps",
        "similarity_range",
        "extrapolation",
        "params",
        "provenance",
    ):
        if key in model:
            rows.extend(("hiqm", k, v) for k, v in _flatten(key, model[key]))
    for key in ("model_min_r2", "model_min_r2_cv"):
        if key in model.get("metrics", {}):
            rows.append(("hiqm", f"metrics.{key}", model["metrics"][key]))
    for srv in prov.get("servers", []):
        rows.extend(("server profile", k, v) for k, v in _flatten(srv.get("name", "?"), srv))
    rows.extend(("scenario", k, v) for k, v in _flatten("", plan.get("scenario", {})))
    sim = prov.get("similarity_model")
    if sim is not None:
        rows.append(("similarity", "model", sim))
    return [
        (s, k, v if isinstance(v, (int, float, str, type(None))) else json.dumps(v))
        for s, k, v in rows
    ]


def quality_curves(plan: dict[str, Any], hiqm: Any) -> pd.DataFrame:
    """HIQM quality against common steps ``0 .. common_steps_max`` for the plan's shared groups.

    One column per shared group (the ten largest if more), evaluated at the mean similarity of
    its members to its public prompt, named ``"g1 (s=0.62, x=9)"``.
    """
    sc = plan.get("scenario", {})
    x_max = int(sc.get("common_steps_max", 13))
    xs = np.arange(0, x_max + 1)
    data: dict[str, Any] = {"common_steps": xs}
    users = {u["user_id"]: u for u in plan["users"]}
    shared = [g for g in plan["groups"] if g["public_prompt"] is not None]
    shared.sort(key=lambda g: -len(g["members"]))
    for g in shared[:_MAX_CURVES]:
        s = float(np.mean([users[m]["similarity"] for m in g["members"]]))
        label = f"{g['group_id']} (s={s:.2f}, x={g['common_steps']})"
        data[label] = np.asarray(hiqm.predict(s, xs), dtype=float)
    if len(data) == 1:  # no shared group: show the model at its similarity range's ends
        lo, hi = getattr(hiqm, "similarity_range", (0.2, 0.7))
        for s in (lo, hi):
            data[f"s={s:.2f}"] = np.asarray(hiqm.predict(s, xs), dtype=float)
    return pd.DataFrame(data)


def write_excel_report(path: str | Path, plan: dict[str, Any], hiqm: Any) -> None:
    """Write the report workbook for ``plan`` (the plan document) atomically to ``path``."""
    with atomic_path(path) as tmp:
        write_workbook(tmp, plan, hiqm)


def write_workbook(path: str | Path, plan: dict[str, Any], hiqm: Any) -> None:
    """Write the workbook to ``path`` directly (callers provide atomicity)."""
    from openpyxl.chart import BarChart, LineChart, Reference

    tables = report_tables(plan)
    curves = quality_curves(plan, hiqm)
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        tables["summary"].to_excel(writer, sheet_name="Summary", index=False)
        base_col = tables["summary"].shape[1] + 1  # one empty column between the tables
        tables["baselines"].to_excel(writer, sheet_name="Summary", index=False, startcol=base_col)
        tables["groups"].to_excel(writer, sheet_name="Groups", index=False)
        tables["users"].to_excel(writer, sheet_name="Users", index=False)
        tables["servers"].to_excel(writer, sheet_name="Servers", index=False)
        tables["model"].to_excel(writer, sheet_name="Model", index=False)
        curve_col = tables["model"].shape[1] + 1
        curves.to_excel(writer, sheet_name="Model", index=False, startcol=curve_col)

        book = writer.book
        summary = book["Summary"]
        _format_table(summary, tables["summary"], 1, item_formats=True)
        _format_table(summary, tables["baselines"], base_col + 1)
        n_base = len(tables["baselines"])
        summary.auto_filter.ref = _ref(
            base_col + 1, 1, base_col + tables["baselines"].shape[1], n_base + 1
        )
        bar = BarChart()
        bar.type = "col"
        bar.title = "Objective: this plan against the baselines"
        bar.y_axis.title = "objective (higher is better)"
        bar.x_axis.title = "method"
        bar.add_data(
            Reference(summary, min_col=base_col + 2, min_row=1, max_row=n_base + 1),
            titles_from_data=True,
        )
        bar.set_categories(Reference(summary, min_col=base_col + 1, min_row=2, max_row=n_base + 1))
        bar.legend = None
        bar.height, bar.width = 8, 16
        summary.add_chart(bar, f"{_col(base_col + 1)}{n_base + 4}")

        for name, key in (("Groups", "groups"), ("Users", "users"), ("Servers", "servers")):
            ws = book[name]
            _format_table(ws, tables[key], 1)
            ws.auto_filter.ref = _ref(1, 1, max(tables[key].shape[1], 1), len(tables[key]) + 1)

        model = book["Model"]
        _format_table(model, tables["model"], 1)
        model.auto_filter.ref = _ref(1, 1, 3, len(tables["model"]) + 1)
        _format_table(model, curves, curve_col + 1, default_format="0.0000")
        line = LineChart()
        line.title = "Predicted quality against common steps (HIQM)"
        line.y_axis.title = str(
            plan.get("provenance", {})
            .get("hiqm", {})
            .get("model", {})
            .get("quality_metric", "quality")
        )
        line.x_axis.title = "common steps x"
        n_x = len(curves)
        line.add_data(
            Reference(
                model,
                min_col=curve_col + 2,
                max_col=curve_col + curves.shape[1],
                min_row=1,
                max_row=n_x + 1,
            ),
            titles_from_data=True,
        )
        line.set_categories(Reference(model, min_col=curve_col + 1, min_row=2, max_row=n_x + 1))
        line.height, line.width = 9, 18
        model.add_chart(line, f"{_col(curve_col + 1)}{n_x + 4}")
        for ws in book.worksheets:
            ws.freeze_panes = "A2"


def _col(index: int) -> str:
    from openpyxl.utils import get_column_letter

    return get_column_letter(index)


def _ref(c0: int, r0: int, c1: int, r1: int) -> str:
    return f"{_col(c0)}{r0}:{_col(c1)}{r1}"


def _format_table(
    ws: Any,
    df: pd.DataFrame,
    first_col: int,
    *,
    item_formats: bool = False,
    default_format: str | None = None,
) -> None:
    """Bold header, number formats by column (or by item for key/value tables), widths."""
    from openpyxl.styles import Alignment, Font, PatternFill

    header_font = Font(bold=True)
    header_fill = PatternFill("solid", fgColor="DDEBF7")
    for j, name in enumerate(df.columns):
        col = first_col + j
        cell = ws.cell(row=1, column=col)
        cell.font, cell.fill = header_font, header_fill
        fmt = _FORMATS.get(str(name), default_format if j > 0 else None)
        if str(name) == "common_steps":
            fmt = "0"
        width = len(str(name))
        for i in range(len(df)):
            c = ws.cell(row=i + 2, column=col)
            if item_formats and j == 1:
                item_fmt = _FORMATS.get(str(df.iloc[i, 0]))
                if item_fmt and isinstance(c.value, (int, float)):
                    c.number_format = item_fmt
            elif fmt and isinstance(c.value, (int, float)):
                c.number_format = fmt
            text = c.value
            if isinstance(text, float):
                text = f"{text:.4g}"
            width = max(width, len(str(text)) if text is not None else 0)
            if str(name) in ("prompt", "public_prompt", "negative_prompt", "members", "value"):
                c.alignment = Alignment(wrap_text=False, vertical="top")
        ws.column_dimensions[_col(col)].width = min(max(width + 2, 8), _MAX_WIDTH)
