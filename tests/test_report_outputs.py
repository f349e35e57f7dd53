"""The plan document's schema check and the Excel report, on a small hand-written plan."""

from __future__ import annotations

import copy
import json

import numpy as np
import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from his_opt._errors import InputError
from his_opt.hiqm import load_default_hiqm
from his_opt.report import (
    PLAN_JSON_SCHEMA,
    SHEET_COLUMNS,
    SHEETS,
    quality_curves,
    read_report_table,
    report_tables,
    validate_plan,
    write_excel_report,
    write_plan_json,
    write_reports,
)
from his_opt.report._charts import axis_range
from his_opt.scenario import Scenario


def _user(uid, gid, sim, x, y, q, prompt="p"):
    return {
        "user_id": uid,
        "prompt": f"{prompt} {uid}",
        "negative_prompt": None,
        "group_id": gid,
        "similarity": sim,
        "common_steps": x,
        "edge_steps": y,
        "device_steps": 28 - x - y,
        "predicted_quality": q,
        "delay_s": 10.0 + y,
        "energy_j": 100.0 + y,
        "subject": "cat",
        "deadline_s": None,
        "min_quality": None,
    }


@pytest.fixture
def plan() -> dict:
    return {
        "schema": "his-opt/plan/1",
        "scenario": Scenario().to_dict(),
        "groups": [
            {
                "group_id": "g1",
                "server": "es1",
                "public_prompt": "a cat",
                "common_steps": 9,
                "seed": 11,
                "members": ["u1", "u2"],
            },
            {
                "group_id": "g2",
                "server": "es1",
                "public_prompt": None,
                "common_steps": 0,
                "seed": 12,
                "members": ["u3"],
            },
        ],
        "users": [
            _user("u1", "g1", 0.6, 9, 10, 0.29),
            _user("u2", "g1", 0.5, 9, 12, 0.28),
            _user("u3", "g2", 1.0, 0, 16, 0.32),
        ],
        "servers": [
            {
                "name": "es1",
                "profile": "sd3-medium-1024-fp16-a100-estimate",
                "profile_kind": "estimate",
                "budget_s": 60.0,
                "gpu_time_s": 12.5,
                "gpu_time_simulated_s": 12.0,
                "utilisation": 12.5 / 60,
                "groups": 1,
                "users": 3,
                "power_w": 380.0,
            }
        ],
        "totals": {
            "objective": 5.0,
            "quality_term": 89.0,
            "delay_term": 68.0,
            "energy_term": 16.0,
            "sum_quality": 0.89,
            "sum_delay_s": 68.0,
            "energy_j": 1600.0,
            "gpu_time_s": 12.5,
            "users": 3,
            "groups": 2,
            "shared_groups": 1,
            "solo_users": 1,
            "gpu_time_iis_s": 14.0,
        },
        "status": {
            "status": "optimal",
            "objective": 5.0,
            "bound": 5.0,
            "gap": 0.0,
            "feasible": True,
            "violations": [],
        },
        "baselines": [
            {
                "name": "IIS",
                "objective": 2.0,
                "quality_term": 96.0,
                "delay_term": 78.0,
                "energy_term": 16.0,
                "gpu_time_s": 14.0,
                "groups": 0,
                "plan_vs_method": 1.5,
            },
            {"name": "GFIS", "objective": 4.0, "plan_vs_method": 0.25},
        ],
        "provenance": {
            "his_opt_version": "0.1.0",
            "inputs": {"users": {"file": "u.csv"}},
            "hiqm": {"file": "sim_npi.json", "model": load_default_hiqm("sim_npi").to_dict()},
            "seed": 0,
            "command": ["solve.py", "u.csv"],
        },
    }


@pytest.fixture(scope="module")
def hiqm():
    return load_default_hiqm("sim_npi")


def test_valid_plan_passes_both_checks(plan):
    validate_plan(plan)
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(plan, PLAN_JSON_SCHEMA)


