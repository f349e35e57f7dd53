"""Benchmark the allocation solver on the issue's target rows; prints a markdown table.

Per row one seeded instance of :func:`his_opt.allocation._synthetic.benchmark_workload` (several
prompt domains of uneven size, near-duplicates, outliers, phone/laptop/desktop devices, deadlines
for a quarter of the users, minimum qualities for a fifth) on the row's servers (``1``,
``K-identical``, ``3-unequal`` = 50/30/10% of the need with launch caps 16/8/4, ``3-mixed`` and
``16-mixed`` with a synthetic L4-class profile next to the shipped A100 estimate). Similarities
are real all-MiniLM-L6-v2 cosines, embedded once per instance and cached under
``benchmarks/.cache/`` (``--synthetic-similarity`` uses the generator's stand-in embeddings and
loads no model).

Every solver runs in its own subprocess on the same instance files (users CSV, embeddings,
servers JSON, HIQM path), so its peak RSS (``VmHWM``) is its own:

* ``new``: ``solve`` of this checkout;
* ``previous``: ``solve`` of the previous release (``--previous-commit``, default ``fe5da20``),
  from a git worktree created in the temp dir when absent, imported through ``PYTHONPATH``;
* ``milp``: the naive compact MILP on HiGHS (``solve(method="milp")``), rows up to
  ``--milp-max-users`` (100) users;
* ``exact``: the enumerator (:func:`his_opt.allocation.exact_optimum`), rows up to 8 users.

``--whole-cli ROW`` instead times ``python solve.py`` end to end on a row (baselines and report
included) and checks it against ``time limit + embedding time + 10%``.

Run: ``python benchmarks/bench_solver.py [--rows 8u-3u,30-3u] [--solvers new,previous]``.
Not a test: timings depend on the machine, and a shared CPU slows every column alike.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / "benchmarks" / ".cache"
PREVIOUS_COMMIT = "fe5da20"

# row: (users, server mix, time limit s, target)
ROWS: dict[str, tuple[int, str, float, str]] = {
    "8u-1": (8, "1", 10.0, "optimal in <= 1 s"),
    "8u-3i": (8, "3-identical", 10.0, "optimal in <= 1 s"),
    "8u-3u": (8, "3-unequal", 10.0, "optimal in <= 1 s"),
    "6u-3m": (6, "3-mixed", 10.0, "optimal in <= 1 s"),
    "30-3i": (30, "3-identical", 10.0, "gap <= 0.5% in <= 10 s"),
    "30-3u": (30, "3-unequal", 10.0, "gap <= 0.5% in <= 10 s"),
    "100-3u": (100, "3-unequal", 60.0, "gap <= 1% in <= 60 s"),
    "300-3u": (300, "3-unequal", 60.0, "gap <= 1% in <= 60 s"),
    "1000-4i": (1000, "4-identical", 60.0, "gap <= 0.5% in <= 60 s"),
    "3000-3i": (3000, "3-identical", 60.0, "gap <= 1% in <= 60 s"),
    "10000-16m": (10000, "16-mixed", 120.0, "gap <= 1% in <= 120 s, RSS < 4 GB"),
    "50000-16m": (50000, "16-mixed", 120.0, "RSS < 4 GB, within the limit"),
}
# rows whose public candidates are capped (the first distinct prompts, as a --candidates file
# would give them): 36,305 distinct prompts x 50,000 users would need 14.5 GB of similarities
CANDIDATES: dict[str, int] = {"50000-16m": 2000}
SOLVERS = ("new", "previous", "milp", "exact")
EXACT_MAX_USERS = 8


# ---------------------------------------------------------------------------- worker (subprocess)
def peak_rss_mb() -> float:
    """This process's peak resident set (``VmHWM``), MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_instance(folder: Path):  # noqa: ANN201
    """Rebuild the instance from the files :func:`write_instance` wrote, with whichever his_opt
    is first on ``sys.path`` (so the previous release reads the same inputs)."""
    import pandas as pd

    from his_opt.allocation import build_instance
    from his_opt.costs import EdgeServer, GPUProfile
    from his_opt.hiqm import HIQM
    from his_opt.scenario import Scenario

    meta = json.loads((folder / "instance.json").read_text())
    users = pd.read_csv(folder / "users.csv")  # empty cells: NaN, read as "none" / "no limit"
    emb = np.load(folder / "embeddings.npy").astype(np.float64)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    prompts = [str(p) for p in users["prompt"]]
    first: dict[str, int] = {}
    for i, p in enumerate(prompts):
        first.setdefault(p, i)
    cands = list(first)[: meta.get("candidates") or len(first)]
    sim = emb[[first[c] for c in cands]] @ emb.T
    np.clip(sim, -1.0, 1.0, out=sim)
    del emb
    servers = [EdgeServer(s["name"], GPUProfile.from_dict(s["profile"]), s["budget_s"],
                          max_batch_images=s["max_batch_images"]) for s in meta["servers"]]
    hiqm = HIQM.load(meta["hiqm"])
    return build_instance(users, servers, Scenario(), hiqm, similarity=sim,
                          candidates=cands if "candidates" in meta else None,
                          random_state=meta["seed"])


