"""Plans over several servers: batch caps, the plan's model, Ray actors, the device command."""

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
from his_opt.cli import main
from his_opt.cli._generate import add_generate_parser

T = 4
SCENARIO = {
    "total_steps": T,
    "variant": "sim_npi",
    "public_guidance_scale": 2.0,
    "guidance_scale": 8.0,
    "height": 32,
    "width": 32,
}


def _user(uid, prompt, gid, x, y, neg=None):
    return {
        "user_id": uid,
        "prompt": prompt,
        "negative_prompt": neg,
        "group_id": gid,
        "common_steps": x,
        "edge_steps": y,
        "device_steps": T - x - y,
    }


PLAN = {
    "schema": "his-opt/plan/1",
    "scenario": SCENARIO,
    "servers": [
        {"name": "es1", "profile": "toy", "budget_s": 10.0, "max_batch_images": 2},
        {"name": "es2", "profile": "toy", "budget_s": 10.0, "max_batch_images": 1},
    ],
    "groups": [
        {
            "group_id": "g1",
            "server": "es1",
            "public_prompt": "a dog in a forest",
            "common_steps": 1,
            "seed": 7,
            "members": ["u1", "u2", "u3"],
        },
        {
            "group_id": "g2",
            "server": "es2",
            "public_prompt": "a harbour at dusk",
            "common_steps": 1,
            "seed": 8,
            "members": ["u4", "u5"],
        },
    ],
    "users": [
        _user("u1", "a corgi on the beach", "g1", 1, 3, "blurry"),
        _user("u2", "a husky in the snow", "g1", 1, 1),
        _user("u3", "a fox at sunset", "g1", 1, 2, "watermark"),
        _user("u4", "a sailing boat in a harbour", "g2", 1, 2),
        _user("u5", "a lighthouse in the rain", "g2", 1, 0),
    ],
    "totals": {},
    "status": {},
    "provenance": {},
}


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="his-opt")
    add_generate_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def _generate(plan_path: Path, out: Path, *extra: str, model: bool = True) -> int:
    argv = ["generate", str(plan_path), "--out", str(out), "--device", "cpu", *extra]
    if model:
        argv += ["--model", str(tiny_model_dir()), "--dtype", "float32"]
    args = _parse(argv)
    return args.func(args)


def _write(path: Path, plan: dict) -> Path:
    path.write_text(json.dumps(plan), encoding="utf-8")
    return path


def _pixels(path: Path) -> np.ndarray:
    with PIL.Image.open(path) as im:
        return np.asarray(im, dtype=np.int16)


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("servers")
    plan = dict(PLAN, model={"id": str(tiny_model_dir()), "dtype": "float32"})
    plan_path = _write(root / "plan.json", plan)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as a Ray CPU actor runs (num_cpus=1)
    try:
        assert _generate(plan_path, root / "local", "--handoff-dir", str(root / "handoffs")) == 0
    finally:
        torch.set_num_threads(threads)
    return plan_path, root


def test_each_server_runs_its_groups_under_its_batch_cap(local_run):
    _, root = local_run
    manifest = json.loads((root / "local" / "manifest.json").read_text())
    assert set(manifest["servers"]) == {"es1", "es2"}
    for gid, cap in (("g1", 2), ("g2", 1)):
        run = manifest["groups"][gid]["runs"][0]
        assert run["batch_cap"] == cap
        used = run["edge"]["batch_sizes"] + run["device"]["batch_sizes"]
        assert max(used) == cap  # the cap binds: 3 and 2 members would batch wider
    assert manifest["servers"]["es1"]["max_batch_used"] == 2
    assert manifest["servers"]["es2"]["max_batch_used"] == 1
    assert manifest["servers"]["es1"]["edge_s"] > 0 and manifest["servers"]["es2"]["device_s"] > 0
    assert manifest["users"]["u5"]["server"] == "es2"
    # the hand-off files are the plan's mode (latent: no embeddings) and their sizes recorded
    assert manifest["handoff_mode"] == "latent"
    for uid in ("u2", "u3", "u4"):
        size = (root / "handoffs" / f"{uid}.safetensors").stat().st_size
        assert manifest["users"][uid]["handoff_bytes"] == size