@pytest.mark.parametrize(
    ("mutate", "field", "words"),
    [
        (lambda d: d["users"][1].update(device_steps=5), "users.device_steps", "total_steps"),
        (lambda d: d["groups"][0]["members"].remove("u2"), "users.group_id", "not listed"),
        (lambda d: d["groups"][1].update(common_steps=3), "groups.public_prompt", "one member"),
        (lambda d: d["users"][0].update(similarity="high"), "users.similarity", "number"),
        (lambda d: d["users"][0].update(edge_steps=-1), "users.edge_steps", "minimum of 0"),
        (lambda d: d["users"][2].update(user_id="u1"), "users.user_id", "duplicate"),
        (lambda d: d.pop("totals"), "totals", "missing"),
        (lambda d: d.update(schema="his-opt/plan/0"), "schema", "unknown schema"),
        (lambda d: d["groups"][0].update(common_steps=28), "groups.common_steps", "exceeds"),
    ],
)
def test_invalid_plans_are_rejected(plan, mutate, field, words):
    bad = copy.deepcopy(plan)
    mutate(bad)
    with pytest.raises(InputError) as info:
        validate_plan(bad, source="p.json")
    assert info.value.field == field and words in str(info.value)
    jsonschema = pytest.importorskip("jsonschema")
    if field not in (
        "users.group_id",
        "groups.public_prompt",
        "users.device_steps",
        "users.user_id",
        "groups.common_steps",
    ):  # invariants beyond a schema
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, PLAN_JSON_SCHEMA)


def test_plan_json_is_strict_and_atomic(plan, tmp_path):
    path = tmp_path / "p.json"
    write_plan_json(path, plan)
    assert json.loads(path.read_text()) == plan
    bad = copy.deepcopy(plan)
    bad["totals"]["objective"] = float("nan")
    with pytest.raises(ValueError):
        write_plan_json(path, bad)
    assert json.loads(path.read_text()) == plan  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["p.json"]  # no temporary left behind


def test_workbook_sheets_agree_with_plan(plan, hiqm, tmp_path):
    path = tmp_path / "r.xlsx"
    write_excel_report(path, plan, hiqm)
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == list(SHEETS)
    for name in SHEET_COLUMNS:
        ws = wb[name]
        assert ws.freeze_panes == "B2" and ws.auto_filter.ref and ws["A1"].font.b
        assert ws.print_title_rows == "$1:$1"  # the header row repeats on every printed page
    for ws in wb.worksheets:
        assert ws.page_setup.orientation == "landscape"
        assert ws.sheet_properties.pageSetUpPr.fitToPage and ws.page_setup.fitToWidth == 1
        assert ws.page_setup.fitToHeight in (0, 1)
    assert len(wb["Charts"]._charts) == 5
    users = read_report_table(path, "Users")
    assert users["user_id"].tolist() == ["u1", "u2", "u3"]
    assert users["edge_steps"].tolist() == [10, 12, 16]
    assert (users["common_steps"] + users["edge_steps"] + users["device_steps"] == 28).all()
    assert users["finishes_on"].tolist() == ["device"] * 3
    assert "deadline_s" not in users  # an optional column empty for every user is left out
    groups = read_report_table(path, "Groups")
    assert groups["members"].tolist() == ["u1, u2", "u3"]
    assert groups["mean_similarity"].iloc[0] == pytest.approx(0.55)
    base = read_report_table(path, "Baselines")
    assert base["method"].tolist() == ["his-opt (this plan)", "IIS", "GFIS"]
    assert base["objective"].tolist() == [5.0, 2.0, 4.0]
    assert base["lead"].tolist()[1:] == [3.0, 1.0]
    # number formats: quality with 4 decimals, budget use as a percentage
    ws = wb["Users"]
    col = [c.value for c in ws[1]].index("Predicted quality (CLIP score)") + 1
    assert ws.cell(row=2, column=col).number_format == "0.0000"
    ws = wb["Servers"]
    col = [c.value for c in ws[1]].index("Budget used (%)") + 1
    assert ws.cell(row=2, column=col).number_format == "0.0%"


