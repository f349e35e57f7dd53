"""``his-opt generate``: a plan executed group by group on the tiny model."""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from _inference_fixtures import hybrid_pipe, tiny_model_dir

from his_opt._errors import InputError
from his_opt.cli._generate import add_generate_parser

T = 4
PLAN = {
    "schema": "his-opt/plan/1",
    "scenario": {
        "total_steps": T,
        "variant": "sim_npi",
        "public_guidance_scale": 2.0,
        "guidance_scale": 8.0,
        "height": 32,
        "width": 32,
    },
    "groups": [
        {
            "group_id": "g1",
            "server": "es1",
            "public_prompt": "a dog in a forest",
            "common_steps": 2,
            "seed": 1234,
            "members": ["u1", "u2", "u3"],
        },
        {
            "group_id": "g2",
            "server": "es1",
            "public_prompt": None,
            "common_steps": 0,
            "seed": 99,
            "members": ["u4"],
        },
    ],
    "users": [
        {
            "user_id": "u1",
            "prompt": "a corgi on the beach",
            "negative_prompt": "blurry",
            "group_id": "g1",
            "common_steps": 2,
            "edge_steps": 2,
            "device_steps": 0,
        },
        {
            "user_id": "u2",
            "prompt": "a husky in the snow",
            "negative_prompt": None,
            "group_id": "g1",
            "common_steps": 2,
            "edge_steps": 1,
            "device_steps": 1,
        },
        {
            "user_id": "u3",
            "prompt": "a fox at sunset",
            "negative_prompt": "watermark",
            "group_id": "g1",
            "common_steps": 2,
            "edge_steps": 0,
            "device_steps": 2,
        },
        {
            "user_id": "u4",
            "prompt": "a lighthouse in the rain",
            "negative_prompt": None,
            "group_id": "g2",
            "common_steps": 0,
            "edge_steps": 3,
            "device_steps": 1,
        },
    ],
    "totals": {},
    "status": {},
    "provenance": {},
}


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="his-opt")
    add_generate_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def _generate(plan_path: Path, out: Path, *extra: str) -> int:
    args = _parse(
        [
            "generate",
            str(plan_path),
            "--model",
            str(tiny_model_dir()),
            "--out",
            str(out),
            "--device",
            "cpu",
            "--dtype",
            "float32",
            *extra,
        ]
    )
    return args.func(args)


def _write_plan(path: Path, plan: dict) -> Path:
    path.write_text(json.dumps(plan), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("generate")
    plan_path = _write_plan(root / "plan.json", PLAN)
    assert _generate(plan_path, root / "out", "--handoff-dir", str(root / "handoffs")) == 0
    return plan_path, root / "out", root


def test_generate_writes_images_and_manifest(generated):
    _, out, root = generated
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.json",
        "u1.png",
        "u2.png",
        "u3.png",
        "u4.png",
    ]
    assert sorted(p.name for p in (root / "handoffs").iterdir()) == [
        "u2.safetensors",
        "u3.safetensors",
        "u4.safetensors",
    ]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["schema"] == "his-opt/generate-manifest/1"
    assert manifest["users"]["u2"]["seed"] == 1234 and manifest["users"]["u2"]["device_steps"] == 1
    g1 = manifest["groups"]["g1"]["runs"][0]
    # public 2 steps x 2 rows, edge personal (2 + 1 + 0) x 2 rows, device (1 + 2) x 2 rows
    assert g1["edge"]["transformer_rows"] == 4 + 6
    assert g1["device"]["transformer_rows"] == 6
    assert g1["transformer_rows"] == 16 < g1["independent_rows"] == 3 * T * 2
    assert set(g1["edge"]["timings"]) >= {"public_s", "personal_s", "total_s"}
    assert manifest["groups"]["g2"]["runs"][0]["edge"]["public_rows"] == 0
    with PIL.Image.open(out / "u1.png") as im:
        assert im.size == (32, 32)


def test_split_users_match_an_unsplit_run(generated):
    _, out, _ = generated
    pipe = hybrid_pipe()
    group = PLAN["groups"][0]
    users = PLAN["users"][:3]
    ref = pipe(
        group["public_prompt"],
        [u["prompt"] for u in users],
        common_steps=2,
        num_inference_steps=T,
        public_guidance_scale=2.0,
        guidance_scale=8.0,
        negative_prompts=[u["negative_prompt"] for u in users],
        generator=torch.Generator().manual_seed(group["seed"]),
        output_type="np",
    ).images
    for u, expected in zip(users, ref, strict=True):
        got = np.asarray(PIL.Image.open(out / f"{u['user_id']}.png"), dtype=np.int16)
        want = np.round(expected * 255).astype(np.int16)
        assert np.abs(got - want).max() <= 1