def worker(folder: Path, solver: str, time_limit: float, mip_gap: float, out: Path) -> None:
    """Solve once and write a JSON result (never raises: an error becomes the status)."""
    import his_opt

    row: dict = {"solver": solver, "his_opt": str(Path(his_opt.__file__).parent)}
    try:
        t0 = time.perf_counter()
        inst = load_instance(folder)
        row["build_s"] = time.perf_counter() - t0
        from his_opt.allocation import check_feasible

        t0 = time.perf_counter()
        if solver == "exact":
            from his_opt.allocation import exact_optimum

            best, dec = exact_optimum(inst, time_limit=time_limit)
            row.update(status="optimal" if dec is not None else "infeasible", objective=best,
                       bound=best, gap=0.0 if dec is not None else math.nan,
                       feasible=dec is None or not check_feasible(inst, dec))
        else:
            from his_opt.allocation import solve

            method = "milp" if solver == "milp" else "auto"
            res = solve(inst, time_limit=time_limit, mip_gap=mip_gap, method=method)
            row.update(status=res.status, objective=res.objective, bound=res.bound, gap=res.gap,
                       feasible=res.plan is None or not check_feasible(inst, res.plan),
                       solve_time_s=res.solve_time_s)
        row["wall_s"] = time.perf_counter() - t0
    except Exception as err:  # noqa: BLE001 - the benchmark records what broke
        row.update(status=f"error: {type(err).__name__}: {str(err)[:120]}")
    row["peak_rss_mb"] = peak_rss_mb()
    out.write_text(json.dumps(row, default=float))


# ---------------------------------------------------------------------------- instances
def embed(prompts: list[str], *, synthetic: np.ndarray | None) -> tuple[np.ndarray, float, str]:
    """Per-user embeddings (MiniLM, cached by the prompt list's hash), seconds spent, source."""
    if synthetic is not None:
        return synthetic, 0.0, "synthetic"
    uniq = list(dict.fromkeys(prompts))
    key = hashlib.sha256("\n".join(uniq).encode()).hexdigest()[:20]
    path = CACHE / f"minilm-{len(uniq)}-{key}.npz"
    t0 = time.perf_counter()
    if path.exists():
        emb = np.load(path)["embeddings"]
        source = "MiniLM (cached)"
    else:
        from his_opt.similarity import PromptSimilarity

        emb = np.asarray(PromptSimilarity().encode(uniq), dtype=np.float32)
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, embeddings=emb)
        os.replace(tmp, path)
        source = "MiniLM"
    index = {p: i for i, p in enumerate(uniq)}
    return emb[[index[p] for p in prompts]], time.perf_counter() - t0, source


def write_instance(folder: Path, row: str, seed: int, synthetic: bool) -> dict:
    """Generate the row's workload and write the files every solver reads."""
    from his_opt.allocation._synthetic import benchmark_workload
    from his_opt.hiqm import default_hiqm_path

    n, mix, _, _ = ROWS[row]
    work = benchmark_workload(n, mix, random_state=seed)
    emb, embed_s, source = embed(work.prompts, synthetic=work.embeddings if synthetic else None)
    folder.mkdir(parents=True, exist_ok=True)
    work.users.to_csv(folder / "users.csv", index=False)
    np.save(folder / "embeddings.npy", emb)
    meta = {
        "row": row, "seed": seed, "similarity": source,
        **({"candidates": CANDIDATES[row]} if row in CANDIDATES else {}),
        "hiqm": str(default_hiqm_path(work.scenario.variant)),
        "servers": [{"name": s.name, "budget_s": s.budget_s, "max_batch_images": s.max_batch_images,
                     "profile": s.profile.to_dict()} for s in work.servers],
    }
    (folder / "instance.json").write_text(json.dumps(meta))
    return {"embed_s": embed_s, "similarity": source, "work": work}


