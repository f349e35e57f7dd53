"""HIQM model: monotone/continuous properties, prediction, JSON validation and round trip."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from his_opt._errors import InputError
from his_opt.hiqm import HIQM, HIQM_SCHEMA, default_hiqm_path, load_default_hiqm

REPO = Path(__file__).resolve().parents[1]
SHIPPED = {v: HIQM.load(REPO / "his_opt" / "data" / "models" / "hiqm" / f"{v}.json") for v in ("plain", "sim_npi")}
POLY = HIQM(
    variant="test",
    total_steps=28,
    form="poly",
    params={
        "degree": 2,
        "log_L": [-1.0, -0.5, -1.2],
        "log_K": [-1.5, 0.3, -0.4],
        "B": [16.0, 1.0, -2.0],
        "D": [0.03, 0.2, 0.1],
    },
    similarity_range=(0.2, 0.7),
)
MODELS = {**SHIPPED, "poly": POLY}

unit = st.floats(0.0, 1.0, allow_nan=False)
steps = st.floats(0.0, 27.0, allow_nan=False)


@pytest.mark.parametrize("name", list(MODELS))
@settings(max_examples=150, deadline=None)
@given(s=unit, x1=steps, x2=steps)
def test_non_increasing_in_common_steps(name, s, x1, x2):
    lo, hi = sorted((x1, x2))
    model = MODELS[name]
    assert model.predict(s, lo) >= model.predict(s, hi) - 1e-12


@pytest.mark.parametrize("name", list(MODELS))
@settings(max_examples=150, deadline=None)
@given(s=st.floats(0.0, 1.0 - 1e-6, allow_nan=False), x=steps)
def test_continuous_in_similarity(name, s, x):
    model = MODELS[name]
    step = model.predict(s + 1e-6, x) - model.predict(s, x)
    assert abs(step) <= 1e-5  # Lipschitz-like: a 1e-6 change in s moves Q by < 1e-5


@pytest.mark.parametrize("name", list(SHIPPED))
def test_shipped_models_match_their_bin_curves(name):
    model = SHIPPED[name]
    assert model.total_steps == 28
    x = np.arange(28)
    for b in model.metrics["bin_fits"]:
        curve = b["L"] / (1 + np.exp(b["K"] * (x - b["B"]))) + b["D"]
        np.testing.assert_allclose(model.predict(b["similarity"], x), curve, atol=1e-12)
        assert b["r2"] >= 0.996
    assert all(row["r2"] >= 0.99 for row in model.metrics["model"])


def test_extrapolation_policies():
    plain, sim_npi = SHIPPED["plain"], SHIPPED["sim_npi"]
    x = np.arange(28)
    for model in (plain, sim_npi):
        lo, hi = model.similarity_range
        np.testing.assert_array_equal(model.predict(0.0, x), model.predict(lo, x))
        np.testing.assert_array_equal(model.predict(-0.3, x), model.predict(lo, x))
    # sim_npi clamps above the largest bin; plain rises to a flat curve at s = 1.
    np.testing.assert_array_equal(sim_npi.predict(1.0, x), sim_npi.predict(0.7, x))
    flat = plain.predict(1.0, x)
    np.testing.assert_allclose(flat, plain.predict(0.7, 0), rtol=0, atol=1e-12)
    assert np.all(plain.predict(0.85, x) >= plain.predict(0.7, x) - 1e-12)


def test_predict_broadcasts_and_validates():
    model = SHIPPED["sim_npi"]
    s = np.linspace(0, 1, 5000)[:, None]
    x = np.arange(14)[None, :]
    q = model.predict(s, x)
    assert q.shape == (5000, 14) and np.all(np.isfinite(q))
    full = model.predict(np.broadcast_to(s, q.shape), np.broadcast_to(x, q.shape))
    np.testing.assert_array_equal(q, full)
    np.testing.assert_array_equal(q[1234], model.predict(s[1234, 0], np.arange(14)))
    assert model.predict(0.5, 3.5).shape == ()
    for bad_s, bad_x in ((0.5, -1), (0.5, 28), (np.nan, 3), (1.5, 3), (0.5, np.inf)):
        with pytest.raises(ValueError):
            model.predict(bad_s, bad_x)


def test_default_model_location_and_env_override(tmp_path, monkeypatch):
    assert default_hiqm_path() == REPO / "his_opt" / "data" / "models" / "hiqm" / "sim_npi.json"
    assert load_default_hiqm().variant == "sim_npi"
    assert load_default_hiqm("plain").variant == "plain"
    (tmp_path / "hiqm").mkdir()
    SHIPPED["plain"].save(tmp_path / "hiqm" / "sim_npi.json")
    monkeypatch.setenv("HIS_OPT_MODELS", str(tmp_path))
    assert load_default_hiqm().variant == "plain"
    with pytest.raises(InputError, match="file not found"):
        load_default_hiqm("nope")
    with pytest.raises(ValueError):
        default_hiqm_path("../x")


def test_save_load_round_trip(tmp_path):
    for model in MODELS.values():
        path = tmp_path / f"{model.variant}.json"
        model.save(path)
        again = HIQM.load(path)
        assert again == model
        assert again.to_dict() == model.to_dict()
        np.testing.assert_array_equal(
            again.predict(0.43, np.arange(28)), model.predict(0.43, np.arange(28))
        )
    assert json.loads(path.read_text())["schema"] == HIQM_SCHEMA


def _write(tmp_path: Path, data) -> Path:
    path = tmp_path / "bad.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def _mutations():
    def drop(key):
        def f(d):
            del d[key]

        return f

    def set_(path, value):
        def f(d):
            target = d
            for k in path[:-1]:
                target = target[k]
            target[path[-1]] = value

        return f

    return {
        "missing total_steps": (drop("total_steps"), "total_steps"),
        "missing params": (drop("params"), "params"),
        "missing provenance": (drop("provenance"), "provenance"),
        "wrong schema": (set_(["schema"], "his-opt/hiqm/0"), "schema"),
        "nan knot": (set_(["params", "knots", 1, "B"], float("nan")), "params.knots[1].B"),
        "inf metric": (set_(["metrics", "model_min_r2"], float("inf")), "metrics.model_min_r2"),
        "negative K": (set_(["params", "knots", 2, "K"], -0.2), "params.knots[2]"),
        "negative L": (set_(["params", "knots", 0, "L"], -0.2), "params.knots[0]"),
        "unsorted knots": (set_(["params", "knots", 1, "similarity"], 0.9), "params.knots"),
        "bad form": (set_(["form"], "spline"), "form"),
        "bool steps": (set_(["total_steps"], True), "total_steps"),
        "bad range": (set_(["similarity_range"], [0.2]), "similarity_range"),
        "anchor without policy": (set_(["extrapolation", "above"], "clamp"), "params.anchor"),
    }


@pytest.mark.parametrize("case", list(_mutations()))
def test_load_rejects_bad_files(tmp_path, case):
    mutate, field = _mutations()[case]
    data = copy.deepcopy(SHIPPED["plain"].to_dict())
    mutate(data)
    path = _write(tmp_path, data)
    with pytest.raises(InputError) as err:
        HIQM.load(path)
    assert err.value.file == str(path)
    assert err.value.field == field, str(err.value)
    assert str(path) in str(err.value)


def test_load_rejects_non_json_and_non_object(tmp_path):
    for text in ("{not json", "[1, 2]"):
        path = _write(tmp_path, text)
        with pytest.raises(InputError) as err:
            HIQM.load(path)
        assert err.value.file == str(path)
    with pytest.raises(InputError, match="file not found"):
        HIQM.load(tmp_path / "missing.json")


def test_poly_with_anchor_policy_rejected():
    with pytest.raises(ValueError, match="extrapolation.above"):
        HIQM(
            variant="x",
            total_steps=28,
            form="poly",
            params=POLY.params,
            similarity_range=(0.2, 0.7),
            extrapolation={"below": "clamp", "above": "identical_anchor"},
        )


@pytest.mark.parametrize("variant", ["plain", "sim_npi"])
def test_sharing_never_predicts_a_gain_over_the_unshared_quality(variant: str) -> None:
    model = load_default_hiqm(variant)
    unshared = model.unshared_quality()
    sims = np.linspace(0.0, 1.0, 201)[:, None]
    shared = model.predict(sims, np.arange(1, model.total_steps)[None, :])
    assert shared.max() <= unshared
    assert unshared == pytest.approx(model.predict(sims, 0).max())
