"""Parsing and validation of users.csv, servers.csv/.yaml and candidate files (his_opt.io)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from _contract import refused, solve_folder

from his_opt._errors import InputError
from his_opt.costs import CycleProfile, DeviceModel, GPUProfile
from his_opt.io import USER_COLUMNS, load_candidates, load_servers, load_users
from his_opt.scenario import Scenario, load_scenario

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "his_opt" / "data" / "examples"


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    p = tmp_path / name
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8")
    return p


def error_of(fn, *args, **kwargs) -> InputError:
    with pytest.raises(InputError) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg
    return info.value


# ---------------------------------------------------------------- users


def test_example_users_parse_to_canonical_table():
    df = load_users(EXAMPLES / "users.csv", Scenario(), random_state=0)
    assert list(df.columns) == list(USER_COLUMNS)
    assert len(df) == 50 and df["user_id"].is_unique
    assert set(df["subject"]) == {"cat", "lake", "city"}
    u03 = df.set_index("user_id").loc["u03"]
    assert u03["negative_prompt"] == "blurry, low quality"
    assert df.set_index("user_id").loc["u01", "negative_prompt"] is None
    # defaults from the scenario; per-row device and channel overrides
    sc = Scenario()
    u01 = df.set_index("user_id").loc["u01"]
    assert u01["device_step_s"] == sc.device_step_s
    assert u01["device_step_energy_j"] == pytest.approx(sc.device_step_s * sc.device_power_w)
    assert u01["bandwidth_hz"] == sc.bandwidth_hz and math.isnan(u01["deadline_s"])
    u07 = df.set_index("user_id").loc["u07"]
    assert (u07["device_step_s"], u07["device_step_energy_j"]) == (4.0, 24.0)
    assert df.set_index("user_id").loc["u16", "bandwidth_hz"] == 5e6
    assert df.set_index("user_id").loc["u13", "deadline_s"] == 30.0
    assert df.set_index("user_id").loc["u04", "min_quality"] == 0.30


def test_small_example_parses():
    df = load_users(EXAMPLES / "users_small.csv")
    assert len(df) == 8 and df["subject"].tolist().count("cat") == 4


def test_cycle_model_draws_seeded_clocks():
    sc = Scenario(device_model="cycles")
    a = load_users(EXAMPLES / "users_small.csv", sc, random_state=3)
    b = load_users(EXAMPLES / "users_small.csv", sc, random_state=3)
    c = load_users(EXAMPLES / "users_small.csv", sc, random_state=4)
    assert np.array_equal(a["device_step_s"], b["device_step_s"])
    assert not np.array_equal(a["device_step_s"], c["device_step_s"])
    lo = sc.device_cycles_per_step / sc.device_freq_max_hz
    hi = sc.device_cycles_per_step / sc.device_freq_min_hz
    assert a["device_step_s"].between(lo, hi).all()
    # energy follows the clock: kappa * xi * f^2 with f = xi / t
    f = sc.device_cycles_per_step / a["device_step_s"]
    assert np.allclose(
        a["device_step_energy_j"], sc.device_kappa * sc.device_cycles_per_step * f**2
    )


def test_per_row_device_columns(tmp_path):
    p = write(
        tmp_path,
        "u.csv",
        "user_id,prompt,device_step_s,device_power_w,device_cycles_per_step,device_freq_hz,device_kappa\n"
        "a,p1,2.0,10,,,\n"
        "b,p2,,,1e7,1e9,2e-27\n"
        "c,p3,,,,,\n",
    )
    df = load_users(p, Scenario()).set_index("user_id")
    assert (df.loc["a", "device_step_s"], df.loc["a", "device_step_energy_j"]) == (2.0, 20.0)
    want = DeviceModel.from_cycles(1e7, 1e9, 2e-27)
    assert df.loc["b", "device_step_s"] == pytest.approx(want.step_time_s)
    assert df.loc["b", "device_step_energy_j"] == pytest.approx(want.step_energy_j)
    assert df.loc["c", "device_step_s"] == Scenario().device_step_s


def test_note_columns_ignored_and_blank_rows_skipped(tmp_path):
    p = write(tmp_path, "u.csv", "user_id,prompt,_comment\na,x,hello\n,,\nb,y,\n")
    df = load_users(p)
    assert df["user_id"].tolist() == ["a", "b"]


def test_quoted_multiline_prompt_and_bom(tmp_path):
    p = write(tmp_path, "u.csv", b'\xef\xbb\xbfuser_id,prompt\na,"two\nlines"\nb,"x, y"\n')
    df = load_users(p)
    assert df["prompt"].tolist() == ["two\nlines", "x, y"]


@pytest.mark.parametrize(
    ("text", "row", "field", "words"),
    [
        ("user_id,prompt\na,x\nb,\n", 2, "prompt", "empty prompt"),
        ("user_id,prompt\na,x\nb,y\na,z\n", 3, "user_id", "duplicate user id"),
        ("user_id,prompt\n,x\n", 1, "user_id", "empty user id"),
        ("user_id,prompt,deadline_s\na,x,10\nb,y,abc\n", 2, "deadline_s", "not a number"),
        ("user_id,prompt,deadline_s\na,x,-3\n", 1, "deadline_s", "positive"),
        ("user_id,prompt,min_quality\na,x,-0.1\n", 1, "min_quality", "non-negative"),
        ("user_id,prompt,min_quality\na,x,nan\n", 1, "min_quality", "finite"),
        ("user_id,prompt,bandwidth_hz\na,x,inf\n", 1, "bandwidth_hz", "finite"),
        ("user_id,prompt,channel_gain\na,x,0\n", 1, "channel_gain", "positive"),
        (
            "user_id,prompt,device_step_s,device_freq_hz\na,x,1.0,2e9\n",
            1,
            "device_freq_hz",
            "not both",
        ),
        (
            "user_id,prompt,device_power_w,device_freq_hz\na,x,5,2e9\n",
            1,
            "device_power_w",
            "goes with device_step_s",
        ),
        ("user_id,prompt\na,x\nb,y,z\n", 2, None, "cells"),
        ("user_id,prompt,deadline\na,x,3\n", 0, "deadline", "unknown column"),
        ("user_id,user_id,prompt\na,b,x\n", 0, "user_id", "twice"),
        ("user_id\na\n", 0, "prompt", "missing required column"),
    ],
)
def test_users_bad_input_names_row_and_field(tmp_path, text, row, field, words):
    err = error_of(load_users, write(tmp_path, "users.csv", text))
    assert err.file.endswith("users.csv")
    assert err.row == row and err.field == field
    assert words in str(err)
    if row:
        assert "line" in str(err)


def test_users_line_differs_from_row_after_multiline_field(tmp_path):
    p = write(tmp_path, "u.csv", 'user_id,prompt,deadline_s\na,"one\ntwo\nthree",\nb,y,zz\n')
    err = error_of(load_users, p)
    assert err.row == 2 and "(line 5)" in str(err)


def test_users_missing_file(tmp_path):
    err = error_of(load_users, tmp_path / "nope.csv")
    assert err.file.endswith("nope.csv") and "not found" in str(err)


def test_users_undecodable_bytes_name_offset_and_line(tmp_path):
    p = write(tmp_path, "u.csv", b"user_id,prompt\na,caf\xe9\n")
    err = error_of(load_users, p)
    assert "not UTF-8" in str(err) and "byte 20" in str(err) and "line 2" in str(err)


def test_users_empty_file_and_header_only(tmp_path):
    assert "empty" in str(error_of(load_users, write(tmp_path, "a.csv", "")))
    assert "no data rows" in str(error_of(load_users, write(tmp_path, "b.csv", "user_id,prompt\n")))


# ---------------------------------------------------------------- servers


def test_default_server_follows_scenario():
    (srv,) = load_servers(None, Scenario())
    assert srv.name == "es1" and isinstance(srv.profile, GPUProfile)
    assert srv.budget_s == Scenario().server_budget_s
    (cyc,) = load_servers(None, Scenario(server_profile="cycle"))
    assert isinstance(cyc.profile, CycleProfile) and cyc.profile == CycleProfile()


def test_example_servers():
    servers = load_servers(EXAMPLES / "servers.csv")
    assert [s.name for s in servers] == ["es-north", "es-south", "es-east"]
    assert [s.budget_s for s in servers] == [40.0, 25.0, 10.0]
    assert [s.max_batch_images for s in servers] == [8, 4, None]
    # a profile given as a path relative to the servers file loads the same profile
    assert servers[0].profile == servers[1].profile
    (paper,) = load_servers(EXAMPLES / "servers_paper.csv")
    assert paper.profile == CycleProfile()


def test_servers_yaml_and_custom_cycle(tmp_path):
    p = write(
        tmp_path,
        "s.yaml",
        "servers:\n  - {name: a, profile: cycle, budget_s: 5, freq_hz: 1.0e+9}\n"
        "  - name: b\n    profile: sd3-medium-1024-fp16-a100-estimate\n",
    )
    a, b = load_servers(p, Scenario(server_budget_s=7.0))
    assert a.profile.freq_hz == 1e9 and a.profile.cycles_per_step == 15e6 and a.budget_s == 5
    assert a.profile.name == "cycle-model"
    assert b.budget_s == 7.0 and isinstance(b.profile, GPUProfile)


@pytest.mark.parametrize(
    ("name", "text", "row", "field", "words"),
    [
        (
            "s.csv",
            "name,profile,budget_s\nes1,no-such-gpu,5\n",
            1,
            "profile",
            "unknown GPU profile",
        ),
        ("s.csv", "name,profile,budget_s\nes1,missing.json,5\n", 1, "profile", "not found"),
        ("s.csv", "name,profile,budget_s\nes1,cycle,5\nes1,cycle,6\n", 2, "name", "duplicate"),
        ("s.csv", "name,profile,budget_s\nes1,cycle,-5\n", 1, "budget_s", "non-negative"),
        ("s.csv", "name,profile,budget_s\nes1,cycle,NaN\n", 1, "budget_s", "finite"),
        (
            "s.csv",
            "name,profile,max_batch_images\nes1,cycle,2.5\n",
            1,
            "max_batch_images",
            "integer",
        ),
        (
            "s.csv",
            "name,profile,freq_hz\nes1,sd3-medium-1024-fp16-a100-estimate,1e9\n",
            1,
            "freq_hz",
            "only allowed with profile 'cycle'",
        ),
        ("s.csv", "name,budget_s\nes1,5\n", 0, "profile", "missing required column"),
        ("s.csv", "name,profile,gpu\nes1,cycle,x\n", 0, "gpu", "unknown column"),
        ("s.csv", "name,profile\n,cycle\n", 1, "name", "empty server name"),
        ("s.yaml", "- {name: a, profile: cycle, budget_s: [1]}\n", 1, "budget_s", "scalar"),
        ("s.yaml", "- {name: a, profile: nope}\n", 1, "profile", "unknown GPU profile"),
        ("s.yaml", "- {name: a}\n", 1, "profile", "missing"),
        ("s.yaml", "servers: [\n", None, None, "malformed YAML"),
    ],
)
def test_servers_bad_input(tmp_path, name, text, row, field, words):
    err = error_of(load_servers, write(tmp_path, name, text))
    assert err.file.endswith(name) and err.row == row and err.field == field
    assert words in str(err)


def test_servers_profile_json_failing_validation(tmp_path):
    write(tmp_path, "bad.json", '{"schema": "his-opt/gpu-profile/1", "name": "x", "rows": [1]}')
    err = error_of(load_servers, write(tmp_path, "s.csv", "name,profile\nes1,bad.json\n"))
    assert err.row == 1 and err.field == "profile" and "step_latency_s" in str(err)


def test_unknown_default_profile_in_scenario():
    err = error_of(load_servers, None, Scenario(server_profile="nope"))
    assert err.field == "server_profile"


# ---------------------------------------------------------------- candidates and configs


def test_candidates(tmp_path):
    assert load_candidates(EXAMPLES / "candidates.txt")[0] == "a cat"
    p = write(tmp_path, "c.txt", "# c\n\na dog\n  a cat  \n")
    assert load_candidates(p) == ["a dog", "a cat"]
    err = error_of(load_candidates, write(tmp_path, "d.txt", "a\nb\na\n"))
    assert err.row == 3 and "first on line 1" in str(err)
    assert "no candidate" in str(error_of(load_candidates, write(tmp_path, "e.txt", "# x\n")))
    assert "not UTF-8" in str(error_of(load_candidates, write(tmp_path, "f.txt", b"\xff\n")))


def test_example_configs():
    assert load_scenario(EXAMPLES / "scenario.yaml") == Scenario()
    paper = load_scenario(EXAMPLES / "paper_cycle.yaml")
    assert paper.device_model == "cycles" and paper.max_groups == 2
    assert (
        paper.total_steps,
        paper.common_steps_max,
        paper.edge_steps_min,
        paper.edge_steps_max,
    ) == (28, 13, 0, 16)
    assert (
        paper.device_cycles_per_step,
        paper.device_freq_min_hz,
        paper.device_freq_max_hz,
        paper.device_kappa,
    ) == (14e6, 1.4e9, 1.6e9, 1e-27)
    assert (
        paper.height,
        paper.width,
        paper.latent_channels,
        paper.latent_bits_per_value,
        paper.latent_compression,
    ) == (1024, 1024, 16, 16, 1.0)
    (es,) = load_servers(None, paper)
    assert es.profile == CycleProfile(cycles_per_step=15e6, freq_hz=2e9, kappa=1e-27)
    assert load_servers(EXAMPLES / "servers_paper.csv")[0].profile == es.profile
    assert len(load_users(EXAMPLES / "users.csv", paper)) == 50


def test_paper_users_are_the_example_users_without_overrides():
    full = load_users(EXAMPLES / "users.csv")
    paper = load_users(EXAMPLES / "users_paper.csv", load_scenario(EXAMPLES / "paper_cycle.yaml"))
    cols = ["user_id", "prompt", "negative_prompt", "subject"]
    assert paper[cols].equals(full[cols])
    assert paper["deadline_s"].isna().all() and paper["min_quality"].isna().all()
    assert paper["bandwidth_hz"].eq(Scenario().bandwidth_hz).all()


# ---------------------------------------------------------------- malformed files via the CLI


@pytest.fixture
def solve_argv(tmp_path, monkeypatch) -> list[str]:
    monkeypatch.chdir(tmp_path)
    return solve_folder(tmp_path)


@pytest.mark.parametrize(
    ("name", "text", "line"),
    [
        ("c.yaml", "height: 1000\n", "c.yaml: field 'height': must be a positive multiple of 16"),
        (
            "c.yaml",
            "common_steps_min: 5\ncommon_steps_max: 3\n",
            "c.yaml: field 'common_steps_min': 5 exceeds common_steps_max = 3",
        ),
        ("c.yaml", "min_share_similarity: 1.5\n", "field 'min_share_similarity': must be <= 1"),
        ("c.yaml", "w_delay: .inf\n", "c.yaml: field 'w_delay': must be a finite number"),
        ("c.yaml", "handoff: pixels\n", "must be 'latent' or 'embeddings', got 'pixels'"),
        ("c.toml", "total_steps = 2.5\n", "c.toml: field 'total_steps': must be a valid integer, got 2.5"),
        ("c.yaml", "colour: red\n", "field 'colour': unknown scenario field; known: total_steps,"),
    ],
)
def test_malformed_scenario_exits_2_and_changes_nothing(
    tmp_path, solve_argv, capsys, name, text, line
):
    write(tmp_path, name, text)
    message = refused([*solve_argv, "--config", name], tmp_path, capsys)
    assert f"his-opt: error: {name}: " in message and line in message


@pytest.mark.parametrize(
    ("name", "text", "line"),
    [
        (
            "s.csv",
            "name,profile,budget_s\nes1,cycle,-5\n",
            "s.csv: row 1: field 'budget_s': must be non-negative, got '-5' (line 2)",
        ),
        (
            "s.yaml",
            "- {name: a, profile: cycle}\n- {name: b, profile: cycle, max_batch_images: 0}\n",
            "s.yaml: row 2: field 'max_batch_images': must be >= 1, got 0",
        ),
        (
            "s.yaml",
            "servers:\n  - {name: a, profile: cycle, colour: red}\n",
            "s.yaml: row 1: field 'colour': unknown key; known: name, profile, budget_s,",
        ),
        ("s.yaml", "- {name: a, profile: cycle, kappa: 0}\n", "field 'kappa': must be positive"),
    ],
)
def test_malformed_servers_exit_2_and_change_nothing(tmp_path, solve_argv, capsys, name, text, line):
    write(tmp_path, name, text)
    assert line in refused([*solve_argv, "--servers", name], tmp_path, capsys)


def test_scenario_in_python_raises_a_concise_value_error():
    with pytest.raises(ValueError, match=r"^scenario field 'width': must be a positive multiple"):
        Scenario(width=100)
    with pytest.raises(ValueError, match=r"^scenario field 'edge_steps_min': 9 exceeds edge_st"):
        Scenario(edge_steps_min=9, edge_steps_max=4)
    assert Scenario(w_quality=50).w_quality == 50.0 and isinstance(Scenario().w_energy, float)