# ---------------------------------------------------------------------------- solvers
def previous_tree(commit: str, path: Path | None) -> Path:
    """A checkout of the previous release (a detached git worktree, made once)."""
    path = path or Path(tempfile.gettempdir()) / f"his-opt-prev-{commit}"
    if not (path / "his_opt" / "__init__.py").exists():
        print(f"creating a worktree of {commit} at {path} ...", file=sys.stderr, flush=True)
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(path), commit],
                       check=True, stdout=subprocess.DEVNULL)
    return path


def run_solver(folder: Path, solver: str, tree: Path, time_limit: float, mip_gap: float) -> dict:
    """Run one solver in a fresh interpreter with ``tree`` first on ``PYTHONPATH``."""
    out = folder / f"result-{solver}.json"
    out.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": str(tree), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(folder), "--solver",
           solver, "--time-limit", str(time_limit), "--mip-gap", str(mip_gap), "--out", str(out)]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True,
                              timeout=3 * time_limit + 300)
    except subprocess.TimeoutExpired:
        return {"solver": solver, "status": "killed (3x limit + 300 s)",
                "wall_s": time.perf_counter() - t0}
    if not out.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"solver": solver, "status": f"crashed (rc {proc.returncode}): {tail[0][:120]}"}
    res = json.loads(out.read_text())
    if not res["his_opt"].startswith(str(tree)):
        res["status"] = f"wrong his_opt imported: {res['his_opt']}"
    return res


# ---------------------------------------------------------------------------- table
def fmt(v: object, spec: str = ".2f") -> str:
    if isinstance(v, int | float) and math.isfinite(v):
        return format(v, spec)
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)


def ratio(a: object, b: object) -> str:
    ok = all(isinstance(v, int | float) and math.isfinite(v) for v in (a, b))
    return f"{a / b:.2f}x" if ok and b > 0 else "n/a"


def print_table(results: list[dict]) -> None:
    print("| row | users | servers | solver | status | wall (s) | objective | bound | gap | "
          "peak RSS (MB) | time vs previous | RSS vs previous | objective vs previous | target |")
    print("|" + "---|" * 14)
    for r in results:
        prev = next((q for q in results if q["row"] == r["row"] and q["solver"] == "previous"), None)
        cmp_ = ["", "", ""]
        if r["solver"] != "previous" and prev is not None:
            dobj = (r.get("objective"), prev.get("objective"))
            rel = (f"{round(100 * (dobj[0] - dobj[1]) / abs(dobj[1]), 2) + 0.0:+.2f}%"
                   if all(isinstance(v, float) and math.isfinite(v) for v in dobj) and dobj[1]
                   else "n/a")
            cmp_ = [ratio(r.get("wall_s"), prev.get("wall_s")),
                    ratio(r.get("peak_rss_mb"), prev.get("peak_rss_mb")), rel]
        gap = r.get("gap")
        gap_s = f"{100 * gap:.3f}%" if isinstance(gap, float) and math.isfinite(gap) else "n/a"
        status = r["status"] + ("" if r.get("feasible", True) else " (PLAN INFEASIBLE)")
        print(f"| {r['row']} | {r['users']} | {r['mix']} | {r['solver']} | {status} | "
              f"{fmt(r.get('wall_s'), '.1f')} | {fmt(r.get('objective'))} | {fmt(r.get('bound'))} | "
              f"{gap_s} | {fmt(r.get('peak_rss_mb'), '.0f')} | " + " | ".join(cmp_) +
              f" | {r['target'] if r['solver'] == 'new' else ''} |")