def test_rerun_skips_done_users_and_redoes_missing_ones(generated, capsys):
    plan_path, out, _ = generated
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}
    manifest_before = (out / "manifest.json").read_text()
    assert _generate(plan_path, out) == 0
    assert "0 image(s) written, 4 already done" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")} == before
    assert (out / "manifest.json").read_text() == manifest_before

    original = (out / "u2.png").read_bytes()
    (out / "u2.png").unlink()
    assert _generate(plan_path, out) == 0
    assert "1 image(s) written, 3 already done" in capsys.readouterr().out
    assert (out / "u2.png").read_bytes() == original  # same shared latent without u1 and u3
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["groups"]["g1"]["runs"][-1]["users"] == ["u2"]
    assert not list(out.glob(".*.part"))


def test_output_of_another_plan_is_refused(generated, tmp_path):
    _, out, _ = generated
    other = copy.deepcopy(PLAN)
    other["groups"][0]["seed"] = 1
    with pytest.raises(InputError, match="plan_sha256.*written by another run"):
        _generate(_write_plan(tmp_path / "other.json", other), out)


def _broken(change) -> dict:
    plan = copy.deepcopy(PLAN)
    change(plan)
    return plan


@pytest.mark.parametrize(
    ("change", "field", "match"),
    [
        (
            lambda p: p["users"][1].update(group_id="g9"),
            "row 2: field 'users.group_id'",
            "unknown group 'g9'",
        ),
        (
            lambda p: p["groups"][0]["members"].append("u9"),
            "field 'groups.members'",
            "without a user entry",
        ),
        (
            lambda p: p["users"][0].update(device_steps=1),
            "row 1: field 'users.device_steps'",
            "total_steps = 4",
        ),
        (
            lambda p: p["groups"][0].update(common_steps=4),
            "row 1: field 'groups.common_steps'",
            "total_steps - 1 = 3",
        ),
        (
            lambda p: p["groups"][0].update(public_prompt=None),
            "row 1: field 'groups.public_prompt'",
            "without public prompt",
        ),
        (
            lambda p: p["users"][3].update(user_id="u1"),
            "row 4: field 'users.user_id'",
            "duplicate user",
        ),
        (
            lambda p: p["users"][0].update(user_id="../evil"),
            "row 1: field 'users.user_id'",
            "not safe as a file name",
        ),
        (
            lambda p: p.update(schema="his-opt/plan/0"),
            "field 'schema'",
            "expected 'his-opt/plan/1'",
        ),
        (lambda p: p["scenario"].pop("total_steps"), "field 'scenario.total_steps'", "missing"),
        (
            lambda p: p["groups"][1]["members"].append("u1"),
            "row 2: field 'groups.public_prompt'",
            "one member",
        ),
        (
            lambda p: p["users"][1].update(common_steps=1, edge_steps=2),
            "row 2: field 'users.common_steps'",
            "differs from its group",
        ),
        (lambda p: p.update(users=[]), "field 'users'", "non-empty"),
        (
            lambda p: p["users"][0].update(edge_steps="2"),
            "row 1: field 'users.edge_steps'",
            "not of type 'integer'",
        ),
        (
            lambda p: p["groups"][0].update(members="u1"),
            "row 1: field 'groups.members'",
            "not of type 'array'",
        ),
    ],
)
def test_bad_plan_names_file_and_field_and_writes_nothing(tmp_path, change, field, match):
    plan_path = _write_plan(tmp_path / "plan.json", _broken(change))
    with pytest.raises(InputError, match=match) as err:
        _generate(plan_path, tmp_path / "out")
    assert str(err.value).startswith(f"{plan_path}: {field}: ")
    assert not (tmp_path / "out").exists()


def test_unreadable_plan_and_bad_model(tmp_path):
    (tmp_path / "plan.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        _generate(tmp_path / "plan.json", tmp_path / "out")
    plan_path = _write_plan(tmp_path / "ok.json", PLAN)
    args = _parse(
        [
            "generate",
            str(plan_path),
            "--model",
            str(tmp_path),
            "--out",
            str(tmp_path / "out"),
            "--device",
            "cpu",
        ]
    )
    with pytest.raises(InputError, match="not a diffusers pipeline folder"):
        args.func(args)
    with pytest.raises(InputError, match="divisible by 4"):
        _generate(plan_path, tmp_path / "out", "--height", "30")
    assert not (tmp_path / "out").exists()