def test_labels_are_words_with_units(plan, hiqm, tmp_path):
    path = tmp_path / "r.xlsx"
    write_excel_report(path, plan, hiqm)
    wb = openpyxl.load_workbook(path)
    for name, columns in SHEET_COLUMNS.items():
        header = [c.value for c in wb[name][1] if c.value is not None]
        assert header == [c.label for c in columns if c.label in header]
        assert not [h for h in header if "_" in h], name  # no snake_case keys as labels
    labels = [wb["Model"].cell(row=r, column=2).value for r in range(2, wb["Model"].max_row + 1)]
    assert "server budget (s)" in labels and not [x for x in labels if "_" in x]
    overview = [c.value for c in wb["Overview"]["A"] if c.value]
    assert "Users finishing on the edge (z = 0)" in overview and "Where users finish" in overview
    words = " ".join(str(c.value) for c in wb["Overview"]["B"] if c.value)
    assert "0 of 3 users finish on the edge server" in words
    assert "12.50 s of its 60.00 s budget" in words


def test_quality_chart_data_follows_hiqm(plan, hiqm):
    curves = quality_curves(plan, hiqm)
    assert list(curves.columns) == ["common_steps", "g1: 2 users, s=0.55"]
    assert curves["common_steps"].tolist() == list(range(14))
    assert curves.iloc[9, 1] == pytest.approx(float(hiqm.predict(0.55, 9)))
    assert curves.iloc[:, 1].is_monotonic_decreasing


def _many_groups(plan: dict, n_groups: int) -> dict:
    """``plan`` with ``n_groups`` shared groups of sizes n_groups+1, n_groups, ..., 2."""
    doc = copy.deepcopy(plan)
    doc["groups"], doc["users"] = [], []
    for g in range(n_groups):
        gid, x, size = f"g{g + 1}", 4 + g % 9, n_groups + 1 - g
        members = [f"u{g}_{k}" for k in range(size)]
        doc["groups"].append({"group_id": gid, "server": "es1", "public_prompt": f"p{g}",
                              "common_steps": x, "seed": g, "members": members})
        doc["users"] += [_user(m, gid, 0.3 + 0.02 * g, x, 10, 0.28) for m in members]
    return doc


def test_quality_chart_summarises_beyond_the_largest_groups(plan, hiqm, tmp_path):
    doc = _many_groups(plan, 12)
    curves = quality_curves(doc, hiqm)
    assert len(curves.columns) == 1 + 8 + 1
    assert curves.columns[1].startswith("g1: 13 users") and curves.columns[8].startswith("g8:")
    rest = curves.columns[-1]
    assert rest.startswith("other 4 groups (14 users")  # sizes 5 + 4 + 3 + 2
    sims = np.array([0.3 + 0.02 * g for g in range(8, 12)])
    weights = np.array([5, 4, 3, 2])
    expect = weights @ np.array([hiqm.predict(s, np.arange(14)) for s in sims]) / weights.sum()
    np.testing.assert_allclose(curves[rest], expect)
    path = tmp_path / "r.xlsx"
    write_excel_report(path, doc, hiqm)
    chart = openpyxl.load_workbook(path)["Charts"]._charts[0]
    assert len(chart.series) == 10  # 8 groups, the rest, the chosen-x markers


