"""Benchmark the allocation solver against the baselines; prints a markdown table.

Instances: prompts generated from subject/attribute templates (seeded), real all-MiniLM-L6-v2
similarities, the shipped default HIQM (``models/hiqm/sim_npi.json``) and GPU profile
(``sd3-medium-1024-fp16-a100-estimate``), scenario defaults (T = 28, x <= 13, y <= 16), identical
servers whose budgets bind: together ``--budget-fraction`` (default 40%) of the GPU time that
IIS would need to run every user's full edge range (``N * y_max * (alpha + beta')``).

Run: ``python benchmarks/bench_solver.py [--sizes 50,200,1000,5000] [--time-limit 60]``.
Not a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from his_opt.allocation import build_instance, check_feasible, evaluate, run_baselines, solve  # noqa: E402
from his_opt.allocation._synthetic import generate_prompts, synthetic_users  # noqa: E402
from his_opt.costs import EdgeServer, load_profile  # noqa: E402
from his_opt.hiqm import load_default_hiqm  # noqa: E402
from his_opt.scenario import Scenario  # noqa: E402

DEFAULT_SERVERS = {50: 1, 200: 2, 1000: 4, 5000: 4}


def make_instance(n: int, n_servers: int, *, seed: int, budget_fraction: float, similarity):  # noqa: ANN001, ANN201
    sc = Scenario()
    pairs = generate_prompts(n, seed)
    prompts = [p for p, _ in pairs]
    users = synthetic_users(prompts, sc, subjects=[s for _, s in pairs])
    profile = load_profile(sc.server_profile)
    hiqm = load_default_hiqm(sc.variant)
    uniq = list(dict.fromkeys(prompts))
    t0 = time.perf_counter()
    emb = similarity.encode(uniq).astype(np.float64)
    sim = np.clip(emb @ emb.T, -1.0, 1.0)
    index = {p: i for i, p in enumerate(uniq)}
    cols = np.array([index[p] for p in prompts])
    sim = sim[:, cols]
    embed_s = time.perf_counter() - t0
    probe = build_instance(users, [EdgeServer("probe", profile, 1.0)], sc, hiqm, similarity=sim)
    need = n * sc.edge_steps_max * float(probe.alpha[0] + probe.beta[0])
    budget = budget_fraction * need / n_servers
    servers = [EdgeServer(f"es{s + 1}", profile, budget) for s in range(n_servers)]
    return build_instance(users, servers, sc, hiqm, similarity=sim, random_state=seed), embed_s


def unshared_gpu(inst, plan) -> float:  # noqa: ANN001
    """GPU time the same common and edge steps would take if every user ran them alone."""
    dec = plan.to_decision(inst)
    s = dec.server[dec.user_group]
    steps = dec.x[dec.user_group] + dec.y
    return float(np.sum((inst.alpha[s] + inst.beta[s]) * steps))


def rel(a: float, b: float) -> str:
    if not (math.isfinite(a) and math.isfinite(b)) or b == 0:
        return "n/a"
    return f"{100 * (a - b) / abs(b):+.1f}%"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="50,200,1000,5000")
    ap.add_argument("--servers", default=None, help="comma list matching --sizes")
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--mip-gap", type=float, default=1e-4)
    ap.add_argument("--budget-fraction", type=float, default=0.4)
    ap.add_argument("--baseline-time-limit", type=float, default=30.0)
    ap.add_argument("--no-baselines", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    sizes = [int(v) for v in args.sizes.split(",")]
    servers = ([int(v) for v in args.servers.split(",")] if args.servers
               else [DEFAULT_SERVERS.get(n, max(1, n // 250)) for n in sizes])
    from his_opt.similarity import PromptSimilarity

    simm = PromptSimilarity()
    rows = []
    for n, n_s in zip(sizes, servers, strict=True):
        inst, embed_s = make_instance(n, n_s, seed=args.seed,
                                      budget_fraction=args.budget_fraction, similarity=simm)
        print(f"[{n} users, {n_s} servers] embedded in {embed_s:.1f} s; solving ...",
              file=sys.stderr, flush=True)
        res = solve(inst, time_limit=args.time_limit, mip_gap=args.mip_gap)
        row = {"n": n, "servers": n_s, "status": res.status, "time": res.solve_time_s,
               "objective": res.objective, "bound": res.bound, "gap": res.gap,
               "scope": res.bound_scope, "stats": res.stats}
        if res.plan is not None:
            assert not check_feasible(inst, res.plan)
            ev = evaluate(inst, res.plan)
            row.update(gpu=float(ev.gpu_time_s.sum()), gpu_sim=float(ev.gpu_time_simulated_s.sum()),
                       budget=float(inst.budget_s.sum()), groups=ev.n_groups, solo=ev.n_solo,
                       unshared=unshared_gpu(inst, res.plan))
        if not args.no_baselines:
            print(f"[{n} users] baselines ...", file=sys.stderr, flush=True)
            base = run_baselines(inst, random_state=args.seed, time_limit=args.baseline_time_limit)
            row["baselines"] = {k: (b.objective, b.status, b.solve_time_s) for k, b in base.items()}
            iis = base["IIS"]
            if iis.plan is not None:
                row["iis_gpu"] = float(evaluate(inst, iis.plan).gpu_time_s.sum())
        rows.append(row)
        print(f"[{n} users] {res.status} in {res.solve_time_s:.1f} s, gap {res.gap:.2e}; "
              f"stats {res.stats}", file=sys.stderr, flush=True)
    print("| users | servers | status | time (s) | objective | bound | gap | GPU model / simulated / "
          "budget (s) | groups (solo) | GPU saved by sharing | IIS GPU (s) | vs IIS | vs GFIS | "
          "vs PPGFIS | vs greedy |")
    print("|" + "---|" * 15)
    for r in rows:
        b = r.get("baselines", {})
        cmp_ = [rel(r["objective"], b[k][0]) if k in b else "n/a"
                for k in ("IIS", "GFIS", "PPGFIS", "greedy")]
        gpu = (f"{r['gpu']:.1f} / {r['gpu_sim']:.1f} / {r['budget']:.1f}" if "gpu" in r else "n/a")
        saved = (f"{r['unshared'] - r['gpu']:.1f} s ({100 * (1 - r['gpu'] / r['unshared']):.0f}%)"
                 if "gpu" in r and r["unshared"] > 0 else "n/a")
        print(f"| {r['n']} | {r['servers']} | {r['status']} | {r['time']:.1f} | "
              f"{r['objective']:.2f} | {r['bound']:.2f} | {r['gap']:.2%} | {gpu} | "
              f"{r.get('groups', 'n/a')} ({r.get('solo', 'n/a')}) | {saved} | "
              f"{r.get('iis_gpu', float('nan')):.1f} | " + " | ".join(cmp_) + " |")
    print()
    for r in rows:
        print(f"- {r['n']} users: bound covers {r['scope']}")
        if "baselines" in r:
            parts = [f"{k} {v[0]:.2f} ({v[1]}, {v[2]:.1f} s)" for k, v in r["baselines"].items()]
            print("  baselines: " + "; ".join(parts))


if __name__ == "__main__":
    main()
