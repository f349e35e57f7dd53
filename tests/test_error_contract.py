"""One error contract for every subcommand: bad input is one line ``his-opt: error: ...``, exit
code 2, no traceback, and every file that existed before the run is byte for byte unchanged."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from _contract import refused

from his_opt.cli import main
from his_opt.resources import example_path, shipped_dir

ROOT = Path(__file__).resolve().parents[1]
SIM = "users_small_similarity.csv"
HIQM = shipped_dir("models", "hiqm") / "sim_npi.json"
PROFILE = shipped_dir("models", "gpu") / "sd3-medium-1024-fp16-a100-estimate.json"


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with the small example, its similarities, and an old report/plan pair."""
    monkeypatch.chdir(tmp_path)
    for name in ("users_small.csv", SIM):
        shutil.copyfile(example_path(name), tmp_path / name)
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "report.xlsx").write_bytes(b"old report, not a workbook")
    (tmp_path / "old" / "plan.json").write_text('{"old": true}')
    return tmp_path


def solve_args(*extra: str) -> list[str]:
    return ["solve", "users_small.csv", "--similarity", SIM, "--out", "old/report.xlsx",
            "--plan", "old/plan.json", *extra]  # fmt: skip


def users_with(work: Path, row: str) -> str:
    text = (work / "users_small.csv").read_text(encoding="utf-8").rstrip("\n") + "\n" + row + "\n"
    (work / "bad_users.csv").write_text(text, encoding="utf-8")
    return "bad_users.csv"


def json_file(work: Path, name: str, doc: dict) -> str:
    (work / name).write_text(json.dumps(doc), encoding="utf-8")
    return name


def hiqm_with(work: Path, change: Callable[[dict], None]) -> str:
    doc = json.loads(HIQM.read_text())
    change(doc)
    return json_file(work, "bad_hiqm.json", doc)


def profile_with(work: Path, **changes: object) -> str:
    doc = {**json.loads(PROFILE.read_text()), **changes}
    if "rows" in changes and "step_latency_s" not in changes:
        doc["step_latency_s"] = [0.1 * (i + 1) for i in range(len(doc["rows"]))]
    json_file(work, "bad_profile.json", doc)
    (work / "bad_servers.csv").write_text("name,profile,budget_s\nes1,bad_profile.json,60\n")
    return "bad_servers.csv"


def solved_plan(work: Path) -> dict:
    assert main(["solve", "users_small.csv", "--similarity", SIM, "--out", "ok/r.xlsx", "--plan",
                 "ok/p.json", "--quiet", "--time-limit", "10"]) == 0  # fmt: skip
    return json.loads((work / "ok" / "p.json").read_text())


def noise_quality_csv(work: Path) -> str:
    rng = np.random.default_rng(0)
    lines = ["variant,similarity,common_steps,clip_alignment"]
    for s in (0.2, 0.3, 0.5, 0.7):
        lines += [f"sim_npi,{s},{x},{0.3 + rng.normal(0, 0.02):.5f}" for x in range(28)]
    (work / "noise.csv").write_text("\n".join(lines) + "\n")
    return "noise.csv"


def plan_edited(work: Path, change: Callable[[dict], None]) -> str:
    doc = solved_plan(work)
    change(doc)
    return json_file(work, "edited_plan.json", doc)


def device_step_users(work: Path) -> list[str]:
    users = users_with(work, "z9,a cat on a mat,,cat,,")
    path = work / users
    lines = path.read_text().splitlines()
    lines[0] += ",device_step_s"
    lines[1:] = [line + ("," if i < len(lines) - 2 else ",1e308") for i, line in enumerate(lines[1:])]
    path.write_text("\n".join(lines) + "\n")
    return ["solve", users, *solve_args()[2:]]


