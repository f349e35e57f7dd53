"""Bad input to ``solve``: one line on stderr naming file, row and field; exit code 2; no output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from his_opt.cli._solve import build_solve_parser, main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "his_opt" / "data" / "examples"
GOOD_USERS = "user_id,prompt\na,a cat on a sofa\nb,a dog on a sofa\n"


@pytest.fixture
def work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "users.csv").write_text(GOOD_USERS, encoding="utf-8")
    return tmp_path


def run_bad(work: Path, capsys, *argv: str) -> str:
    """Run solve, assert the bad-input contract, return the stderr line."""
    out, plan = work / "out" / "r.xlsx", work / "out" / "p.json"
    code = main([*argv, "--out", str(out), "--plan", str(plan), "--quiet"])
    captured = capsys.readouterr()
    assert code == 2
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("his-opt: error: ")
    assert not out.exists() and not plan.exists()
    assert not (work / "out").exists() or not any((work / "out").iterdir())
    return lines[0]


def write(work: Path, name: str, data: str | bytes) -> str:
    p = work / name
    if isinstance(data, bytes):
        p.write_bytes(data)
    else:
        p.write_text(data, encoding="utf-8")
    return str(p)


def test_missing_users_file(work, capsys):
    line = run_bad(work, capsys, "nope.csv")
    assert "nope.csv: file not found" in line


def test_missing_prompt_column(work, capsys):
    users = write(work, "u.csv", "user_id,text\na,x\n")
    line = run_bad(work, capsys, users)
    assert "u.csv: row 0: field 'prompt': missing required column" in line


def test_empty_prompt(work, capsys):
    users = write(work, "u.csv", "user_id,prompt\na,x\nb,  \n")
    assert "u.csv: row 2: field 'prompt': empty prompt (line 3)" in run_bad(work, capsys, users)


def test_duplicate_user_ids(work, capsys):
    users = write(work, "u.csv", "user_id,prompt\na,x\nb,y\na,z\n")
    line = run_bad(work, capsys, users)
    assert "u.csv: row 3: field 'user_id': duplicate user id 'a', first used in row 1" in line


@pytest.mark.parametrize(
    ("cell", "words"),
    [("abc", "not a number: 'abc'"), ("-2", "must be positive"), ("NaN", "finite")],
)
def test_bad_numbers(work, capsys, cell, words):
    users = write(work, "u.csv", f"user_id,prompt,deadline_s\na,x,20\nb,y,{cell}\n")
    line = run_bad(work, capsys, users)
    assert "u.csv: row 2: field 'deadline_s': " in line and words in line


def test_undecodable_users_file(work, capsys):
    users = write(work, "u.csv", b"user_id,prompt\na,caf" + b"\xe9\n")
    line = run_bad(work, capsys, users)
    assert "u.csv: not UTF-8 text: byte 20 (line 2)" in line


def test_unknown_profile_in_servers_file(work, capsys):
    servers = write(work, "s.csv", "name,profile,budget_s\nes1,cycle,10\nes2,h100-made-up,10\n")
    line = run_bad(work, capsys, "users.csv", "--servers", servers)
    assert "s.csv: row 2: field 'profile': bad profile 'h100-made-up'" in line
    assert "unknown GPU profile" in line


def test_missing_servers_file(work, capsys):
    line = run_bad(work, capsys, "users.csv", "--servers", "servers.csv")
    assert "servers.csv: file not found" in line


def test_unknown_server_profile_in_config(work, capsys):
    config = write(work, "c.yaml", "server_profile: no-such-gpu\n")
    line = run_bad(work, capsys, "users.csv", "--config", config)
    assert "field 'server_profile'" in line and "no-such-gpu" in line


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("total_steps: [28\n", "not valid YAML"),
        ("w_qualty: 3\n", "field 'w_qualty': unknown scenario field"),
        ("w_delay: fast\n", "field 'w_delay': must be a number"),
        ("- 1\n- 2\n", "config must be a mapping"),
    ],
)
def test_malformed_config(work, capsys, text, words):
    config = write(work, "c.yaml", text)
    line = run_bad(work, capsys, "users.csv", "--config", config)
    assert "c.yaml: " in line and words in line


def test_hiqm_failing_validation(work, capsys):
    data = json.loads((ROOT / "his_opt" / "data" / "models" / "hiqm" / "sim_npi.json").read_text())
    data["params"]["knots"][1]["K"] = -0.5  # quality would rise with shared steps
    hiqm = write(work, "h.json", json.dumps(data))
    line = run_bad(work, capsys, "users.csv", "--hiqm", hiqm)
    assert "h.json: field 'params" in line


def test_hiqm_not_json_and_wrong_variant(work, capsys):
    assert "h.json: not valid JSON" in run_bad(
        work, capsys, "users.csv", "--hiqm", write(work, "h.json", "{oops")
    )
    plain = str(ROOT / "his_opt" / "data" / "models" / "hiqm" / "plain.json")
    line = run_bad(work, capsys, "users.csv", "--hiqm", plain)
    assert "plain.json: field 'variant'" in line


def test_bad_candidates_file(work, capsys):
    cands = write(work, "c.txt", "a cat\na cat\n")
    line = run_bad(work, capsys, "users.csv", "--candidates", cands)
    assert "c.txt: row 2: field 'prompt': duplicate candidate" in line


def test_bad_output_paths(work, capsys):
    code = main(["users.csv", "--out", "r.csv", "--quiet"])
    assert code == 2 and "field '--out'" in capsys.readouterr().err
    code = main(["users.csv", "--out", "r.xlsx", "--plan", "r.xlsx", "--quiet"])
    assert code == 2 and "same file" in capsys.readouterr().err
    assert not (work / "r.xlsx").exists()


def test_existing_outputs_untouched_on_bad_input(work, capsys):
    (work / "out").mkdir()
    (work / "out" / "r.xlsx").write_bytes(b"old report")
    bad = write(work, "u.csv", "user_id,prompt\na,\n")
    code = main([bad, "--out", "out/r.xlsx", "--quiet"])
    assert code == 2
    assert (work / "out" / "r.xlsx").read_bytes() == b"old report"
    assert not (work / "out" / "plan.json").exists()


def test_help_lists_every_option(capsys):
    with pytest.raises(SystemExit) as info:
        build_solve_parser().parse_args(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for flag in (
        "--servers",
        "--config",
        "--hiqm",
        "--out",
        "--plan",
        "--time-limit",
        "--seed",
        "--gap",
        "--candidates",
        "--similarity-model",
        "--quiet",
        "exit status",
    ):
        assert flag in text


def test_example_files_exist():
    for name in (
        "users.csv",
        "users_small.csv",
        "servers.csv",
        "servers_paper.csv",
        "paper_cycle.yaml",
        "scenario.yaml",
        "candidates.txt",
    ):
        assert (EXAMPLES / name).is_file(), name
