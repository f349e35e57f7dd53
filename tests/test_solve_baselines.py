"""``solve --baselines``: which baselines run, one progress line each, and bad names."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import openpyxl
import pytest
from _logs import logged

from his_opt._errors import InputError
from his_opt.allocation import run_baselines
from his_opt.allocation._synthetic import tiny_instance
from his_opt.cli._baselines import parse_baselines
from his_opt.cli._solve import main
from his_opt.report import read_report_table

EXAMPLES = Path(__file__).resolve().parents[1] / "his_opt" / "data" / "examples"


def test_parse_baselines():
    assert parse_baselines("iis,GFIS, ppgfis,greedy") == ("IIS", "GFIS", "PPGFIS", "greedy")
    assert parse_baselines("all") == ("IIS", "GFIS", "PPGFIS", "greedy")
    assert parse_baselines("None") == ()
    assert parse_baselines("greedy,iis") == ("greedy", "IIS")
    for bad, words in (("iis,foo", "unknown baseline 'foo'"), ("iis,iis", "given twice"),
                       ("", "unknown baseline ''")):
        with pytest.raises(InputError, match=words):
            parse_baselines(bad)


def test_run_baselines_names_filter():
    inst = tiny_instance(0)
    out = run_baselines(inst, random_state=0, names=["greedy", "IIS"])
    assert list(out) == ["greedy", "IIS"]
    assert list(run_baselines(inst, random_state=0)) == ["IIS", "GFIS", "PPGFIS", "greedy"]
    with pytest.raises(ValueError, match="unknown baselines"):
        run_baselines(inst, names=["iis"])


def test_unknown_baseline_exits_2_with_one_line(tmp_path, capsys):
    out = tmp_path / "r.xlsx"
    code = main([str(EXAMPLES / "users_small.csv"), "--out", str(out), "--baselines",
                 "iis,simplex"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("his-opt: error: ")
    assert "field '--baselines'" in err and "unknown baseline 'simplex'" in err
    assert list(tmp_path.iterdir()) == []


def _solve(tmp_path: Path, *args: str) -> tuple[dict, Path, int]:
    out, plan = tmp_path / "r.xlsx", tmp_path / "p.json"
    code = main([str(EXAMPLES / "users_small.csv"), "--out", str(out), "--plan", str(plan),
                 "--quiet", "--time-limit", "20", *args])
    return json.loads(plan.read_text(encoding="utf-8")), out, code


@pytest.fixture
def baseline_log(caplog):
    """Records of the baselines' logger (the CLI's ``his_opt`` logger does not propagate to the
    root logger that ``caplog`` listens on, so its handler is attached directly)."""
    logger = logging.getLogger("his_opt.cli.baselines")
    caplog.set_level(logging.INFO, logger="his_opt.cli.baselines")
    logger.addHandler(caplog.handler)
    yield caplog
    logger.removeHandler(caplog.handler)


def test_baselines_none_runs_none(tmp_path, baseline_log, capsys):
    caplog = baseline_log
    doc, out, code = _solve(tmp_path, "--baselines", "none")
    assert code == 0 and doc["baselines"] == []
    assert doc["totals"]["gpu_time_iis_s"] is None
    assert "vs " not in capsys.readouterr().out
    assert [r.getMessage() for r in caplog.records] == ["baselines: none requested"]
    assert read_report_table(out, "Baselines")["method"].tolist() == ["his-opt (this plan)"]
    assert len(openpyxl.load_workbook(out)["Charts"]._charts) == 5


def test_baselines_gfis_runs_only_it(tmp_path, baseline_log, capsys):
    caplog = baseline_log
    doc, out, code = _solve(tmp_path, "--baselines", "gfis", "--baseline-time-limit", "5")
    assert code == 0 and [b["name"] for b in doc["baselines"]] == ["GFIS"]
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and lines[0].startswith("baseline 1/1 GFIS: ")
    summary = capsys.readouterr().out
    assert "vs GFIS" in summary and "vs IIS" not in summary
    assert read_report_table(out, "Baselines")["method"].tolist() == [
        "his-opt (this plan)", "GFIS"]


@pytest.mark.parametrize("name", ["IIS", "GFIS", "PPGFIS", "greedy"])
def test_baseline_out_of_time_says_time_limit(name):
    """A spent budget gives no solved plan: status and reason say ``time_limit`` (a baseline that
    ignored its deadline would solve this tiny instance to optimality)."""
    inst = tiny_instance(0)
    (result,) = run_baselines(inst, 0, time_limit=0.0, names=[name]).values()
    assert result.status == "time_limit" and result.plan is None
    assert any(str(d).startswith(f"time_limit: {name} ran out") for d in result.diagnostics)
    (solved,) = run_baselines(inst, 0, time_limit=30.0, names=[name]).values()
    assert solved.status != "time_limit"


def test_baselines_log_start_and_end():
    with logged("his_opt.allocation._baselines") as handler:
        run_baselines(tiny_instance(0), 0, time_limit=30.0, names=["IIS", "greedy"])
    lines = handler.lines
    assert [line.split(":")[0] for line in lines] == ["baseline IIS"] * 2 + ["baseline greedy"] * 2
    assert lines[0].endswith("started, time limit 30.0 s") and lines[1].endswith(" s")


def test_baseline_time_limit_must_be_a_number():
    with pytest.raises(ValueError, match="time_limit"):
        run_baselines(tiny_instance(0), 0, time_limit=float("nan"))


def test_group_baselines_respect_the_similarity_floor():
    """GFIS and PPGFIS never put a user in a group whose public is below the floor: such users
    go solo (and the result says how many), so the plans stay feasible."""
    from his_opt.allocation import check_feasible

    inst = tiny_instance(4, n_users=7, budget_fraction=0.6, min_share_similarity=0.6)
    assert not inst.share_allowed.all()
    results = run_baselines(inst, time_limit=20, names=("GFIS", "PPGFIS"))
    kept = 0
    for res in results.values():
        assert res.plan is not None
        assert check_feasible(inst, res.plan.to_decision(inst)) == []
        kept += sum("kept solo" in d for d in res.diagnostics)
    assert kept >= 1
