"""End to end: the README's main command on the examples; report sheets and plan agree, the plan
is feasible and re-evaluates to the objective it reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import openpyxl
import pytest

from his_opt.allocation import GroupPlan, Plan, UserPlan, check_feasible, evaluate
from his_opt.app import build_solve_instance
from his_opt.cli._solve import main
from his_opt.io import SolveInputs
from his_opt.report import (
    PLAN_JSON_SCHEMA,
    SHEET_COLUMNS,
    SHEETS,
    read_report_table,
    validate_plan,
)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "his_opt" / "data" / "examples"


def plan_from_document(doc: dict) -> Plan:
    """Rebuild an allocation ``Plan`` from the JSON, to check it with the allocation's evaluator."""
    groups = tuple(
        GroupPlan(
            group_id=g["group_id"],
            server=g["server"],
            public_index=g.get("public_index"),
            public_prompt=g["public_prompt"],
            common_steps=g["common_steps"],
            members=tuple(g["members"]),
            seed=g["seed"],
        )
        for g in doc["groups"]
    )
    keys = UserPlan.__dataclass_fields__
    users = tuple(UserPlan(**{k: u[k] for k in keys}) for u in doc["users"])
    return Plan(groups=groups, users=users, scenario=doc["scenario"], totals=doc["totals"])


def run_solve(tmp: Path, *args: str) -> tuple[dict, Path, str]:
    out, plan = tmp / "out" / "report.xlsx", tmp / "out" / "plan.json"
    code = main([*args, "--out", str(out), "--plan", str(plan), "--quiet"])
    assert code == 0
    return json.loads(plan.read_text(encoding="utf-8")), out, str(plan)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """``python solve.py examples/users.csv --out out/report.xlsx --plan out/plan.json``."""
    tmp = tmp_path_factory.mktemp("full")
    doc, out, _ = run_solve(tmp, str(EXAMPLES / "users.csv"))
    return doc, out


@pytest.fixture(scope="module")
def similarity():
    from his_opt.similarity import PromptSimilarity

    return PromptSimilarity()


def check_agreement(doc: dict, out: Path) -> None:
    """Every sheet shows what the plan says."""
    validate_plan(doc)
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(doc, PLAN_JSON_SCHEMA)
    T = doc["scenario"]["total_steps"]
    wb = openpyxl.load_workbook(out)
    assert wb.sheetnames == list(SHEETS)
    assert len(wb["Charts"]._charts) == 5
    for name in SHEET_COLUMNS:
        assert wb[name].freeze_panes == "B2" and wb[name].auto_filter.ref

    users = read_report_table(out, "Users").set_index("user_id")
    assert list(users.index) == [u["user_id"] for u in doc["users"]]
    for u in doc["users"]:
        row = users.loc[u["user_id"]]
        assert row["group_id"] == u["group_id"]
        assert (row["common_steps"], row["edge_steps"], row["device_steps"]) == (
            u["common_steps"],
            u["edge_steps"],
            u["device_steps"],
        )
        assert u["common_steps"] + u["edge_steps"] + u["device_steps"] == T
        assert row["predicted_quality"] == pytest.approx(u["predicted_quality"])
        assert row["delay_s"] == pytest.approx(u["delay_s"])
        assert row["finishes_on"] == ("edge" if u["device_steps"] == 0 else "device")

    groups = read_report_table(out, "Groups").set_index("group_id")
    assert list(groups.index) == [g["group_id"] for g in doc["groups"]]
    for g in doc["groups"]:
        row = groups.loc[g["group_id"]]
        assert row["members"] == ", ".join(g["members"])
        assert row["common_steps"] == g["common_steps"] and row["server"] == g["server"]

    figures = {c.value: wb["Overview"].cell(row=c.row, column=c.column + 1).value
               for col in ("A", "C") for c in wb["Overview"][col] if c.value}
    assert figures["Status"] == doc["status"]["status"]
    assert figures["Objective (points, higher is better)"] == pytest.approx(
        doc["totals"]["objective"])
    assert figures["GPU time used, all servers (s)"] == pytest.approx(doc["totals"]["gpu_time_s"])
    on_edge = sum(1 for u in doc["users"] if u["device_steps"] == 0)
    assert figures["Users finishing on the edge (z = 0)"] == on_edge
    base = read_report_table(out, "Baselines")
    names = base["method"].tolist()
    assert names[0] == "his-opt (this plan)"
    assert names[1:] == [b["name"] for b in doc["baselines"]]
    for b, (_, row) in zip(doc["baselines"], base.iloc[1:].iterrows(), strict=True):
        if b["objective"] is None:  # no blank row: it says "no plan" and why
            assert row["has_plan"] == "no plan" and row["objective"] == "no plan"
            assert b["reason"] and b["reason"] in row["reason"]
        else:
            assert row["objective"] == pytest.approx(b["objective"])
    if doc["status"]["status"] == "optimal":  # no feasible baseline may beat an optimal plan
        for b in doc["baselines"]:
            if b["feasible"]:
                assert doc["totals"]["objective"] >= b["objective"] - 1e-6 * abs(b["objective"])

    servers = read_report_table(out, "Servers")
    assert servers["name"].tolist() == [s["name"] for s in doc["servers"]]
    assert servers["gpu_time_s"].sum() == pytest.approx(doc["totals"]["gpu_time_s"])
    assert (servers["gpu_time_s"] <= servers["budget_s"] * (1 + 1e-6)).all()