def test_charts_are_scaled_to_their_data(plan, hiqm, tmp_path):
    path = tmp_path / "r.xlsx"
    write_excel_report(path, plan, hiqm)
    wb = openpyxl.load_workbook(path)
    quality, servers, baselines, q_hist, d_hist = wb["Charts"]._charts
    curves = quality_curves(plan, hiqm)
    lo, hi = curves.iloc[:, 1].min(), curves.iloc[:, 1].max()
    y = quality.y_axis.scaling
    assert y.min > 0.2 and lo - 0.02 < y.min <= lo and hi <= y.max < hi + 0.02
    (chosen,) = [s for s in quality.series if s.marker.symbol == "diamond"]
    data = wb["Chart data"]
    x_ref = chosen.xVal.numRef.f.split("!")[1].replace("$", "")
    assert data[x_ref.split(":")[0]].value == 9  # g1's chosen x is marked
    assert len(servers.series) == 2  # GPU time used and the budget, per server
    assert q_hist.series and d_hist.series and baselines.series


def test_axis_range_pads_and_rounds():
    assert axis_range(np.array([0.262, 0.318])) == (0.255, 0.325)
    lo, hi = axis_range(np.array([0.3, 0.3]))
    assert lo < 0.3 < hi and hi - lo >= 0.01


def test_report_tables_match_plan(plan):
    t = report_tables(plan)
    assert t["users"]["server"].tolist() == ["es1"] * 3
    assert t["groups"]["size"].tolist() == [2, 1]
    assert t["groups"]["mean_similarity"].isna().tolist() == [False, True]
    model = t["model"]
    assert ("quality model", "form", "interp") in set(map(tuple, model.values.tolist()))


def test_write_reports_writes_both_or_neither(plan, hiqm, tmp_path):
    out, pj = tmp_path / "r.xlsx", tmp_path / "p.json"
    broken = copy.deepcopy(plan)
    broken["users"][0]["group_id"] = "missing-group"  # the workbook builder fails on this
    with pytest.raises(KeyError):
        write_reports(out, pj, broken, hiqm)
    assert list(tmp_path.iterdir()) == []
    write_reports(out, pj, plan, hiqm)
    assert out.exists() and json.loads(pj.read_text())["groups"][0]["group_id"] == "g1"


def test_chart_data_headers_get_the_rows_they_wrap_to(plan, hiqm, tmp_path):
    """Spreadsheets do not grow a row for wrapped text: every wrapped header on the chart data
    sheet has the height of its longest label's lines (it overlapped the first value row)."""
    from his_opt.report._cells import LINE_PT, line_count

    path = tmp_path / "r.xlsx"
    write_excel_report(path, plan, hiqm)
    data = openpyxl.load_workbook(path)["Chart data"]
    wrapped = 0
    for row in data.iter_rows():
        cells = [c for c in row if isinstance(c.value, str) and c.alignment.wrap_text]
        if not cells:
            continue
        width = data.column_dimensions[cells[0].column_letter].width
        lines = max(line_count(c.value, width) for c in cells)
        wrapped += lines > 1
        assert data.row_dimensions[cells[0].row].height >= LINE_PT * lines
    assert wrapped >= 1  # the histograms' "..., bins from" headers


def _paths(obj, prefix=()):
    """Every (path, value) in a JSON document, containers included."""
    yield prefix, obj
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for k, v in items:
        yield from _paths(v, (*prefix, k))


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-50, 50) | st.floats(-2, 40) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=3), inner,
                                                                 max_size=2),
    max_leaves=4)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fast_schema_check_agrees_with_jsonschema(plan, data):
    """The compiled validator that passes valid plans (``jsonschema-rs``) accepts exactly what
    ``jsonschema`` accepts: one field of a valid plan replaced by any JSON value, or deleted."""
    import jsonschema

    from his_opt.report._schema import PLAN_JSON_SCHEMA, _fast_validator

    doc = copy.deepcopy(plan)
    paths = [p for p, _ in _paths(doc) if p]
    path = data.draw(st.sampled_from(paths))
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    if data.draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = data.draw(_JSON_VALUES)
    slow = jsonschema.Draft202012Validator(PLAN_JSON_SCHEMA).is_valid(doc)
    assert _fast_validator("full").is_valid(doc) == slow