def test_resume_command_equals_generate(local_run, tmp_path, capsys):
    _, root = local_run
    out = tmp_path / "u2.png"
    argv = ["resume", str(root / "handoffs" / "u2.safetensors"), "--model", str(tiny_model_dir())]
    assert main([*argv, "--out", str(out), "--device", "cpu"]) == 0
    assert "2 device step(s) of 4" in capsys.readouterr().out
    assert np.array_equal(_pixels(out), _pixels(root / "local" / "u2.png"))
    with PIL.Image.open(out) as im:
        record = json.loads(im.text["his-opt"])
    assert record["dtype_cast"] is False and record["device_steps"] == 2


def test_fp16_handoff_resumes_on_fp32_and_bf16_is_the_same_model(tmp_path, capsys):
    from his_opt.inference import HybridSD3Pipeline

    fp32 = hybrid_pipe()
    fp16 = HybridSD3Pipeline.from_pretrained(tiny_model_dir(), dtype=torch.float16)
    fp16.set_progress_bar_config(disable=True)
    call = dict(
        common_steps=1,
        num_inference_steps=T,
        public_guidance_scale=2.0,
        guidance_scale=8.0,
        generator=torch.Generator().manual_seed(3),
        output_type="np",
    )
    ref = fp32("a dog", ["a corgi on the beach"], **call).images[0]
    call["generator"] = torch.Generator().manual_seed(3)
    split = fp16("a dog", ["a corgi on the beach"], edge_steps=[1], **call)
    path = split.handoffs[0].save(tmp_path / "h16.safetensors")
    out = tmp_path / "u.png"
    argv = ["resume", str(path), "--model", str(tiny_model_dir()), "--out", str(out)]
    assert main([*argv, "--device", "cpu", "--dtype", "float32"]) == 0
    assert "cast float16 -> float32" in capsys.readouterr().out
    got = _pixels(out)
    # stated tolerance: 2 grey levels of the fp32 run (measured: 1)
    assert np.abs(got - np.round(ref * 255)).max() <= 2
    with PIL.Image.open(out) as im:
        record = json.loads(im.text["his-opt"])
    assert record["dtype_cast"] is True and record["handoff_dtype"] == "float16"
    bf16 = HybridSD3Pipeline.from_pretrained(tiny_model_dir(), dtype=torch.bfloat16)
    bf16.check_handoff(split.handoffs[0], cast_dtype=True)  # same model in bf16: accepted
    with pytest.raises(ValueError, match="dtype differs"):
        bf16.check_handoff(split.handoffs[0])


def test_bad_handoff_files_write_nothing(local_run, tmp_path, capsys):
    _, root = local_run
    good = (root / "handoffs" / "u3.safetensors").read_bytes()
    model = ["--model", str(tiny_model_dir()), "--device", "cpu"]
    cases = {
        "truncated": (good[: len(good) - 100], "not a safetensors hand-off"),
        "corrupt": (
            b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      " + good[40:],
            "not a safetensors",
        ),
    }
    for name, (data, match) in cases.items():
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(data)
        assert main(["resume", str(path), *model, "--out", str(tmp_path / f"{name}.png")]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"his-opt: error: {path}: ") and match in err
        assert len(err.strip().splitlines()) == 1
    path = root / "handoffs" / "u3.safetensors"
    assert (
        main(["resume", str(path), *model, "--out", str(tmp_path / "x.png"), "--height", "64"]) == 2
    )
    assert "shape differs" in capsys.readouterr().err
    other = tmp_path / "other-model"
    from his_opt.testing import build_tiny_sd3_pipeline

    build_tiny_sd3_pipeline(other, seed=1)
    argv = ["resume", str(path), "--model", str(other), "--device", "cpu"]
    assert main([*argv, "--out", str(tmp_path / "y.png")]) == 2
    assert "another model" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.png")) and not list(tmp_path.glob(".*.part"))


def test_plan_model_is_used_and_mismatch_refused(local_run, tmp_path, capsys):
    plan = copy.deepcopy(PLAN)
    plan["model"] = {"id": str(tiny_model_dir()), "dtype": "float32", "variant": "sim_npi"}
    plan_path = _write(tmp_path / "plan.json", plan)
    with pytest.raises(InputError, match="the plan was solved for model"):
        _generate(plan_path, tmp_path / "out", "--model", str(tmp_path), model=False)
    with pytest.raises(InputError, match="solved for dtype float32, not float16"):
        _generate(plan_path, tmp_path / "out", "--dtype", "float16", model=False)
    assert not (tmp_path / "out").exists()
    no_model = _write(tmp_path / "bare.json", PLAN)
    with pytest.raises(InputError, match="records no model; give --model"):
        _generate(no_model, tmp_path / "out", model=False)


