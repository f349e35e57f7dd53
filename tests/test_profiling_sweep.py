"""Sweep files: the shipped recipes load, and bad definitions fail with one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from _contract import refused

from his_opt._errors import InputError
from his_opt.profiling import BUILTIN_VARIANTS, block_rows_estimate, load_sweep, sweep_from_dict

SWEEPS = Path(__file__).resolve().parents[1] / "his_opt" / "data" / "sweeps"


def _minimal(**overrides: object) -> dict:
    data = {
        "name": "t",
        "total_steps": 6,
        "seeds": [0, 1],
        "variants": ["plain", "sim_npi"],
        "groups": [
            {
                "public": "a dog",
                "personal": [
                    {"prompt": "a corgi", "negative_prompt": "a cat"},
                    {"prompt": "a husky", "negative_prompt": "a wolf"},
                ],
            }
        ],
    }
    data.update(overrides)
    return data


def test_shipped_sweeps_load() -> None:
    files = sorted(SWEEPS.glob("*.yaml"))
    assert {f.name for f in files} >= {"tiny_test.yaml", "sd3_medium_sim_npi.yaml"}
    for path in files:
        sweep = load_sweep(path)
        assert sweep.n_images > 0
        assert len(list(sweep.blocks())) == sweep.n_blocks


def test_sd3_recipe_matches_the_reference_setting() -> None:
    sweep = load_sweep(SWEEPS / "sd3_medium_sim_npi.yaml")
    assert sweep.total_steps == 28 and (sweep.height, sweep.width) == (1024, 1024)
    assert sweep.common_steps == tuple(range(28))
    assert {v.name for v in sweep.variants} == {"plain", "sim_npi"}
    assert all(p.negative_prompt for g in sweep.groups for p in g.personal)


def test_blocks_and_counts() -> None:
    sweep = sweep_from_dict(_minimal(common_steps=[0, 2, 4]))
    blocks = list(sweep.blocks())
    assert [(b.public_prompt, b.seed, b.variant.name) for b in blocks] == [
        ("a dog", 0, "plain"),
        ("a dog", 0, "sim_npi"),
        ("a dog", 1, "plain"),
        ("a dog", 1, "sim_npi"),
    ]
    assert len({b.block_id for b in blocks}) == 4
    assert sweep.n_images == 2 * 2 * 2 * 3
    assert blocks[1].variant == BUILTIN_VARIANTS["sim_npi"]
    engine, per_image = block_rows_estimate(sweep)
    # plain: public 4 steps x 2 rows + 2 prompts x (6+4+2) x 2 rows = 56; sim_npi the same.
    assert engine == 2 * (56 + 56)
    # per image: every image 6 steps x 2 rows.
    assert per_image == sweep.n_images * 12


def test_common_steps_forms() -> None:
    assert sweep_from_dict(_minimal()).common_steps == tuple(range(6))
    assert sweep_from_dict(_minimal(common_steps={"start": 1, "step": 2})).common_steps == (1, 3, 5)


def test_custom_variant_and_default_negative() -> None:
    data = _minimal(
        variants=[{"name": "sim_only", "public_guidance_scale": 1.0, "guidance_scale": 7.0}],
        default_negative_prompt="blurry",
    )
    data["groups"][0]["personal"] = ["a corgi", "a husky"]
    sweep = sweep_from_dict(data)
    assert sweep.variants[0].public_rows_per_image() == 1
    assert sweep.groups[0].personal[0].negative_prompt == "blurry"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"common_steps": [0, 6]}, "common_steps.*within|in \\[0, 5\\]"),
        ({"common_steps": [1, 1]}, "distinct"),
        ({"seeds": [0, 0]}, "distinct"),
        ({"seeds": []}, "non-empty"),
        ({"variants": ["fancy"]}, "unknown variant 'fancy'"),
        ({"variants": [{"name": "v", "guidance_scale": 7}]}, "missing 'public_guidance_scale'"),
        ({"total_steps": 1}, ">= 2"),
        ({"colour": "red"}, "unknown keys \\['colour'\\]"),
        ({"groups": [{"public": "a\ndog", "personal": ["x"]}]}, "one line"),
    ],
)
def test_bad_sweeps(change: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        sweep_from_dict(_minimal(**change), source="bad.yaml")


def test_npi_variant_needs_negative_prompts() -> None:
    data = _minimal()
    data["groups"][0]["personal"] = ["a corgi"]
    with pytest.raises(InputError, match="need a negative_prompt"):
        sweep_from_dict(data)


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        load_sweep(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("groups: [unclosed\n")
    with pytest.raises(InputError, match="not valid YAML"):
        load_sweep(bad)
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(_minimal()))
    assert load_sweep(good).name == "t"


@pytest.mark.parametrize(
    ("change", "line"),
    [
        ({"seeds": [0, 0]}, "sw.yaml: field 'seeds': seeds must be distinct"),
        ({"height": 1000}, "sw.yaml: field 'height': must be a positive multiple of 16"),
        (
            {"variants": [{"name": "v", "public_guidance_scale": 2, "guidance_scale": 7, "x": 1}]},
            "sw.yaml: field 'variants[0].x': unknown key; known: name, public_guidance_scale,",
        ),
        ({"common_steps": {"start": 0, "step": 0}}, "field 'common_steps.step': must be >= 1"),
        ({"total_steps": "4"}, "sw.yaml: field 'total_steps': must be a valid integer, got '4'"),
    ],
)
def test_malformed_sweep_exits_2_and_changes_nothing(tmp_path, monkeypatch, capsys, change, line):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "q.csv").write_text("an existing file\n")
    data = {**yaml.safe_load((SWEEPS / "tiny_test.yaml").read_text()), **change}
    (tmp_path / "sw.yaml").write_text(yaml.safe_dump(data))
    argv = ["profile-quality", "sw.yaml", "--out", "q.csv", "--dry-run"]
    assert line in refused(argv, tmp_path, capsys)
