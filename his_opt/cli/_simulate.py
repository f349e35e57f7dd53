"""``his-opt simulate CONFIG.yaml --out DIR``: episodes of rounds with every configured policy.

Everything is read and checked (config, pool, servers, scenario, HIQM, sweep values) before DIR
is created, so a bad config writes nothing. A killed run resumes when started again with the same
command.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_simulate_parser", "simulate_main"]

_EPILOG = """\
outputs in DIR:
  rounds.csv       policy, episode, round, status, users, groups, reward, objective, quality,
                   delay_s, wait_s, energy_j, gpu_s, budget_s, gpu_saved_s, decision_s
  summary.csv      per policy: means, gains over IIS / GFIS / PPGFIS, gap to his, normalised
                   QoS / delay / energy, decision time
  ippo/            training.csv, checkpoint.pt, policy.pt (when ippo trains)
  *.png            training_reward.png, policies.png, gpu_saved.png (sweep: sweep.csv, sweep.png)

examples:
  his-opt simulate examples/paper_sim.yaml --out out/paper_sim
  his-opt simulate examples/queue_sim.yaml --out out/queue --sweep round_length_s=2,4,8,16
"""


def add_simulate_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``simulate`` on the ``his-opt`` subcommand parsers."""
    p = subparsers.add_parser(
        "simulate", help="episodes of rounds: arrivals, policies (his, ippo, baselines), figures",
        description="Simulate an edge server round after round and compare policies.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", metavar="CONFIG.yaml", type=Path, help="simulation config")
    p.add_argument("--out", metavar="DIR", type=Path, required=True, help="output folder")
    p.add_argument("--seed", metavar="N", type=int, default=None,
                   help="random seed (default: the config's seed)")
    p.add_argument("--device", metavar="D", default=None,
                   help="torch device for ippo training: cpu or cuda (default: the config's)")
    p.add_argument("--sweep", metavar="KEY=V1,V2,...", default=None,
                   help="run once per value of KEY (round_length_s, arrivals.rate_per_s, "
                   "arrivals.users_per_round, gpu_share) and name the best")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=simulate_main)
    return p


def simulate_main(args: argparse.Namespace) -> int:
    from .._errors import InputError
    from ..simulate import (
        check_resumable,
        load_sim_config,
        parse_sweep,
        prepare,
        run_simulation,
        run_sweep,
    )

    cfg = load_sim_config(args.config)
    if args.seed is not None:
        if args.seed < 0:
            raise InputError(f"must be >= 0, got {args.seed}", file="--seed")
        cfg = dataclasses.replace(cfg, seed=args.seed)
    if args.device is not None:
        cfg = cfg.with_value("ippo.device", args.device)
    sweep = parse_sweep(args.sweep, cfg) if args.sweep else None
    if args.out.exists() and not args.out.is_dir():
        raise InputError("exists and is not a folder", file=args.out)
    if sweep is None:
        check_resumable(args.out, cfg)
    setup = prepare(cfg)
    progress = not args.quiet
    if sweep is not None:
        key, values = sweep
        table, best = run_sweep(setup, args.out, key, values, progress=progress)
        cols = ["value", "policy", "users_per_round", "reward_per_user", "delay_per_user_s",
                "gpu_saved_per_user_s", "rounds_with_plan", "rounds"]
        print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        print(f"best {key}: {'none (no value had a plan every round)' if best is None else best}")
        return 0
    summary = run_simulation(setup, args.out, progress=progress)
    _print_summary(summary, sys.stdout)
    print(f"outputs       {args.out}")
    return 0


def _print_summary(s: Any, fh: Any) -> None:
    cols = [c for c in ("policy", "rounds_with_plan", "mean_reward", "mean_quality",
                        "mean_delay_s", "mean_energy_j", "gain_vs_iis", "gain_vs_gfis",
                        "gain_vs_ppgfis", "gap_to_his", "mean_decision_s") if c in s.columns]
    t = s[cols].copy()
    for c in ("gain_vs_iis", "gain_vs_gfis", "gain_vs_ppgfis", "gap_to_his"):
        if c in t:
            t[c] = t[c].map(lambda v: "" if v != v else f"{100 * v:+.1f}%")
    print(t.to_string(index=False, float_format=lambda v: f"{v:.4g}"), file=fh)
