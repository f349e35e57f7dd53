"""Run a simulation: load the inputs, embed the pool once, train ``ippo`` if asked, then play
every evaluation round with every policy and append the rows to ``rounds.csv``.

Resume: ``rounds.csv`` is appended one round at a time (all policies), flushed and fsynced, and
only then ``state.json`` records its new length and the next round (written atomically). A run
killed anywhere restarts from ``state.json``: ``rounds.csv`` is cut back to the recorded length
(dropping a round whose state was not yet committed) and the next round is replayed. Rounds draw
from generators seeded by ``(seed, episode, round)``, so the replay is the same round.
``ippo`` training does the same per episode with ``ippo/training.csv`` and
``ippo/checkpoint.pt``. ``decision_s`` (wall time) is the one column that differs between runs.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._atomic import atomic_write_json, atomic_write_text
from .._errors import InputError
from ._config import SimConfig
from ._policies import BaselinePolicy, HisPolicy, IppoPolicy, Outcome, load_plugin
from ._rounds import Pool, Round, RoundBuilder, pool_labels

__all__ = ["ROUND_COLUMNS", "Setup", "check_resumable", "prepare", "run_simulation", "summarize"]

log = logging.getLogger(__name__)

ROUND_COLUMNS = ("policy", "episode", "round", "status", "users", "groups", "reward",
                 "objective", "quality", "delay_s", "wait_s", "energy_j", "gpu_s", "budget_s",
                 "gpu_saved_s", "decision_s")
"""``reward`` = ``objective - w_delay * wait_s`` (the plan's objective less the queueing wait);
``gpu_saved_s``: GPU seconds the plan saves against the same steps run unshared."""

_KILL_ENV = "HIS_OPT_SIMULATE_KILL_AFTER"
_commits = 0


def _commit_point() -> None:
    """Test hook: ``HIS_OPT_SIMULATE_KILL_AFTER=k`` SIGKILLs the process after the k-th append,
    before its state is committed (the worst moment for a kill)."""
    global _commits
    _commits += 1
    limit = os.environ.get(_KILL_ENV)
    if limit and _commits >= int(limit):
        os.kill(os.getpid(), signal.SIGKILL)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.10g}"
    return str(v)


def _append(path: Path, lines: list[str]) -> int:
    with open(path, "ab") as fh:
        fh.write("".join(lines).encode("utf-8"))
        fh.flush()
        os.fsync(fh.fileno())
        return fh.tell()


def _restart_file(path: Path, header: str, keep_bytes: int | None) -> None:
    """Cut ``path`` back to ``keep_bytes`` (a committed length), or start it with ``header``."""
    if keep_bytes is None or not path.exists():
        atomic_write_text(path, header)
        return
    with open(path, "r+b") as fh:
        fh.truncate(keep_bytes)


@dataclass(eq=False)
class Setup:
    """Everything a run needs, loaded and checked before anything is written."""

    cfg: SimConfig
    builder: RoundBuilder
    inputs: Any


def prepare(cfg: SimConfig, *, similarity: Any = None) -> Setup:
    """Load the pool, servers, scenario and HIQM; embed the pool once (``similarity``: a
    precomputed pool x pool matrix, or an object with ``.matrix``; default MiniLM)."""
    from ..io import SolveInputs

    for key in ("users", "scenario", "servers", "hiqm"):
        p = getattr(cfg, key)
        if p is not None and not Path(p).exists():
            raise InputError(f"file not found: {p}", file=cfg.source, field=key)
    inputs = SolveInputs.load(cfg.users, servers=cfg.servers, config=cfg.scenario, hiqm=cfg.hiqm,
                              seed=cfg.seed)
    table = inputs.users
    if not cfg.arrivals.replace and cfg.arrivals.mode == "fixed" and \
            cfg.arrivals.users_per_round > len(table):
        raise InputError(f"users_per_round {cfg.arrivals.users_per_round} exceeds the pool's "
                         f"{len(table)} users drawn without replacement", file=cfg.source,
                         field="arrivals.users_per_round")
    prompts = list(table["prompt"])
    if similarity is None:
        similarity = inputs.prompt_similarity()
    sim = (np.asarray(similarity.matrix(prompts), dtype=float) if hasattr(similarity, "matrix")
           else np.asarray(similarity, dtype=float))
    if sim.shape != (len(prompts), len(prompts)):
        raise ValueError(f"pool similarity must be {len(prompts)} x {len(prompts)}, "
                         f"got {sim.shape}")
    sim = np.clip(sim, -1.0, 1.0)
    labels_inst = None
    if any(s is None for s in table["subject"]):
        from ..allocation import build_instance

        labels_inst = build_instance(table, inputs.servers, inputs.scenario, inputs.hiqm,
                                     similarity=sim, candidates=prompts)
    pool = Pool(table=table, sim=sim, labels=pool_labels(table, sim, labels_inst))
    builder = RoundBuilder(cfg, pool, inputs.servers, inputs.scenario, inputs.hiqm)
    return Setup(cfg=cfg, builder=builder, inputs=inputs)


# ---------------------------------------------------------------------------------- ippo
def _ippo_policy(setup: Setup, out: Path, progress: bool) -> IppoPolicy:
    from ._env import PaperEnv
    from ._ippo import TRAINING_COLUMNS, IppoAgents, train_ippo

    cfg, st = setup.cfg, setup.cfg.ippo
    n = cfg.arrivals.users_per_round
    env = PaperEnv(setup.builder, n, budget_penalty=st.budget_penalty)
    agents = IppoAgents(n, env.action_sizes, st, seed=cfg.seed)
    if st.load is not None:
        try:
            agents.load_state(IppoAgents.read(st.load))
        except (OSError, ValueError, KeyError, RuntimeError) as err:
            raise InputError(f"cannot load the ippo policy: {err}", file=st.load,
                             field="ippo.load") from err
        return IppoPolicy(agents, env, st.eval_mode)
    folder = out / "ippo"
    folder.mkdir(parents=True, exist_ok=True)
    ckpt, log_csv = folder / "checkpoint.pt", folder / "training.csv"
    keep = None
    if ckpt.exists():
        data = IppoAgents.read(ckpt)
        agents.load_state(data)
        keep = int(data["training_bytes"])
    _restart_file(log_csv, ",".join(TRAINING_COLUMNS) + "\n", keep)
    bar = _bar(st.episodes, agents.episodes_done, "ippo training", progress)

    def on_episode(row: dict[str, float]) -> None:
        size = _append(log_csv, [",".join(_fmt(row[c]) for c in TRAINING_COLUMNS) + "\n"])
        _commit_point()
        agents.save(ckpt, training_bytes=size)
        bar.update(1)
        bar.set_postfix(reward=f"{row['reward']:.1f}")

    train_ippo(agents, env, st, seed=cfg.seed, on_episode=on_episode)
    bar.close()
    agents.save(folder / "policy.pt")
    return IppoPolicy(agents, env, st.eval_mode)


def _bar(total: int, initial: int, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, file=sys.stderr, disable=not enabled,
                dynamic_ncols=True)


# ---------------------------------------------------------------------------------- rounds
def _policies(setup: Setup, out: Path, progress: bool) -> list[Any]:
    made = []
    for name in setup.cfg.policies:
        if name == "his":
            made.append(HisPolicy(setup.cfg))
        elif name == "ippo":
            made.append(_ippo_policy(setup, out, progress))
        elif name in ("iis", "gfis", "ppgfis", "greedy"):
            made.append(BaselinePolicy(name, setup.cfg))
        else:
            made.append(load_plugin(name, setup.builder, setup.cfg))
    return made


def _row(policy: str, rnd: Round, inst: Any, res: Outcome, w_delay: float) -> dict[str, Any]:
    from ..allocation import check_feasible, evaluate

    wait = float(rnd.wait_s.sum())
    base = {"policy": policy, "episode": rnd.episode, "round": rnd.index, "users": rnd.n_users,
            "wait_s": wait, "budget_s": rnd.budget_s, "decision_s": res.decision_s}
    nan = float("nan")
    if res.plan is None:
        return {**base, "status": res.status, "groups": 0, **dict.fromkeys(
            ("reward", "objective", "quality", "delay_s", "energy_j", "gpu_s", "gpu_saved_s"),
            nan)}
    from ..allocation._decision import Decision

    dec = res.plan if isinstance(res.plan, Decision) else res.plan.to_decision(inst)
    status = "violates" if check_feasible(inst, dec) else res.status
    ev = evaluate(inst, dec)
    s_u, x_u = dec.user_server(), dec.user_x()
    unshared = float(np.sum((inst.alpha[s_u] + inst.beta[s_u]) * (x_u + dec.y)))
    gpu = float(ev.gpu_time_s.sum())
    return {**base, "status": status, "groups": ev.n_groups, "reward": ev.objective - w_delay * wait,
            "objective": ev.objective, "quality": ev.quality, "delay_s": ev.delay_s,
            "energy_j": ev.energy_j, "gpu_s": gpu, "gpu_saved_s": unshared - gpu}


def _empty_row(policy: str, rnd: Round) -> dict[str, Any]:
    zero = dict.fromkeys(("reward", "objective", "quality", "delay_s", "energy_j", "gpu_s",
                          "gpu_saved_s", "wait_s", "decision_s"), 0.0)
    return {"policy": policy, "episode": rnd.episode, "round": rnd.index, "status": "empty",
            "users": 0, "groups": 0, "budget_s": rnd.budget_s, **zero}


def check_resumable(out: str | Path, cfg: SimConfig) -> None:
    """``InputError`` if ``out`` holds a run of another config (read-only check)."""
    path = Path(out) / "config.json"
    if path.exists():
        mine = {k: v for k, v in cfg.to_dict().items() if k != "source"}
        theirs = {k: v for k, v in json.loads(path.read_text()).items() if k != "source"}
        if theirs != mine:
            raise InputError("holds a run of a different config (or seed); resume with the "
                             "same config or choose a new --out", file=out)


def _check_same_run(out: Path, cfg: SimConfig) -> None:
    check_resumable(out, cfg)
    if not (out / "config.json").exists():
        atomic_write_json(out / "config.json", cfg.to_dict())


def run_simulation(setup: Setup, out: str | Path, *, progress: bool = True,
                   figures: bool = True,
                   on_round: Callable[[int], None] | None = None) -> pd.DataFrame:
    """Run (or resume) the simulation into ``out``; return the summary table."""
    out = Path(out)
    cfg = setup.cfg
    out.mkdir(parents=True, exist_ok=True)
    _check_same_run(out, cfg)
    policies = _policies(setup, out, progress)
    rounds_csv, state_path = out / "rounds.csv", out / "state.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else None
    _restart_file(rounds_csv, ",".join(ROUND_COLUMNS) + "\n",
                  None if state is None else int(state["rounds_bytes"]))
    total = cfg.episodes * cfg.rounds_per_episode
    start = 0 if state is None else int(state["next"])
    bar = _bar(total, start, "rounds", progress)
    w_delay = setup.builder.scenario.w_delay
    for k in range(start, total):
        ep, r = divmod(k, cfg.rounds_per_episode)
        rnd = setup.builder.draw(ep, r)
        if rnd.n_users == 0:
            rows = [_empty_row(p.name, rnd) for p in policies]
        else:
            inst = setup.builder.instance(rnd)
            rows = [_row(p.name, rnd, inst, p.decide(rnd, inst), w_delay) for p in policies]
        size = _append(rounds_csv, [",".join(_fmt(row[c]) for c in ROUND_COLUMNS) + "\n"
                                    for row in rows])
        _commit_point()
        atomic_write_json(state_path, {"rounds_bytes": size, "next": k + 1})
        bar.update(1)
        if on_round is not None:
            on_round(k)
    bar.close()
    rounds = pd.read_csv(rounds_csv)
    summary = summarize(rounds, [p.name for p in policies])
    atomic_write_text(out / "summary.csv", summary.to_csv(index=False, float_format="%.6g"))
    if figures:
        from ._figures import write_figures

        write_figures(out, rounds, summary)
    return summary


def summarize(rounds: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """Per policy: means per round, gains over the paper's baselines, gap to ``his``, and the
    QoS / delay / energy normalised to the largest policy (the form of the paper's Fig. 5b)."""
    rows = []
    for name in order:
        d = rounds[rounds["policy"] == name]
        ok = d[d["reward"].notna()]
        rows.append({"policy": name, "rounds": len(d), "rounds_with_plan": len(ok),
                     **{f"mean_{c}": ok[c].mean() for c in (
                         "reward", "objective", "quality", "delay_s", "wait_s", "energy_j",
                         "gpu_s", "gpu_saved_s")},
                     "mean_decision_s": d["decision_s"].mean(),
                     "max_decision_s": d["decision_s"].max()})
    s = pd.DataFrame(rows)
    means = dict(zip(s["policy"], s["mean_reward"], strict=True))
    for base in ("iis", "gfis", "ppgfis"):
        if base in means:
            b = means[base]
            s[f"gain_vs_{base}"] = (s["mean_reward"] - b) / abs(b) if b else float("nan")
    if "his" in means:
        s["gap_to_his"] = (means["his"] - s["mean_reward"]) / abs(means["his"])
    for col, norm in (("mean_quality", "qos_norm"), ("mean_delay_s", "delay_norm"),
                      ("mean_energy_j", "energy_norm")):
        top = s[col].max()
        s[norm] = s[col] / top if top and not math.isnan(top) else float("nan")
    return s
