"""HIQM fitting: per-bin logistic and continuous-model accuracy, LOBO, input validation."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from his_opt._errors import InputError
from his_opt.hiqm import (
    CANDIDATE_FORMS,
    HIQM,
    fit_bin_logistic,
    fit_hiqm,
    prepare_quality_table,
    shifted_logistic,
)

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent / "shared" / "reference" / "hiqm_sd3_medium_clip.csv"
VARIANTS = ("plain", "sim_npi")


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    if not REFERENCE.is_file():
        pytest.skip(f"reference data not found at {REFERENCE} (the shared/ sibling is absent)")
    return pd.read_csv(REFERENCE)


@pytest.fixture(scope="module")
def reference_fits(reference):
    return {v: fit_hiqm(reference, v, source=REFERENCE) for v in VARIANTS}


def synthetic_images(rng: np.random.Generator, total_steps: int = 28) -> pd.DataFrame:
    """Per-image profile rows: raw similarity around 4 bins, 3 seeds, true logistic + noise."""
    rows = []
    for centre in (0.2, 0.4, 0.6, 0.8):
        L, K, B, D = 0.25 - 0.15 * centre, 0.25, 15.0, 0.07 + 0.2 * centre
        for pair in range(2):
            s = centre + rng.uniform(-0.04, 0.04)
            for x in range(total_steps):
                for seed in range(3):
                    q = float(shifted_logistic(x, L, K, B, D)) + rng.normal(0, 0.002)
                    rows.append(
                        {
                            "variant": "sim_npi",
                            "similarity": s,
                            "common_steps": x,
                            "clip_alignment": q,
                            "seed": seed,
                            "pair": pair,
                            "total_steps": total_steps,
                        }
                    )
    return pd.DataFrame(rows)


@pytest.mark.parametrize("variant", VARIANTS)
def test_reference_per_bin_logistic_r2(reference_fits, variant):
    fit = reference_fits[variant]
    assert [b.similarity for b in fit.bin_fits] == [0.2, 0.3, 0.5, 0.7]
    for b in fit.bin_fits:
        assert b.r2 >= 0.996, (variant, b)
        assert b.rmse < 0.006
        assert b.L > 0 and b.K > 0


@pytest.mark.parametrize("variant", VARIANTS)
def test_reference_continuous_model_r2_and_lobo(reference, reference_fits, variant):
    fit = reference_fits[variant]
    model = fit.model
    data = reference[reference["variant"] == variant]
    for s, part in data.groupby("similarity"):
        y = part["clip_alignment"].to_numpy()
        yhat = model.predict(s, part["common_steps"].to_numpy())
        r2 = 1 - np.sum((y - yhat) ** 2) / np.sum((y - y.mean()) ** 2)
        assert r2 >= 0.99, (variant, s, r2)
    for name in CANDIDATE_FORMS:
        cand = fit.candidates[name]
        assert cand.skipped is None
        assert len(cand.lobo) == 4
        for score in cand.lobo:
            assert math.isfinite(score.rmse) and math.isfinite(score.max_abs)
            assert 0 < score.rmse <= score.max_abs < 0.1
    chosen = fit.candidates[fit.chosen]
    assert chosen.mean_lobo_rmse == min(
        c.mean_lobo_rmse for c in fit.candidates.values() if c.min_r2 >= 0.99
    )
    assert model.metrics["selection"]["chosen"] == fit.chosen
    assert "leave-one-bin-out" in model.metrics["selection"]["reason"]


def test_reference_inflection_moves_with_sim_npi(reference_fits):
    # The README's qualitative facts: SIM + NPI moves the inflection to about 16.5 steps.
    plain = [b.B for b in reference_fits["plain"].bin_fits]
    sim_npi = [b.B for b in reference_fits["sim_npi"].bin_fits]
    assert all(10 < b < 15 for b in plain)
    assert all(15.5 < b < 17.5 for b in sim_npi)


def test_plain_identical_anchor_beats_clamp_in_lobo(reference):
    anchored = fit_hiqm(reference, "plain", form="interp")
    clamped = fit_hiqm(reference, "plain", form="interp", identical_anchor=False)
    assert anchored.model.extrapolation["above"] == "identical_anchor"
    assert clamped.model.extrapolation["above"] == "clamp"
    top = lambda f: f.candidates["interp"].lobo[-1].rmse  # noqa: E731
    assert top(anchored) < 0.5 * top(clamped)


@pytest.mark.parametrize("variant", VARIANTS)
def test_shipped_models_reproduce_from_reference(reference, variant):
    shipped = HIQM.load(REPO / "his_opt" / "data" / "models" / "hiqm" / f"{variant}.json")
    refit = fit_hiqm(reference, variant, source=REFERENCE).model
    assert shipped.form == refit.form
    assert shipped.extrapolation["above"] == refit.extrapolation["above"]
    s = np.linspace(0, 1, 41)[:, None]
    x = np.arange(28)[None, :]
    np.testing.assert_allclose(shipped.predict(s, x), refit.predict(s, x), atol=1e-7)
    digest = hashlib.sha256(REFERENCE.read_bytes()).hexdigest()
    assert shipped.provenance["source"]["sha256"] == digest
    assert shipped.provenance["source"]["file"] == REFERENCE.name
    assert shipped.provenance["command"].startswith("his-opt fit-hiqm ")
    assert "Zhuang" in shipped.provenance["citation"]


def test_bin_logistic_recovers_parameters():
    x = np.arange(28, dtype=float)
    true = (0.2, 0.3, 14.0, 0.1)
    est = fit_bin_logistic(x, shifted_logistic(x, *true), 28)
    np.testing.assert_allclose(est, true, rtol=1e-5)


def test_profile_dataset_is_binned_and_averaged():
    data = synthetic_images(np.random.default_rng(0))
    table, steps, aggregated = prepare_quality_table(data, "sim_npi")
    assert steps == 28 and aggregated
    assert sorted(table["similarity"].unique()) == [0.2, 0.4, 0.6, 0.8]
    assert (table["n"] == 6).all()  # 2 pairs x 3 seeds per (bin, x)
    fit = fit_hiqm(data, "sim_npi")
    assert fit.aggregated and fit.model.metrics["data"]["aggregated"]
    for b in fit.bin_fits:
        assert b.r2 > 0.99
    assert fit.model.metrics["model_min_r2"] > 0.99


def test_total_steps_from_column_and_bounds():
    data = synthetic_images(np.random.default_rng(1), total_steps=20)
    fit = fit_hiqm(data, "sim_npi")
    assert fit.total_steps == 20 and fit.model.total_steps == 20
    with pytest.raises(ValueError, match="common_steps"):
        fit.model.predict(0.5, 20)


def test_reference_format_is_not_aggregated(reference):
    table, steps, aggregated = prepare_quality_table(reference, "sim_npi")
    assert steps == 28 and not aggregated and len(table) == 112


@pytest.mark.parametrize("column", ["variant", "similarity", "common_steps", "clip_alignment"])
def test_missing_column_names_file_and_column(column):
    data = synthetic_images(np.random.default_rng(2)).drop(columns=[column])
    with pytest.raises(InputError) as err:
        fit_hiqm(data, "sim_npi", source="q.csv")
    assert err.value.file == "q.csv" and err.value.field == column


def test_mixed_total_steps_rejected():
    data = synthetic_images(np.random.default_rng(3))
    data.loc[5, "total_steps"] = 20
    with pytest.raises(InputError) as err:
        fit_hiqm(data, "sim_npi", source="q.csv")
    assert err.value.file == "q.csv" and err.value.field == "total_steps"
    assert "mixed" in str(err.value)


def test_bad_cells_name_row_and_field():
    data = synthetic_images(np.random.default_rng(4))
    bad = data.copy()
    bad["clip_alignment"] = bad["clip_alignment"].astype(object)
    bad.loc[7, "clip_alignment"] = "n/a"
    with pytest.raises(InputError) as err:
        fit_hiqm(bad, "sim_npi", source="q.csv")
    assert (err.value.row, err.value.field) == (8, "clip_alignment")
    bad = data.copy()
    bad.loc[3, "common_steps"] = 28
    with pytest.raises(InputError) as err:
        fit_hiqm(bad, "sim_npi", source="q.csv")
    assert (err.value.row, err.value.field) == (4, "common_steps")
    with pytest.raises(InputError) as err:
        fit_hiqm(data, "plain", source="q.csv")
    assert err.value.field == "variant" and "sim_npi" in str(err.value)


def test_too_few_bins_rejected_and_sparse_bins_dropped():
    data = synthetic_images(np.random.default_rng(5))
    one_bin = data[data["similarity"] < 0.3]
    with pytest.raises(InputError, match="at least 2 similarity bins"):
        fit_hiqm(one_bin, "sim_npi", source="q.csv")
    sparse = data[(data["similarity"] < 0.7) | (data["common_steps"] < 3)]
    with pytest.warns(UserWarning, match="dropping similarity bins"):
        fit = fit_hiqm(sparse, "sim_npi")
    assert fit.dropped_bins == (0.8,)
    assert [b.similarity for b in fit.bin_fits] == [0.2, 0.4, 0.6]
    assert fit.candidates["poly2"].skipped  # 3 bins cannot hold out one and fit a quadratic
    with pytest.raises(InputError, match="poly2"):
        fit_hiqm(sparse[sparse["similarity"] < 0.7], "sim_npi", form="poly2")


@pytest.mark.parametrize("form", CANDIDATE_FORMS)
def test_forced_form_round_trips(tmp_path, form):
    fit = fit_hiqm(synthetic_images(np.random.default_rng(6)), "sim_npi", form=form)
    assert fit.chosen == form
    expected = "interp" if form == "interp" else "poly"
    assert fit.model.form == expected
    path = tmp_path / "m.json"
    fit.model.save(path)
    loaded = HIQM.load(path)
    assert loaded == fit.model
    assert json.loads(path.read_text())["metrics"]["selection"]["chosen"] == form