def check_feasible_and_objective(doc: dict, similarity, users: Path, **files) -> None:
    """Rebuild the instance from the same inputs and re-evaluate the plan from its JSON."""
    inputs = SolveInputs.load(users, seed=doc["provenance"]["seed"], **files)
    inst = build_solve_instance(inputs, similarity=similarity)
    plan = plan_from_document(doc)
    assert check_feasible(inst, plan) == []
    ev = evaluate(inst, plan)
    assert ev.objective == pytest.approx(doc["totals"]["objective"], rel=1e-9, abs=1e-9)
    assert doc["status"]["feasible"] is True


def test_full_example_report_and_plan_agree(full_run, similarity):
    doc, out = full_run
    check_agreement(doc, out)
    check_feasible_and_objective(doc, similarity, EXAMPLES / "users.csv")
    assert len(doc["users"]) == 50
    assert {b["name"] for b in doc["baselines"]} >= {"IIS", "GFIS", "PPGFIS"}
    prov = doc["provenance"]
    assert prov["inputs"]["users"]["sha256"] and prov["hiqm"]["sha256"]
    assert prov["hiqm"]["model"]["params"]
    # GFIS's random public prompt breaks three users' min_quality: the plan says which
    gfis = next(b for b in doc["baselines"] if b["name"] == "GFIS")
    assert gfis["objective"] is None and gfis["feasible"] is False
    assert "min_quality not met for 3 users (u04, u20, u37)" in gfis["reason"]
    assert any("u04" in r and "min_quality" in r for r in gfis["reasons"])
    iis = next(b for b in doc["baselines"] if b["name"] == "IIS")
    assert iis["objective"] < 0 and iis["plan_vs_method"] is None  # no ratio to a negative
    assert iis["lead"] == pytest.approx(doc["totals"]["objective"] - iis["objective"])


def test_several_servers_and_candidates(tmp_path, similarity):
    files = {"servers": EXAMPLES / "servers.csv", "candidates": EXAMPLES / "candidates.txt"}
    doc, out, _ = run_solve(
        tmp_path,
        str(EXAMPLES / "users_small.csv"),
        "--servers",
        str(files["servers"]),
        "--candidates",
        str(files["candidates"]),
        "--seed",
        "3",
        "--time-limit",
        "30",
    )
    check_agreement(doc, out)
    check_feasible_and_objective(doc, similarity, EXAMPLES / "users_small.csv", **files)
    assert [s["name"] for s in doc["servers"]] == ["es-north", "es-south", "es-east"]
    candidates = (EXAMPLES / "candidates.txt").read_text().splitlines()
    for g in doc["groups"]:
        assert g["public_prompt"] is None or g["public_prompt"] in candidates


def test_paper_scenario(tmp_path, similarity):
    config = EXAMPLES / "paper_cycle.yaml"
    doc, out, _ = run_solve(
        tmp_path, str(EXAMPLES / "users_paper.csv"), "--config", str(config), "--seed", "0"
    )
    check_agreement(doc, out)
    check_feasible_and_objective(doc, similarity, EXAMPLES / "users_paper.csv", config=config)
    shared = [g for g in doc["groups"] if g["public_prompt"] is not None]
    assert 1 <= len(shared) <= 2
    assert doc["servers"][0]["profile_kind"] == "cycle-model"


def test_solve_py_script_help_and_exit_code():
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "solve.py"), "--help"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0 and "--time-limit" in proc.stdout
    proc = subprocess.run(
        [sys.executable, str(ROOT / "solve.py"), "no-such-users.csv"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "his-opt: error: no-such-users.csv: file not found"


def test_no_feasible_plan_exits_1_and_writes_nothing(tmp_path, capsys):
    users = tmp_path / "u.csv"
    users.write_text("user_id,prompt,deadline_s\na,a cat,0.5\nb,a dog,\n", encoding="utf-8")
    out = tmp_path / "out" / "r.xlsx"
    assert main([str(users), "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "no feasible plan" in err and "user a" in err and "deadline" in err
    assert not out.exists() and not (tmp_path / "out" / "plan.json").exists()
