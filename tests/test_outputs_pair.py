"""Outputs: written as a pair or not at all, no temporaries left, ``-`` for stdout, the schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from his_opt._atomic import atomic_paths
from his_opt.cli import main
from his_opt.resources import example_path, shipped_dir

ROOT = Path(__file__).resolve().parents[1]


def test_a_failure_inside_leaves_old_files_and_no_temporaries(tmp_path):
    a, b = tmp_path / "r.xlsx", tmp_path / "p.json"
    a.write_bytes(b"old a")
    b.write_bytes(b"old b")
    with pytest.raises(RuntimeError), atomic_paths(a, b) as (ta, tb):
        ta.write_bytes(b"new a")
        tb.write_bytes(b"new b")
        raise RuntimeError("killed before the renames")
    assert a.read_bytes() == b"old a" and b.read_bytes() == b"old b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.json", "r.xlsx"]
    with atomic_paths(a, b) as (ta, tb):
        ta.write_bytes(b"new a")
        tb.write_bytes(b"new b")
    assert a.read_bytes() == b"new a" and b.read_bytes() == b"new b"


def test_sigterm_mid_write_leaves_nothing_behind(tmp_path):
    """SIGTERM under the CLI's handler unwinds the write: old pair intact, no ``.part`` file."""
    code = (
        "import os, signal\n"
        "from his_opt._atomic import atomic_paths\n"
        "from his_opt.cli import _terminate\n"
        "signal.signal(signal.SIGTERM, _terminate)\n"
        "with atomic_paths('r.xlsx', 'p.json') as (ta, tb):\n"
        "    ta.write_bytes(b'new a')\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    tb.write_bytes(b'new b')\n"
    )
    (tmp_path / "r.xlsx").write_bytes(b"old a")
    (tmp_path / "p.json").write_bytes(b"old b")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert proc.returncode == 128 + 15
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.json", "r.xlsx"]
    assert (tmp_path / "r.xlsx").read_bytes() == b"old a"


def test_a_temporary_left_by_a_dead_process_is_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    stale = tmp_path / f".p.json.{dead}.abc.part"
    alive = tmp_path / f".p.json.{os.getppid()}.abc.part"
    stale.write_text("x")
    alive.write_text("y")
    with atomic_paths(tmp_path / "p.json") as (tmp,):
        tmp.write_text("{}")
    assert not stale.exists() and alive.exists()


def test_plan_dash_prints_the_plan_on_stdout(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = main(["solve", str(example_path("users_small.csv")), "--similarity",
                 str(example_path("users_small_similarity.csv")), "--out", "r.xlsx", "--plan", "-",
                 "--quiet", "--time-limit", "20"])  # fmt: skip
    out = capsys.readouterr()
    assert code == 0
    doc = json.loads(out.out)
    assert doc["schema"] == "his-opt/plan/1" and "status" in out.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.xlsx"]  # no file named '-'


def test_schema_plan_prints_the_shipped_schema(capsys):
    jsonschema = pytest.importorskip("jsonschema")
    assert main(["schema", "plan"]) == 0
    text = capsys.readouterr().out
    assert text == (shipped_dir("schemas") / "plan-1.json").read_text()
    schema = json.loads(text)
    jsonschema.Draft202012Validator.check_schema(schema)
    model = schema["properties"]["model"]
    assert "model" not in schema["required"]
    assert set(model["properties"]) == {"id", "dtype", "variant", "guidance_public", "guidance_personal"}


def test_optional_model_object_in_the_plan(tmp_path, monkeypatch, capsys):
    from his_opt._errors import InputError
    from his_opt.plan import validate_plan

    monkeypatch.chdir(tmp_path)
    assert main(["solve", str(example_path("users_small.csv")), "--similarity",
                 str(example_path("users_small_similarity.csv")), "--out", "r.xlsx",
                 "--quiet", "--time-limit", "20"]) == 0  # fmt: skip
    doc = json.loads((tmp_path / "plan.json").read_text())
    doc["model"] = {"id": "stabilityai/stable-diffusion-3-medium-diffusers", "dtype": "float16",
                    "variant": "sim_npi", "guidance_public": 2.0, "guidance_personal": 8.0}  # fmt: skip
    validate_plan(doc)
    doc["model"]["dtype"] = "float8"
    with pytest.raises(InputError, match="field 'model.dtype'"):
        validate_plan(doc)


def test_a_model_without_fitted_at_is_recorded_in_the_plan(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    hiqm = json.loads((shipped_dir("models", "hiqm") / "sim_npi.json").read_text())
    del hiqm["fitted_at"]
    (tmp_path / "h.json").write_text(json.dumps(hiqm))
    assert main(["solve", str(example_path("users_small.csv")), "--similarity",
                 str(example_path("users_small_similarity.csv")), "--hiqm", "h.json", "--out",
                 "r.xlsx", "--time-limit", "20"]) == 0  # fmt: skip
    assert "records no fitted_at" in capsys.readouterr().err
    warnings = json.loads((tmp_path / "plan.json").read_text())["provenance"]["consistency_warnings"]
    assert any("records no fitted_at" in w for w in warnings)


def test_quiet_silences_messages_and_library_progress_bars(tmp_path):
    (tmp_path / "p.txt").write_text("a cat on a sofa\na dog on a sofa\n")
    proc = subprocess.run(
        [sys.executable, "-m", "his_opt", "similarity", "p.txt", "--out", "s.csv", "-q"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert proc.returncode == 0 and proc.stderr == "" and proc.stdout == ""
    assert (tmp_path / "s.csv").read_text().startswith("prompt,0,1\n")
