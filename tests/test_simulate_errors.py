"""Bad simulation configs: one line ``his-opt: error: ...``, exit 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from his_opt.cli import main
from tests._simulate_fixtures import write_config


def run_bad(tmp_path: Path, capsys, cfg: Path, *extra: str) -> str:
    out = tmp_path / "out"
    code = main(["simulate", str(cfg), "--out", str(out), "--quiet", *extra])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("his-opt: error: ")
    assert not out.exists()
    return lines[0]


@pytest.mark.parametrize(
    ("fields", "expect"),
    [
        ({"policies": "[his, magic]"}, "field 'policies': unknown policy 'magic'"),
        ({"arrivals": "{mode: poisson, rate_per_s: -2}", "round_length_s": "4",
          "policies": "[his]"}, "field 'arrivals.rate_per_s': must be a positive number or null, got -2"),
        ({"round_length_s": "0"}, "field 'round_length_s': must be a positive number"),
        ({"arrivals": "{mode: poisson, rate_per_s: 2}", "policies": "[his, ippo]",
          "round_length_s": "4"}, "ippo policy has one agent per user slot"),
        ({"arrivals": "{mode: poisson, rate_per_s: 2}", "policies": "[his]"},
         "field 'round_length_s': Poisson arrivals need a round length"),
        ({"ippo": "{lr: 0.001, epochz: 3}"}, "field 'ippo.epochz': unknown setting"),
        ({"episodes": "0"}, "field 'episodes': must be >= 1"),
        ({"policies": "[]"}, "field 'policies'"),
    ],
)
def test_bad_config(tmp_path, capsys, fields, expect):
    line = run_bad(tmp_path, capsys, write_config(tmp_path, **fields))
    assert expect in line, line


def test_empty_pool(tmp_path, capsys):
    users = tmp_path / "pool.csv"
    users.write_text("user_id,prompt,subject\n", encoding="utf-8")
    line = run_bad(tmp_path, capsys, write_config(tmp_path, users=str(users)))
    assert "pool.csv: no data rows" in line


def test_missing_pool_file(tmp_path, capsys):
    line = run_bad(tmp_path, capsys, write_config(tmp_path, users="nowhere.csv"))
    assert "field 'users': file not found" in line


def test_bad_sweep(tmp_path, capsys):
    cfg = write_config(tmp_path, policies="[his]")
    line = run_bad(tmp_path, capsys, cfg, "--sweep", "round_length_s=4,0")
    assert "--sweep: field 'round_length_s': must be > 0" in line
    line = run_bad(tmp_path, capsys, cfg, "--sweep", "colour=1,2")
    assert "expected KEY=v1,v2" in line


def test_existing_outputs_untouched_by_a_bad_config(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "rounds.csv").write_text("keep me\n", encoding="utf-8")
    cfg = write_config(tmp_path, policies="[nope]")
    assert main(["simulate", str(cfg), "--out", str(out), "--quiet"]) == 2
    assert (out / "rounds.csv").read_text(encoding="utf-8") == "keep me\n"
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_folder_of_another_run_is_refused(tmp_path, capsys):
    import json

    from his_opt.simulate import load_sim_config

    cfg_path = write_config(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    other = load_sim_config(cfg_path).to_dict() | {"seed": 7}
    (out / "config.json").write_text(json.dumps(other), encoding="utf-8")
    assert main(["simulate", str(cfg_path), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds a run of a different config" in err[0]
    assert sorted(p.name for p in out.iterdir()) == ["config.json"]
