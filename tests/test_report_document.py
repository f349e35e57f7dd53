"""``build_plan_document`` on a real solve of a small instance (precomputed similarities, so no
embedding model is loaded): totals, servers and baselines are consistent with the evaluator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from his_opt.allocation import build_instance, evaluate, run_baselines, solve
from his_opt.hiqm import default_hiqm_path, load_default_hiqm
from his_opt.io import SolveInputs, load_servers, load_users
from his_opt.report import build_plan_document, validate_plan
from his_opt.scenario import Scenario

EXAMPLES = Path(__file__).resolve().parents[1] / "his_opt" / "data" / "examples"


@pytest.fixture(scope="module")
def solved():
    scenario = Scenario(server_budget_s=20.0)
    users = load_users(EXAMPLES / "users_small.csv", scenario, random_state=0)
    servers = load_servers(None, scenario)
    hiqm = load_default_hiqm(scenario.variant)
    subjects = users["subject"].to_numpy()
    # users' own prompts are the candidates: 0.6 within a subject, 0.1 across, 1 on the diagonal
    sim = np.where(subjects[:, None] == subjects[None, :], 0.6, 0.1)
    np.fill_diagonal(sim, 1.0)
    inst = build_instance(users, servers, scenario, hiqm, similarity=sim, random_state=0)
    result = solve(inst, time_limit=30)
    baselines = run_baselines(inst, random_state=0)
    inputs = SolveInputs(
        users=users,
        servers=servers,
        scenario=scenario,
        hiqm=hiqm,
        hiqm_path=default_hiqm_path(),
        seed=0,
        files={"users": {"file": "users_small.csv", "sha256": "0" * 64}},
    )
    doc = build_plan_document(inst, result, baselines, inputs, command=["solve.py"])
    return inst, result, doc


def test_document_is_valid_and_complete(solved):
    _, result, doc = solved
    validate_plan(doc)
    assert doc["status"]["status"] == result.status
    assert doc["status"]["feasible"] is True and doc["status"]["violations"] == []
    assert doc["provenance"]["command"] == ["solve.py"]
    assert doc["provenance"]["hiqm"]["model"]["form"] in ("interp", "poly")
    assert doc["provenance"]["servers"][0]["profile"]["schema"] == "his-opt/gpu-profile/1"


def test_totals_match_the_evaluator(solved):
    inst, result, doc = solved
    ev = evaluate(inst, result.plan)
    t = doc["totals"]
    wq, wd, we = inst.weights
    assert t["objective"] == pytest.approx(ev.objective)
    assert t["objective"] == pytest.approx(t["quality_term"] - t["delay_term"] - t["energy_term"])
    assert t["quality_term"] == pytest.approx(
        wq * sum(u["predicted_quality"] for u in doc["users"])
    )
    assert t["delay_term"] == pytest.approx(wd * sum(u["delay_s"] for u in doc["users"]))
    assert t["energy_j"] == pytest.approx(sum(u["energy_j"] for u in doc["users"]))
    assert t["gpu_time_s"] == pytest.approx(sum(s["gpu_time_s"] for s in doc["servers"]))
    assert t["users"] == 8 and t["groups"] == len(doc["groups"])
    assert t["shared_groups"] + t["solo_users"] == len(doc["groups"])
    # sharing never costs more GPU time than running the same edge steps unshared
    assert t["gpu_time_unshared_s"] >= t["gpu_time_s"] - 1e-9


def test_baselines_scored_by_the_same_evaluator(solved):
    inst, result, doc = solved
    names = [b["name"] for b in doc["baselines"]]
    assert {"IIS", "GFIS", "PPGFIS"} <= set(names)
    for b in doc["baselines"]:
        if b["objective"] is None:
            continue
        assert b["objective"] == pytest.approx(
            b["quality_term"] - b["delay_term"] - b["energy_term"]
        )
        lead = doc["totals"]["objective"] - b["objective"]
        assert b["lead"] == pytest.approx(lead)
        if b["objective"] > 0:
            assert b["plan_vs_method"] == pytest.approx(lead / b["objective"])
        else:  # a ratio to a negative objective means nothing
            assert b["plan_vs_method"] is None
    iis = next(b for b in doc["baselines"] if b["name"] == "IIS")
    assert doc["totals"]["gpu_time_iis_s"] == pytest.approx(iis["gpu_time_s"])


def test_plan_records_the_model_and_generate_reads_it(solved, tmp_path):
    import json

    from his_opt.cli import build_parser
    from his_opt.cli._solve import _model_record
    from his_opt.inference._executor import load_plan

    inst, result, _ = solved
    args = build_parser().parse_args(
        ["solve", "users.csv", "--model", "stabilityai/sd3-medium", "--dtype", "bfloat16"]
    )
    model = _model_record(args, inst.scenario)
    assert model == {
        "id": "stabilityai/sd3-medium",
        "dtype": "bfloat16",
        "variant": "sim_npi",
        "guidance_public": 2.0,
        "guidance_personal": 8.0,
    }
    inputs = SolveInputs(
        users=load_users(EXAMPLES / "users_small.csv", inst.scenario, random_state=0),
        servers=inst.servers,
        scenario=inst.scenario,
        hiqm=inst.hiqm,
        hiqm_path=default_hiqm_path(),
        seed=0,
        files={},
    )
    doc = build_plan_document(inst, result, {}, inputs, command=["solve.py"], model=model)
    validate_plan(doc)
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    plan = load_plan(path)
    assert plan.model == model and plan.handoff == "latent"
    assert plan.servers == {s.name: s.batch_images() for s in inst.servers}
    assert {g.server for g in plan.groups} <= set(plan.servers)