# ---------------------------------------------------------------------------- whole CLI
def whole_cli(row: str, seed: int, time_limit: float | None) -> None:
    """Time ``python solve.py`` end to end on ``row`` and compare with limit + embedding + 10%."""
    n, mix, limit, _ = ROWS[row]
    limit = time_limit or limit
    with tempfile.TemporaryDirectory(prefix="his-opt-cli-") as tmp:
        folder = Path(tmp)
        info = write_instance(folder / "instance", row, seed, synthetic=True)
        work = info["work"]
        users = work.users.drop(columns=["device_step_energy_j", "negative_prompt"])
        users["device_power_w"] = work.users["device_step_energy_j"] / work.users["device_step_s"]
        users.to_csv(folder / "users.csv", index=False)
        lines = ["name,profile,budget_s,max_batch_images"]
        for s in work.servers:
            prof = folder / f"{s.profile.name}.json"
            s.profile.save(prof)
            lines.append(f"{s.name},{prof},{s.budget_s!r},{s.max_batch_images or ''}")
        (folder / "servers.csv").write_text("\n".join(lines) + "\n")
        env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
        probe = ("import sys,time; t=time.perf_counter(); from his_opt.similarity import "
                 "PromptSimilarity; import pandas as pd; p=list(dict.fromkeys(pd.read_csv(sys.argv[1])"
                 "['prompt'].astype(str))); PromptSimilarity().encode(p); "
                 "print(time.perf_counter()-t)")
        emb = subprocess.run([sys.executable, "-c", probe, str(folder / "users.csv")], env=env,
                             capture_output=True, text=True, check=True)
        embed_s = float(emb.stdout.strip().splitlines()[-1])
        cmd = [sys.executable, str(REPO / "solve.py"), str(folder / "users.csv"), "--servers",
               str(folder / "servers.csv"), "--time-limit", str(limit), "--seed", str(seed),
               "--out", str(folder / "report.xlsx"), "--plan", str(folder / "plan.json")]
        if row in CANDIDATES:  # the first distinct prompts, as for the solver rows
            firsts = list(dict.fromkeys(users["prompt"].astype(str)))[: CANDIDATES[row]]
            (folder / "candidates.txt").write_text("\n".join(firsts) + "\n")
            cmd += ["--candidates", str(folder / "candidates.txt")]
        print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    allowed = 1.1 * (limit + embed_s)
    print(proc.stdout.rstrip())
    phases = [line for line in proc.stderr.splitlines()
              if ": done in " in line or "his-opt: time limit" in line or "baseline " in line]
    print("\n".join(phases))  # the run's time plan and each phase's seconds
    if proc.returncode not in (0, 1):
        print(proc.stderr.rstrip()[-2000:])
    verdict = "within" if wall <= allowed else "OVER"
    print(f"\nwhole CLI, row {row} ({n} users, {mix}): exit {proc.returncode}, wall {wall:.1f} s; "
          f"limit {limit:.0f} s + embedding {embed_s:.1f} s + 10% = {allowed:.1f} s: {verdict}; "
          f"largest child process (the embedding probe or solve.py) peak RSS {rss_mb:.0f} MB")


# ---------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default=",".join(ROWS), help=f"comma list of {', '.join(ROWS)}")
    ap.add_argument("--solvers", default="new,previous,milp,exact",
                    help=f"comma list of {', '.join(SOLVERS)}")
    ap.add_argument("--time-limit", type=float, default=None, help="override every row's limit")
    ap.add_argument("--mip-gap", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--milp-max-users", type=int, default=100)
    ap.add_argument("--previous-commit", default=PREVIOUS_COMMIT)
    ap.add_argument("--previous-tree", type=Path, default=None)
    ap.add_argument("--synthetic-similarity", action="store_true",
                    help="the generator's stand-in embeddings instead of MiniLM")
    ap.add_argument("--whole-cli", metavar="ROW", default=None)
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--solver", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker is not None:
        worker(args.worker, args.solver, args.time_limit, args.mip_gap, args.out)
        return
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.whole_cli:
        whole_cli(args.whole_cli, args.seed, args.time_limit)
        return
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    solvers = [s.strip() for s in args.solvers.split(",") if s.strip()]
    bad = [r for r in rows if r not in ROWS] + [s for s in solvers if s not in SOLVERS]
    if bad:
        ap.error(f"unknown rows or solvers: {bad}")
    prev = previous_tree(args.previous_commit, args.previous_tree) if "previous" in solvers else None
    trees = {"new": REPO, "milp": REPO, "exact": REPO, "previous": prev}
    results = []
    with tempfile.TemporaryDirectory(prefix="his-opt-bench-") as tmp:
        for row in rows:
            n, mix, limit, target = ROWS[row]
            limit = args.time_limit or limit
            folder = Path(tmp) / row
            info = write_instance(folder, row, args.seed, args.synthetic_similarity)
            print(f"[{row}] {n} users, servers {mix}, limit {limit:.0f} s, similarity "
                  f"{info['similarity']} ({info['embed_s']:.1f} s)", file=sys.stderr, flush=True)
            for solver in solvers:
                if (solver == "milp" and n > args.milp_max_users) or (
                        solver == "exact" and n > EXACT_MAX_USERS):
                    continue
                res = run_solver(folder, solver, trees[solver], limit, args.mip_gap)
                res.update(row=row, users=n, mix=mix, target=target)
                print(f"[{row}] {solver}: {res['status']} in {fmt(res.get('wall_s'), '.1f')} s, "
                      f"objective {fmt(res.get('objective'))}, bound {fmt(res.get('bound'))}, "
                      f"RSS {fmt(res.get('peak_rss_mb'), '.0f')} MB", file=sys.stderr, flush=True)
                results.append(res)
    print_table(results)


if __name__ == "__main__":
    main()