# Each case builds its arguments in the work folder and names words the one line must hold.
CASES: dict[str, tuple[Callable[[Path], list[str]], str]] = {
    "NUL in a prompt": (
        lambda w: ["solve", users_with(w, "z9,a cat\x00on a mat,,cat,,"), *solve_args()[2:]],
        "NUL",
    ),
    "control character in a prompt": (
        lambda w: ["solve", users_with(w, "z9,a cat\x07 on a mat,,cat,,"), *solve_args()[2:]],
        "field 'prompt': contains control character",
    ),
    "control character in a candidate": (
        lambda w: (w / "c.txt").write_text("a cat\x1b[31m\n") and solve_args("--candidates", "c.txt"),
        "c.txt: row 1: field 'prompt'",
    ),
    "output is a directory": (
        lambda w: ["solve", "users_small.csv", "--similarity", SIM, "--out", "old",
                   "--plan", "old/plan.json"],  # fmt: skip
        "the report must be an .xlsx file",
    ),
    "plan is a directory": (
        lambda w: ["solve", "users_small.csv", "--similarity", SIM, "--out", "old/report.xlsx",
                   "--plan", "old"],  # fmt: skip
        "field '--plan': is a directory",
    ),
    "output below a file": (
        lambda w: ["solve", "users_small.csv", "--similarity", SIM, "--out",
                   "old/plan.json/r.xlsx", "--plan", "old/p2.json"],  # fmt: skip
        "is a file, not a folder",
    ),
    "config is a directory": (
        lambda w: solve_args("--config", "old"),
        "old: is a directory, not a file",
    ),
    "profile is a directory": (
        lambda w: (w / "s.csv").write_text("name,profile,budget_s\nes1,old/,60\n")
        and solve_args("--servers", "s.csv"),
        "is a directory",
    ),
    "device_step_s 1e308": (
        lambda w: device_step_users(w),
        "field 'device_step_s': must be at most 3600",
    ),
    "user id ../../evil": (
        lambda w: ["solve", users_with(w, "../../evil,a cat on a mat,,cat,,"), *solve_args()[2:]],
        "field 'user_id': user id '../../evil' is not safe as a file name",
    ),
    "HIQM predicts 322474": (
        lambda w: solve_args(
            "--hiqm", hiqm_with(w, lambda d: d["params"]["knots"][0].update(D=322474.0))
        ),
        "outside [0, 1]",
    ),
    "HIQM predicts negative quality": (
        lambda w: solve_args(
            "--hiqm", hiqm_with(w, lambda d: d["params"]["knots"][0].update(D=-0.5))
        ),
        "outside [0, 1]",
    ),
    "height 0": (
        lambda w: (w / "c.yaml").write_text("height: 0\n") and solve_args("--config", "c.yaml"),
        "field 'height': must be a positive multiple of 16",
    ),
    "fractional profile rows": (
        lambda w: solve_args("--servers", profile_with(w, rows=[1, 2.5, 4, 8, 16, 32])),
        "valid integer",
    ),
    "5,000-entry profile": (
        lambda w: solve_args("--servers", profile_with(w, rows=list(range(1, 5001)))),
        "at most 4096",
    ),
    "profile at 64 px for a 1024 px scenario": (
        lambda w: solve_args("--servers", profile_with(w, resolution=64, device="cpu")),
        "measured at 64 px but the scenario generates 1024x1024",
    ),
    "guidance not the model's": (
        lambda w: (w / "g.yaml").write_text("public_guidance_scale: 3.5\n")
        and solve_args("--config", "g.yaml"),
        "fitted_at.public_guidance_scale",
    ),
    "similarity out of [-1, 1]": (
        lambda w: (w / "s.csv").write_text(
            (w / SIM).read_text().replace("1.0000", "1.5000", 1)
        )
        and ["solve", "users_small.csv", "--similarity", "s.csv", *solve_args()[4:]],
        "a cosine lies in [-1, 1]",
    ),
    "both outputs on stdout": (
        lambda w: ["solve", "users_small.csv", "--similarity", SIM, "--out", "-", "--plan", "-"],
        "cannot both be '-'",
    ),
    "similarity: NUL in prompts": (
        lambda w: (w / "p.txt").write_bytes(b"a cat\x00\n") and ["similarity", "p.txt"],
        "p.txt: row 1: field 'prompt': contains control character",
    ),
    "similarity: bad --model": (
        lambda w: ["similarity", "old/plan.json", "--model", "/no/such/model"],
        "field '--model'",
    ),
    "similarity: bad --device": (
        lambda w: (w / "p.txt").write_text("a cat\n") and ["similarity", "p.txt", "--device", "gpu9"],
        "--device: not a torch device",
    ),
    "similarity: --out a directory": (
        lambda w: (w / "p.txt").write_text("a cat\n") and ["similarity", "p.txt", "--out", "old"],
        "field '--out': is a directory",
    ),
    "fit-hiqm: R^2 ~ 0": (
        lambda w: ["fit-hiqm", noise_quality_csv(w), "--out", "old/plan.json", "--form", "interp"],
        "the fit explains too little",
    ),
    "fit-hiqm: --out below a file": (
        lambda w: ["fit-hiqm", noise_quality_csv(w), "--out", "old/plan.json/m.json"],
        "is a file, not a folder",
    ),
    "generate: wrong-type plan field": (
        lambda w: ["generate", plan_edited(w, lambda d: d["users"][0].update(edge_steps="4")),
                   "--model", "no-such-model", "--out", "imgs"],  # fmt: skip
        "row 1: field 'users.edge_steps': '4' is not of type 'integer'",
    ),
    "generate: bad --device": (
        lambda w: ["generate", plan_edited(w, lambda d: None), "--model", "no-such-model",
                   "--out", "imgs", "--device", "tpu:7"],  # fmt: skip
        "--device",
    ),
    "validate: x + y + z != T": (
        lambda w: ["validate", plan_edited(w, lambda d: d["users"][0].update(
            device_steps=d["users"][0]["device_steps"] + 1))],  # fmt: skip
        "common + edge + device steps != total_steps = 28",
    ),
    "profile-gpu: --out a directory": (
        lambda w: ["profile-gpu", "--arch", "test", "--out", "old"],
        "field '--out': is a directory",
    ),
    "profile-quality: --out is not a dataset": (
        lambda w: ["profile-quality", str(shipped_dir("sweeps") / "tiny_test.yaml"), "--out",
                   "old/plan.json", "--model", "x", "--clip-model", "y"],  # fmt: skip
        "not a profile-quality dataset",
    ),
    "profile-quality: sweep height not a multiple of 16": (
        lambda w: (w / "sw.yaml").write_text(
            (shipped_dir("sweeps") / "tiny_test.yaml").read_text() + "\nheight: 1000\n"
        )
        and ["profile-quality", "sw.yaml", "--out", "q.csv", "--dry-run"],
        "multiple of 16",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_exit_2_and_nothing_changes(work, capsys, case):
    build, words = CASES[case]
    line = refused(build(work), work, capsys)
    assert words in line, line


def test_profile_quality_refusal_keeps_a_file_without_newline(work, capsys):
    (work / "notes.txt").write_bytes(b"no newline at the end")
    argv = ["profile-quality", str(shipped_dir("sweeps") / "tiny_test.yaml"), "--out",
            "notes.txt", "--model", "x", "--clip-model", "y"]  # fmt: skip
    assert main(argv) == 2
    assert (work / "notes.txt").read_bytes() == b"no newline at the end"


def test_subprocess_never_prints_a_traceback(work):
    """The console entry point as a user runs it: a bad input ends in one line, exit 2."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "his_opt", "solve", "users_small.csv", "--config", "old"],
        cwd=work, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("his-opt: error: old: is a directory")


def test_unexpected_failure_is_one_line_exit_3(monkeypatch, capsys, work):
    """A bug still keeps the contract: one line, exit 3, no traceback (unless --verbose)."""
    import his_opt.cli._plan as plan_cli

    def boom(args):
        raise KeyError("boom")

    monkeypatch.setattr(plan_cli, "validate_main", boom)
    assert main(["validate", "old/plan.json"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unexpected KeyError" in err and "Traceback" not in err
