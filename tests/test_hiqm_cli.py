"""``his-opt fit-hiqm``: writes JSON + PNG reproducibly; bad input writes nothing."""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from his_opt.cli import run_parsed
from his_opt.cli._hiqm import _FORMS, add_fit_hiqm_parser, fit_hiqm_main
from his_opt.hiqm import CANDIDATE_FORMS, HIQM, shifted_logistic

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared/reference/hiqm_sd3_medium_clip.csv"


def synthetic_images(rng: np.random.Generator) -> pd.DataFrame:
    """Per-image rows: 4 similarity bins x 2 prompt pairs x 28 steps x 3 seeds, T = 28."""
    rows = []
    for centre in (0.2, 0.4, 0.6, 0.8):
        for _pair in range(2):
            s = centre + rng.uniform(-0.04, 0.04)
            for x in range(28):
                q = shifted_logistic(x, 0.25 - 0.15 * centre, 0.25, 15.0, 0.07 + 0.2 * centre)
                for seed in range(3):
                    rows.append(("sim_npi", s, x, float(q) + rng.normal(0, 0.002), seed, 28))
    columns = ["variant", "similarity", "common_steps", "clip_alignment", "seed", "total_steps"]
    return pd.DataFrame(rows, columns=columns)


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="his-opt")
    add_fit_hiqm_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["fit-hiqm", *argv])
    return run_parsed(args)


def test_form_choices_match_library():
    assert ("auto", *CANDIDATE_FORMS) == _FORMS
    parser = argparse.ArgumentParser()
    add_fit_hiqm_parser(parser.add_subparsers())
    assert parser.parse_args(["fit-hiqm", "d.csv", "--out", "o.json"]).func is fit_hiqm_main


def test_cli_writes_model_and_plot(tmp_path, capsys):
    data = tmp_path / "images.csv"
    synthetic_images(np.random.default_rng(0)).to_csv(data, index=False)
    out, png = tmp_path / "m" / "sim_npi.json", tmp_path / "m" / "sim_npi.png"
    assert run([str(data), "--out", str(out), "--plot", str(png), "--citation", "me"]) == 0
    printed = capsys.readouterr().out
    assert "per-bin logistic fit" in printed and "LOBO" in printed
    model = HIQM.load(out)
    prov = model.provenance
    assert prov["source"] == {
        "file": "images.csv",
        "sha256": hashlib.sha256(data.read_bytes()).hexdigest(),
        "rows": 4 * 2 * 28 * 3,
    }
    assert prov["citation"] == "me" and prov["date"]
    argv = shlex.split(prov["command"])
    assert argv[:3] == ["his-opt", "fit-hiqm", str(data)]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in out.parent.iterdir()) == ["sim_npi.json", "sim_npi.png"]
    # The recorded command reproduces the file (apart from the date).
    out.unlink()
    assert run(argv[2:]) == 0
    again = HIQM.load(out)
    assert again.params == model.params and again.metrics == model.metrics


@pytest.mark.parametrize(
    "case",
    ["missing column", "mixed steps", "missing file", "unknown variant", "out is input"],
)
def test_cli_bad_input_writes_nothing(tmp_path, capsys, case):
    frame = synthetic_images(np.random.default_rng(1))
    data = tmp_path / "q.csv"
    out = tmp_path / "out" / "m.json"
    png = tmp_path / "out" / "m.png"
    extra: list[str] = []
    if case == "missing column":
        frame = frame.drop(columns=["clip_alignment"])
    elif case == "mixed steps":
        frame.loc[0, "total_steps"] = 50
    elif case == "unknown variant":
        extra = ["--variant", "plain"]
    if case != "missing file":
        frame.to_csv(data, index=False)
    if case == "out is input":
        out = data
    before = data.read_bytes() if data.exists() else None
    assert run([str(data), "--out", str(out), "--plot", str(png), *extra]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and str(data) in err and "\n" not in err.strip()
    assert not (tmp_path / "out").exists()
    assert (data.read_bytes() if data.exists() else None) == before


def test_shipped_files_came_from_this_command():
    if not REFERENCE.is_file():
        pytest.skip(f"reference data not found at {REFERENCE}")
    repo = Path(__file__).resolve().parents[1]
    for variant in ("plain", "sim_npi"):
        doc = json.loads((repo / "his_opt" / "data" / "models" / "hiqm" / f"{variant}.json").read_text())
        argv = shlex.split(doc["provenance"]["command"])
        assert argv[2] == "../shared/reference/hiqm_sd3_medium_clip.csv"
        assert argv[argv.index("--out") + 1] == f"his_opt/data/models/hiqm/{variant}.json"
        assert argv[argv.index("--variant") + 1] == variant
        assert (repo / "his_opt" / "data" / "models" / "hiqm" / f"{variant}.png").is_file()
