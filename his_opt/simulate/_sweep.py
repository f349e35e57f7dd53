"""``--sweep KEY=v1,v2,...``: the same simulation at each value of one setting (the operator's
question: how long to collect requests before planning), and the best value."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from .._atomic import atomic_write_text
from .._errors import InputError
from ._config import SimConfig
from ._runner import Setup, run_simulation

__all__ = ["SWEEP_KEYS", "parse_sweep", "run_sweep"]

SWEEP_KEYS = ("round_length_s", "arrivals.rate_per_s", "arrivals.users_per_round", "gpu_share")


def parse_sweep(text: str, cfg: SimConfig) -> tuple[str, list[float]]:
    """``KEY=v1,v2,...`` -> key and values, each config re-checked (``InputError`` if bad)."""
    key, eq, vals = text.partition("=")
    key = key.strip()
    if not eq or key not in SWEEP_KEYS:
        raise InputError(f"expected KEY=v1,v2,... with KEY one of {', '.join(SWEEP_KEYS)}",
                         file="--sweep", field=key or None)
    try:
        values = [float(v) for v in vals.split(",") if v.strip()]
    except ValueError as err:
        raise InputError(f"values must be numbers: {vals!r}", file="--sweep", field=key) from err
    if not values:
        raise InputError("no values given", file="--sweep", field=key)
    for v in values:
        _with(cfg, key, v)
    return key, values


def _with(cfg: SimConfig, key: str, v: float) -> SimConfig:
    if not v > 0 or not math.isfinite(v):
        raise InputError(f"must be > 0, got {v:g}", file="--sweep", field=key)
    return cfg.with_value(key, int(v) if key == "arrivals.users_per_round" else v)


def run_sweep(setup: Setup, out: Path, key: str, values: list[float], *,
              progress: bool = True) -> tuple[pd.DataFrame, float | None]:
    """Run every value into ``out/sweep/KEY=V`` (each resumable); write ``sweep.csv`` and
    ``sweep.png``; return the table and the best value (largest objective per user of the first
    policy, among values where every round had a plan)."""
    from ._figures import plot_sweep
    from ._rounds import RoundBuilder

    rows = []
    for v in values:
        cfg = _with(setup.cfg, key, v)
        b = setup.builder
        sub = Setup(cfg=cfg, builder=RoundBuilder(cfg, b.pool, list(setup.inputs.servers),
                                                  b.scenario, b.hiqm), inputs=setup.inputs)
        run_simulation(sub, out / "sweep" / f"{key}={v:g}", progress=progress, figures=False)
        rounds = pd.read_csv(out / "sweep" / f"{key}={v:g}" / "rounds.csv")
        for name in cfg.policies:
            d = rounds[rounds["policy"] == name]
            users = d["users"].sum()
            ok = d["reward"].notna() | (d["users"] == 0)

            def per(col: str, d: pd.DataFrame = d, users: int = users) -> float:
                return d[col].sum() / users if users else float("nan")

            rows.append({"value": v, "policy": name, "rounds": len(d),
                         "rounds_with_plan": int(ok.sum()),
                         "users_per_round": d["users"].mean(),
                         "reward_per_user": per("reward"),
                         "delay_per_user_s": (d["delay_s"].sum() + d["wait_s"].sum()) / users
                         if users else float("nan"),
                         "wait_per_user_s": per("wait_s"),
                         "gpu_saved_per_user_s": per("gpu_saved_s"),
                         "mean_decision_s": d["decision_s"].mean()})
    table = pd.DataFrame(rows)
    first = table[table["policy"] == setup.cfg.policies[0]]
    full = first[first["rounds_with_plan"] == first["rounds"]]
    best = None if full.empty else float(full.loc[full["reward_per_user"].idxmax(), "value"])
    atomic_write_text(out / "sweep.csv", table.to_csv(index=False, float_format="%.6g"))
    plot_sweep(out / "sweep.png", table, key, best)
    return table, best
