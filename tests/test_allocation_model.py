"""The instance, the evaluator, the plan contract and the API's errors."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from his_opt.allocation import (
    OPTIMAL,
    PLAN_SCHEMA,
    Plan,
    build_instance,
    evaluate,
    simulate_gpu_time,
    solve,
)
from his_opt.allocation._decision import Decision
from his_opt.allocation._synthetic import synthetic_users, tiny_instance, toy_hiqm
from his_opt.costs import EdgeServer, GPUProfile
from his_opt.scenario import Scenario


def test_import_does_not_load_torch() -> None:
    code = ("import sys, his_opt.allocation; "
            "bad = [m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules];"
            "print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_evaluator_terms_by_hand() -> None:
    inst = tiny_instance(seed=31, n_users=3, budget_fraction=2.0)
    T = inst.total_steps
    # users 0, 1 share public 2 with x = 2 on server 0; user 2 is solo
    dec = Decision(np.array([0, 0]), np.array([2, -1]), np.array([2, 0]), np.array([0, 0, 1]),
                   np.array([3, 1, 2]))
    ev = evaluate(inst, dec)
    s = 0
    q = [inst.hiqm.predict(inst.sim[2, 0], 2), inst.hiqm.predict(inst.sim[2, 1], 2),
         inst.hiqm.unshared_quality()]
    assert np.allclose(ev.user_quality, q)
    x = [2, 2, 0]
    y = [3, 1, 2]
    delay = [x[n] * inst.tau_pub[s] + y[n] * inst.tau_one[s] + inst.downlink_s[n]
             + (T - x[n] - y[n]) * inst.device_step_s[n] for n in range(3)]
    assert np.allclose(ev.user_delay_s, delay)
    gpu = (2 * inst.tau_pub[s] + inst.alpha[s] * 3 + inst.beta[s] * 4
           + (inst.alpha[s] + inst.beta[s]) * 2)
    assert np.isclose(ev.gpu_time_s[s], gpu)
    energy = inst.power_w[s] * gpu + sum(
        inst.downlink_j[n] + (T - x[n] - y[n]) * inst.device_step_j[n] for n in range(3))
    assert np.isclose(ev.energy_j, energy)
    wq, wd, we = inst.weights
    assert np.isclose(ev.objective, wq * sum(q) - wd * sum(delay) - we * energy)
    # replay: public 2 steps of one image, then launches of 2, 1, 1 images, solo 2 single steps
    prof = inst.servers[s].profile
    sim = (2 * prof.step_time(1, guided=inst.scenario.public_guided)
           + prof.step_time(2) + 2 * prof.step_time(1) + 2 * prof.step_time(1))
    assert np.isclose(simulate_gpu_time(inst, dec)[s], sim)
    assert sim <= gpu + 1e-12


def test_finishing_on_the_edge_sends_no_latent() -> None:
    inst = tiny_instance(seed=32, n_users=1, common_steps_max=3, edge_steps_max=4,
                         budget_fraction=5.0)
    T = inst.total_steps
    dec = Decision(np.array([0]), np.array([0]), np.array([2]), np.array([0]), np.array([T - 2]))
    ev = evaluate(inst, dec)
    assert np.isclose(ev.user_delay_s[0], 2 * inst.tau_pub[0] + (T - 2) * inst.tau_one[0])


def test_chunked_launches_are_covered_by_beta_prime() -> None:
    sc = Scenario(total_steps=6, common_steps_max=2, edge_steps_max=3, height=64, width=64)
    users = synthetic_users([f"p{i}" for i in range(5)], sc)
    prof = GPUProfile(name="t", rows=(1, 2, 4, 8), step_latency_s=(0.05, 0.09, 0.17, 0.33))
    servers = [EdgeServer("es1", prof, 100.0, max_batch_images=2)]
    sim = np.full((5, 5), 0.5)
    np.fill_diagonal(sim, 1.0)
    inst = build_instance(users, servers, sc, toy_hiqm(6), similarity=sim)
    a, b = prof.affine_bound(True)
    assert inst.batch_images[0] == 2
    assert np.isclose(inst.beta[0], b + a / 2)
    dec = Decision(np.array([0]), np.array([0]), np.array([2]), np.zeros(5, dtype=int),
                   np.array([3, 3, 2, 1, 3]))
    ev = evaluate(inst, dec)
    assert ev.gpu_time_simulated_s[0] <= ev.gpu_time_s[0] + 1e-12


def test_plan_contract_and_round_trip() -> None:
    inst = tiny_instance(seed=33, n_users=6, budget_fraction=0.6)
    res = solve(inst, time_limit=20)
    assert res.status == OPTIMAL
    plan = res.plan
    doc = plan.to_dict()
    assert doc["schema"] == PLAN_SCHEMA
    assert doc["scenario"]["total_steps"] == inst.total_steps
    for key in ("groups", "users", "totals", "status", "provenance"):
        assert key in doc
    for g in doc["groups"]:
        assert set(g) >= {"group_id", "server", "public_prompt", "common_steps", "seed", "members"}
        assert isinstance(g["seed"], int) and g["seed"] >= 0
    for u in doc["users"]:
        assert set(u) >= {"user_id", "prompt", "negative_prompt", "group_id", "similarity",
                          "common_steps", "edge_steps", "device_steps", "predicted_quality",
                          "delay_s", "energy_j"}
    assert doc["status"]["status"] == OPTIMAL
    assert np.isclose(evaluate(inst, plan).objective, res.objective)
    assert np.isclose(evaluate(inst, plan.to_decision(inst)).objective, res.objective)
    assert isinstance(plan, Plan)


def test_identical_servers_are_pooled_for_the_bound_only() -> None:
    inst = tiny_instance(seed=34, n_users=6, n_servers=1, budget_fraction=0.5)
    two = replace(inst, servers=(inst.servers[0], replace(inst.servers[0], name="es2")),
                  tau_pub=np.repeat(inst.tau_pub, 2), tau_one=np.repeat(inst.tau_one, 2),
                  alpha=np.repeat(inst.alpha, 2), beta_raw=np.repeat(inst.beta_raw, 2),
                  beta=np.repeat(inst.beta, 2), batch_images=np.repeat(inst.batch_images, 2),
                  power_w=np.repeat(inst.power_w, 2), budget_s=np.repeat(inst.budget_s / 2, 2))
    res = solve(two, time_limit=30, mip_gap=1e-9)
    assert res.status == OPTIMAL
    assert np.all(evaluate(two, res.plan).gpu_time_s <= two.budget_s + 1e-9)
    # a pooled budget can only help: the two-server optimum is no better than one server with both
    assert res.objective <= solve(inst, time_limit=30, mip_gap=1e-9).objective + 1e-6


def test_api_misuse() -> None:
    inst = tiny_instance(seed=35, n_users=3)
    with pytest.raises(ValueError, match="method"):
        solve(inst, method="magic")
    with pytest.raises(ValueError, match="time_limit"):
        solve(inst, time_limit=0)
    with pytest.raises(ValueError, match="mip_gap"):
        solve(inst, mip_gap=2.0)
    sc = Scenario(total_steps=6, common_steps_max=2, edge_steps_max=3, height=64, width=64)
    users = synthetic_users(["a", "b"], sc)
    servers = [EdgeServer("es1", GPUProfile(name="t", rows=(1, 2), step_latency_s=(0.1, 0.2)), 1.0)]
    with pytest.raises(ValueError, match="lacks columns"):
        build_instance(users.drop(columns=["deadline_s"]), servers, sc, toy_hiqm(6),
                       similarity=np.eye(2))
    with pytest.raises(ValueError, match="total_steps"):
        build_instance(users, servers, sc, toy_hiqm(8), similarity=np.eye(2))
    with pytest.raises(ValueError, match="shape"):
        build_instance(users, servers, sc, toy_hiqm(6), similarity=np.eye(3))
    with pytest.raises(ValueError, match="unique"):
        build_instance(users, servers + servers, sc, toy_hiqm(6), similarity=np.eye(2))


def test_optimize_split_recovers_the_optimal_split() -> None:
    from his_opt.allocation import brute_force, optimize_split

    inst = tiny_instance(seed=36, n_users=6, budget_fraction=0.4)
    best, dec = brute_force(inst)
    scrambled = Decision(dec.server, dec.public, dec.x, dec.user_group, np.zeros_like(dec.y))
    plan = optimize_split(inst, scrambled)
    assert plan is not None
    assert np.isclose(evaluate(inst, plan).objective, best)


def test_pruned_publics_state_their_scope() -> None:
    inst = tiny_instance(seed=37, n_users=6, budget_fraction=0.5)
    full = solve(inst, time_limit=20, mip_gap=1e-9)
    pruned = solve(inst, time_limit=20, mip_gap=1e-9, top_k=2)
    assert "top-2" in pruned.bound_scope and "all groupings" in full.bound_scope
    assert pruned.objective <= full.objective + 1e-9
    # every shared user's public prompt is among its 2 most similar candidates or its own prompt
    dec = pruned.plan.to_decision(inst)
    for n in range(inst.n_users):
        p = dec.public[dec.user_group[n]]
        if p >= 0:
            top = set(np.argsort(-inst.sim[:, n])[:2]) | {int(inst.own_public[n])}
            assert p in top