def test_rerun_with_nothing_left_does_not_load_the_model(local_run, tmp_path, capsys, monkeypatch):
    plan_path, root = local_run
    from his_opt.inference import _pipeline

    def refuse(*args, **kwargs):
        raise AssertionError("model loaded")

    monkeypatch.setattr(_pipeline.HybridSD3Pipeline, "from_pretrained", refuse)
    assert _generate(plan_path, root / "local", model=False) == 0  # the plan's model
    assert "0 image(s) written, 5 already done; nothing to run" in capsys.readouterr().out


def test_unknown_server_is_refused(tmp_path, capsys):
    plan = copy.deepcopy(PLAN)
    plan["groups"][1]["server"] = "es9"
    plan_path = _write(tmp_path / "plan.json", plan)
    model_dir = tiny_model_dir()
    capsys.readouterr()  # building the tiny model prints library notices; not the CLI's output
    argv = [
        "generate",
        str(plan_path),
        "--model",
        str(model_dir),
        "--out",
        str(tmp_path / "o"),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == (
        f"his-opt: error: {plan_path}: field 'groups[1].server': unknown server 'es9'; "
        "the plan's servers are es1, es2\n"
    )
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_two_servers_on_ray_equal_the_local_run(local_run, tmp_path):
    ray = pytest.importorskip("ray")
    from his_opt.profiling._ray import connect_ray

    plan_path, root = local_run
    out = tmp_path / "ray"
    connect_ray("local", num_cpus=2)
    try:
        with pytest.warns(UserWarning, match="no GPUs"):
            assert _generate(plan_path, out, "--ray-address", "local") == 0
    finally:
        ray.shutdown()
    manifest = json.loads((out / "manifest.json").read_text())
    # a killed run resumes (here without Ray: same manifest, same images)
    (out / "u4.png").unlink()
    assert _generate(plan_path, out) == 0
    for uid in ("u1", "u2", "u3", "u4", "u5"):
        assert (out / f"{uid}.png").read_bytes() == (root / "local" / f"{uid}.png").read_bytes(), (
            uid
        )
    workers = {manifest["servers"][s]["worker"] for s in ("es1", "es2")}
    assert len(workers) == 2  # one actor per server
    assert manifest["servers"]["es1"]["max_batch_used"] == 2
    assert manifest["servers"]["es2"]["max_batch_used"] == 1
    again = json.loads((out / "manifest.json").read_text())
    assert again["groups"]["g2"]["runs"][-1]["users"] == ["u4"]
    assert len(again["groups"]["g1"]["runs"]) == 1


@pytest.mark.parametrize(
    ("change", "field", "match"),
    [
        (
            lambda p: p.update(model={"id": "m", "guidance_personal": 7.0}),
            "model.guidance_personal",
            "differs from the scenario's 8.0",
        ),
        (lambda p: p.update(model={"id": "m", "dtype": "int8"}), "model.dtype", "is not one of"),
        (lambda p: p.update(model={"dtype": "float16"}), "model.id", "missing"),
        (
            lambda p: p["servers"][1].update(max_batch_images=0),
            "servers[1].max_batch_images",
            "positive integer",
        ),
        (
            lambda p: p["servers"][1].update(batch_images=0),
            "servers.batch_images",
            "minimum of 1",
        ),
        (
            lambda p: p["scenario"].update(handoff="pixels"),
            "scenario.handoff",
            "latent, embeddings",
        ),
        (lambda p: p["groups"][0].pop("server"), "groups.server", "missing"),
    ],
)
def test_bad_plan_model_and_servers(tmp_path, change, field, match):
    from his_opt.inference._executor import load_plan

    plan = copy.deepcopy(PLAN)
    change(plan)
    path = _write(tmp_path / "plan.json", plan)
    with pytest.raises(InputError, match=match) as err:
        load_plan(path)
    assert str(err.value).startswith(f"{path}: ") and f"field '{field}'" in str(err.value)
