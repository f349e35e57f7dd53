"""The package as a user installs it: a wheel holding its data, solving from another folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

import his_opt
from his_opt.resources import example_path, find_model, known_models, model_dirs, shipped_dir

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = (
    "his_opt/data/models/hiqm/sim_npi.json",
    "his_opt/data/models/hiqm/plain.json",
    "his_opt/data/models/gpu/sd3-medium-1024-fp16-a100-estimate.json",
    "his_opt/data/examples/users.csv",
    "his_opt/data/examples/users_small_similarity.csv",
    "his_opt/data/sweeps/tiny_test.yaml",
    "his_opt/data/schemas/plan-1.json",
)


def _pip(*args: str, cwd: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check", *args],
        cwd=cwd, check=True, capture_output=True, timeout=300,
    )  # fmt: skip


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Build the wheel from a copy of the sources (so the checkout stays clean) and install it
    with ``pip install --target`` into a fresh folder; the venv's dependencies are reused."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "his_opt", src / "his_opt", ignore=shutil.ignore_patterns("__pycache__"))
    _pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"), str(src), cwd=tmp)
    (wheel,) = (tmp / "dist").glob("his_opt-*.whl")
    site = tmp / "site"
    _pip("install", "--no-deps", "--no-compile", "--target", str(site), str(wheel), cwd=tmp)
    return wheel, site


def test_wheel_holds_the_package_data(installed):
    wheel, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [n for n in SHIPPED if n not in names]
    assert not missing
    assert not [n for n in names if n.startswith(("models/", "examples/", "tests/"))]


def test_installed_wheel_solves_a_shipped_example_from_another_folder(installed, tmp_path):
    _, site = installed
    env = {k: v for k, v in os.environ.items() if k not in ("HIS_OPT_MODELS", "PYTHONPATH")}
    env["PYTHONPATH"] = str(site)

    def his_opt_cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "his_opt", *args],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip

    before = sorted(p.relative_to(site) for p in site.rglob("*") if "__pycache__" not in p.parts)
    assert his_opt_cli("--version").stdout.strip() == f"his-opt {his_opt.__version__}"
    copied = his_opt_cli("examples", "ex")
    assert copied.returncode == 0, copied.stderr
    run = his_opt_cli(
        "solve", "ex/users_small.csv", "--similarity", "ex/users_small_similarity.csv",
        "--out", "out/report.xlsx", "--time-limit", "20", "--quiet",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    plan = json.loads((tmp_path / "out" / "plan.json").read_text())
    hiqm_file = Path(plan["provenance"]["inputs"]["hiqm"]["file"])
    assert hiqm_file.is_relative_to(site)  # the shipped default, read from the installed package
    assert (tmp_path / "out" / "report.xlsx").stat().st_size > 0
    assert his_opt_cli("validate", "out/plan.json").returncode == 0
    after = sorted(p.relative_to(site) for p in site.rglob("*") if "__pycache__" not in p.parts)
    assert after == before  # nothing was written into the installed package


def test_version_matches_pyproject():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert his_opt.__version__ == meta["project"]["version"]
    assert "ray" in meta["project"]["optional-dependencies"]
    assert not [d for d in meta["project"]["dependencies"] if d.startswith("ray")]


def test_user_models_folder_adds_to_the_shipped_ones(tmp_path, monkeypatch):
    (tmp_path / "gpu").mkdir()
    data = json.loads((shipped_dir("models", "gpu") / "sd3-medium-1024-fp16-a100-estimate.json").read_text())
    (tmp_path / "gpu" / "mine.json").write_text(json.dumps({**data, "name": "mine"}))
    monkeypatch.setenv("HIS_OPT_MODELS", str(tmp_path))
    assert model_dirs("gpu")[0] == tmp_path / "gpu"
    assert {"mine", "sd3-medium-1024-fp16-a100-estimate"} <= set(known_models("gpu"))
    assert find_model("gpu", "mine") == tmp_path / "gpu" / "mine.json"
    assert find_model("hiqm", "sim_npi") == shipped_dir("models", "hiqm") / "sim_npi.json"
    with pytest.raises(ValueError):
        find_model("gpu", "../x")


def test_python_dash_m_his_opt_and_examples_paths():
    assert example_path("users.csv").is_file()
    proc = subprocess.run(
        [sys.executable, "-m", "his_opt", "--help"],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0 and "validate" in proc.stdout and "schema" in proc.stdout


def test_ray_missing_is_one_line(monkeypatch):
    from his_opt._errors import InputError
    from his_opt.profiling._ray import connect_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(InputError, match=r"pip install 'his-opt\[ray\]'"):
        connect_ray("local")
