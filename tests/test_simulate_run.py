"""A small simulation end to end: the exact policy bounds every other policy on every round, the
HID environment's reward is the evaluator's objective, and a killed run resumes to the same
``rounds.csv`` and training log as an uninterrupted one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from his_opt.allocation import check_feasible, evaluate
from his_opt.simulate import PaperEnv, load_sim_config, prepare, run_simulation
from tests._simulate_fixtures import EXAMPLES, ROOT, pool_similarity, write_config

USERS = str(EXAMPLES / "users_paper.csv")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sim")
    cfg = load_sim_config(write_config(folder))
    setup = prepare(cfg, similarity=pool_similarity(USERS))
    out = folder / "out"
    summary = run_simulation(setup, out, progress=False)
    return setup, out, summary


def test_his_bounds_every_policy_on_every_round(finished):
    setup, out, summary = finished
    rounds = pd.read_csv(out / "rounds.csv")
    assert set(rounds["policy"]) == {"his", "ippo", "iis", "gfis", "ppgfis", "greedy"}
    assert len(rounds) == 6 * 4
    gap = setup.cfg.solver.mip_gap
    for (_, _), d in rounds.groupby(["episode", "round"]):
        his = d[d["policy"] == "his"].iloc[0]
        assert his["status"] == "optimal"
        others = d[(d["policy"] != "his") & d["reward"].notna() & (d["status"] != "violates")]
        assert len(others) == 5
        assert (others["reward"] <= his["reward"] + gap * abs(his["reward"]) + 1e-9).all(), d
    assert summary.set_index("policy").loc["his", "gap_to_his"] == 0.0


def test_outputs_written(finished):
    _, out, summary = finished
    for name in ("training_reward.png", "policies.png", "gpu_saved.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    training = pd.read_csv(out / "ippo" / "training.csv")
    assert list(training["episode"]) == [0, 1, 2]
    assert {"gain_vs_iis", "gain_vs_gfis", "gain_vs_ppgfis", "qos_norm"} <= set(summary.columns)
    assert (out / "ippo" / "policy.pt").exists()


def test_env_reward_is_the_evaluators_objective(finished):
    setup, _, _ = finished
    env = PaperEnv(setup.builder, 6, budget_penalty=0.0)
    rng = np.random.default_rng(3)
    solo_seen = False
    for r in range(8):
        rnd = setup.builder.draw(5, r)
        lay = env.layout(rnd)
        solo_seen |= bool((lay.group < 0).any())
        acts = np.stack([rng.integers(0, env.x_choices, 6), rng.integers(0, env.y_choices, 6)], 1)
        inst = setup.builder.instance(rnd)
        dec = env.decision(lay, acts, inst.publics)
        assert check_feasible(inst, dec) == []
        ev = evaluate(inst, dec)
        score = env.score(lay, acts)
        assert score["objective"] == pytest.approx(ev.objective, rel=1e-12, abs=1e-9)
        assert score["gpu_s"] == pytest.approx(float(ev.gpu_time_s.sum()), rel=1e-12)
        assert score["energy_j"] == pytest.approx(ev.energy_j, rel=1e-12)
    assert solo_seen  # three subjects, M = 2: some users share nothing


_SCRIPT = """
import sys, numpy as np
from his_opt.simulate import load_sim_config, prepare, run_simulation
setup = prepare(load_sim_config(sys.argv[1]), similarity=np.load(sys.argv[2]))
run_simulation(setup, sys.argv[3], progress=False, figures=False)
"""


def _killed_run(cfg: Path, sim: Path, out: Path, after: int) -> None:
    env = {**os.environ, "HIS_OPT_SIMULATE_KILL_AFTER": str(after),
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, str(cfg), str(sim), str(out)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]


def test_killed_run_resumes_to_the_same_files(finished, tmp_path):
    setup, reference, _ = finished
    sim = tmp_path / "sim.npy"
    np.save(sim, pool_similarity(USERS))
    out = tmp_path / "out"
    # killed during training (episode 1 appended, not committed), then during the rounds
    # (in the second process: episodes 1 and 2 commit, round 0 is appended, not committed)
    _killed_run(setup.cfg.source, sim, out, after=2)
    assert len(pd.read_csv(out / "ippo" / "training.csv")) == 2
    _killed_run(setup.cfg.source, sim, out, after=3)
    assert len(pd.read_csv(out / "rounds.csv")) == 6
    run_simulation(prepare(setup.cfg, similarity=np.load(sim)), out, progress=False,
                   figures=False)
    assert (out / "ippo" / "training.csv").read_bytes() == \
        (reference / "ippo" / "training.csv").read_bytes()
    a = pd.read_csv(out / "rounds.csv", dtype=str).drop(columns="decision_s")
    b = pd.read_csv(reference / "rounds.csv", dtype=str).drop(columns="decision_s")
    pd.testing.assert_frame_equal(a, b)


def test_plugin_policy(tmp_path):
    cfg = load_sim_config(write_config(
        tmp_path, episodes="1", policies="[his, 'tests._simulate_fixtures:GreedyPlugin']"))
    run_simulation(prepare(cfg, similarity=pool_similarity(USERS)), tmp_path / "out",
                   progress=False, figures=False)
    rounds = pd.read_csv(tmp_path / "out" / "rounds.csv")
    mine = rounds[rounds["policy"] == "mine"]
    assert list(mine["status"]) == ["plugin", "plugin"]
    his = rounds[rounds["policy"] == "his"]
    assert (mine["reward"].to_numpy() <= his["reward"].to_numpy() + 1e-6).all()
