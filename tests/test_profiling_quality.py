"""profile-quality on a tiny pipeline: the dataset, its metrics, resuming, and bad input."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from his_opt._errors import InputError
from his_opt.cli._profile import main as profile_cli
from his_opt.profiling import COLUMNS, KEY_COLUMNS, QualityDataset, load_sweep, run_quality_sweep
from his_opt.quality import BrisqueScorer, ClipScorer, build_tiny_clip
from his_opt.similarity import PromptSimilarity
from his_opt.testing import build_tiny_sd3_pipeline

TINY = Path(__file__).resolve().parents[1] / "his_opt" / "data" / "sweeps" / "tiny_test.yaml"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("models")
    return {
        "model": str(build_tiny_sd3_pipeline(root / "sd3")),
        "clip_model": str(build_tiny_clip(root / "clip")),
    }


@pytest.fixture(scope="module")
def first_run(
    models: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, object]:
    root = tmp_path_factory.mktemp("run")
    out, images = root / "quality.csv", root / "images"
    report = run_quality_sweep(load_sweep(TINY), out, save_images=images, progress=False, **models)
    return out, images, report


def test_dataset_has_one_row_per_image(first_run: tuple) -> None:
    out, _, report = first_run
    sweep = load_sweep(TINY)
    data = pd.read_csv(out, keep_default_na=False)
    assert tuple(data.columns) == COLUMNS
    assert len(data) == sweep.n_images == report.images_written == 32
    assert not data.duplicated(list(KEY_COLUMNS)).any()
    assert set(data["common_steps"]) == set(range(sweep.total_steps))
    assert set(data["total_steps"]) == {4}
    sim_npi = data[data["variant"] == "sim_npi"]
    assert set(sim_npi["public_guidance_scale"]) == {2.0} and set(sim_npi["guidance_scale"]) == {
        8.0
    }
    assert set(sim_npi["negative_prompt"]) == {"a cat", "a dog in a park"}
    assert set(data[data["variant"] == "plain"]["negative_prompt"]) == {""}


def test_transformer_rows_against_the_per_image_approach(first_run: tuple) -> None:
    out, _, report = first_run
    data = pd.read_csv(out)
    # Per image: x public + (T - x) personal steps, 2 rows each (all scales > 1 here).
    assert (data["image_rows"] == 8).all()
    assert report.per_image_rows == 32 * 8 == 256
    # Per block: public 3 steps x 2 rows + 2 prompts x (4 + 3 + 2 + 1) steps x 2 rows.
    assert set(data["block_rows"]) == {46}
    assert report.engine_rows == 4 * 46 == 184
    assert report.per_call_rows == 4 * sum(2 * x + 2 * (4 - x) * 2 for x in range(4)) == 208
    assert "184 with the hybrid sweep engine vs 256" in report.summary()


def test_metrics_match_the_scorers_on_the_saved_images(
    first_run: tuple, models: dict[str, str]
) -> None:
    out, images, _ = first_run
    data = pd.read_csv(out, keep_default_na=False)
    assert len(list(images.rglob("*.png"))) == 32
    pics = [np.asarray(Image.open(p)) for p in data["image_path"]]
    clip = ClipScorer(models["clip_model"], device="cpu")
    assert np.allclose(
        clip.alignment(pics, list(data["personal_prompt"])), data["clip_alignment"], atol=1e-5
    )
    assert np.allclose(BrisqueScorer().scores(pics[:4]), data["brisque"][:4], atol=1e-9)
    # Image similarity is against the x = 0 image of the same prompt, seed and variant.
    ref = data.set_index(["personal_prompt", "seed", "variant", "common_steps"])["image_path"]
    for _, row in data.head(8).iterrows():
        ref_path = ref[(row["personal_prompt"], row["seed"], row["variant"], 0)]
        expected = clip.image_similarity(
            [np.asarray(Image.open(row["image_path"]))], [np.asarray(Image.open(ref_path))]
        )
        assert row["clip_image_similarity"] == pytest.approx(float(expected[0]), abs=1e-5)
    assert np.allclose(data[data["common_steps"] == 0]["clip_image_similarity"], 1.0, atol=1e-5)
    # Sharing steps changes the images.
    assert (data[data["common_steps"] == 3]["clip_image_similarity"] < 1 - 1e-6).all()


def test_similarity_is_the_minilm_cosine(first_run: tuple) -> None:
    out, _, _ = first_run
    data = pd.read_csv(out)
    pairs = data.drop_duplicates(["public_prompt", "personal_prompt"])
    expected = PromptSimilarity().pairwise(
        list(pairs["public_prompt"]), list(pairs["personal_prompt"])
    )
    assert np.allclose(pairs["similarity"], expected, atol=1e-6)
    assert np.allclose(pairs["similarity_bin"], np.round(expected, 1))


def test_rerun_resumes_with_nothing_to_do(first_run: tuple, models: dict[str, str]) -> None:
    out, _, _ = first_run
    before = out.read_bytes()
    report = run_quality_sweep(load_sweep(TINY), out, progress=False, **models)
    assert report.images_written == 0 and report.blocks_run == 0
    assert report.images_already_done == 32
    assert out.read_bytes() == before


def test_torn_tail_and_missing_rows_are_recomputed(
    first_run: tuple, models: dict[str, str], tmp_path: Path
) -> None:
    out, _, _ = first_run
    lines = out.read_text(encoding="utf-8").splitlines(keepends=True)
    # Keep the header, 1.5 blocks, and a torn half line as a killed write would leave.
    torn = tmp_path / "torn.csv"
    torn.write_text("".join(lines[:13]) + lines[13][: len(lines[13]) // 2], encoding="utf-8")
    with pytest.warns(UserWarning, match="partial last line"):
        report = run_quality_sweep(load_sweep(TINY), torn, progress=False, **models)
    assert report.images_already_done == 12
    assert report.images_written == 20
    got = pd.read_csv(torn, keep_default_na=False)
    want = pd.read_csv(out, keep_default_na=False)
    assert not got.duplicated(list(KEY_COLUMNS)).any()
    merged = got.merge(want, on=list(KEY_COLUMNS), suffixes=("", "_ref"))
    assert len(merged) == 32
    assert np.allclose(merged["clip_alignment"], merged["clip_alignment_ref"], atol=1e-5)


def test_dataset_with_missing_columns_is_refused(models: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("variant,similarity,common_steps\nplain,0.5,3\n")
    before = bad.read_bytes()
    with pytest.raises(InputError, match="not a profile-quality dataset"):
        run_quality_sweep(load_sweep(TINY), bad, progress=False, **models)
    assert bad.read_bytes() == before


def test_dataset_with_other_total_steps_is_refused(
    first_run: tuple, models: dict[str, str], tmp_path: Path
) -> None:
    out, _, _ = first_run
    rows = list(csv.reader(out.open(encoding="utf-8")))
    col = rows[0].index("total_steps")
    rows[5][col] = "28"
    mixed = tmp_path / "mixed.csv"
    with mixed.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)
    with pytest.raises(InputError, match=r"row 5: field 'total_steps': mixed total steps"):
        QualityDataset(mixed, load_sweep(TINY)).read()


def test_missing_model_path_fails_before_writing(
    models: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "q.csv"
    code = profile_cli(
        [
            "profile-quality",
            str(TINY),
            "--model",
            str(tmp_path / "no_such_model"),
            "--clip-model",
            models["clip_model"],
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 2
    assert "SD3 model: model path does not exist" in capsys.readouterr().err
    assert not out.exists()
    code = profile_cli(
        [
            "profile-quality",
            str(TINY),
            "--model",
            models["model"],
            "--clip-model",
            str(tmp_path / "no_clip"),
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 2 and not out.exists()


def test_unreadable_model_folder_is_a_clear_error(models: dict[str, str], tmp_path: Path) -> None:
    empty = tmp_path / "empty_model"
    empty.mkdir()
    out = tmp_path / "q.csv"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(InputError, match="SD3 model: cannot load"):
            run_quality_sweep(
                load_sweep(TINY),
                out,
                model=str(empty),
                clip_model=models["clip_model"],
                progress=False,
            )
