"""``his-opt solve`` (and ``python solve.py``): plan hybrid inference for a set of users.

Reads and validates every input first (users, servers, scenario, HIQM, candidates, output
paths), embeds the prompts, solves the allocation, scores the baselines, and only then writes the
Excel report and the JSON plan, each atomically: bad input or an interrupted run leaves no output
file behind (and never a half-written one).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .._errors import InputError

__all__ = ["add_solve_parser", "build_solve_parser", "main", "solve_main"]

_DESCRIPTION = """\
Plan hybrid inference for the users in USERS.csv: group users with similar prompts, choose each
group's public prompt, edge server and common steps x, and each user's edge steps y and device
steps z (x + y + z = T), maximising w1 * quality - w2 * delay - w3 * energy under each server's
GPU-time budget. Writes an Excel report and a JSON plan (read by `his-opt generate`).
"""

_EPILOG = """\
inputs:
  USERS.csv     columns user_id, prompt; optional negative_prompt, device_step_s,
                device_power_w, device_cycles_per_step, device_freq_hz, device_kappa,
                bandwidth_hz, tx_power_w, channel_gain, deadline_s, min_quality, subject
                (empty cells take the scenario's defaults; columns starting with '_' are notes)
  --servers     CSV or YAML: name, profile, budget_s[, max_batch_images]; profile is a name
                under models/gpu/, a profile JSON path, or 'cycle' (paper's cycle model, with
                optional cycles_per_step, freq_hz, kappa). Default: one server 'es1' with the
                scenario's server_profile and server_budget_s.
  --config      YAML or TOML with any Scenario field (see examples/scenario.yaml).
  --candidates  public-prompt candidates, one per line ('#' comments). Default: the users'
                own prompts.

outputs:
  --out         Excel report (sheets Summary, Groups, Users, Servers, Model).
  --plan        JSON plan, schema his-opt/plan/1. Default: plan.json beside --out.

exit status: 0 done; 1 no feasible plan; 2 bad input (one line naming file, row and field;
nothing is written).

examples:
  python solve.py examples/users.csv --out out/report.xlsx --plan out/plan.json
  python solve.py examples/users.csv --servers examples/servers.csv --time-limit 60 --seed 1
  python solve.py examples/users_paper.csv --config examples/paper_cycle.yaml --seed 0
"""


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text!r}")
    return value


def _gap_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text!r}")
    return value


def _configure(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("users", metavar="USERS.csv", type=Path, help="the users table (CSV)")
    parser.add_argument(
        "--servers",
        metavar="F",
        type=Path,
        help="edge servers (CSV or YAML); default: one server from the scenario",
    )
    parser.add_argument(
        "--config",
        metavar="F",
        type=Path,
        help="scenario config (YAML or TOML); default: built-in defaults "
        "(see examples/scenario.yaml)",
    )
    parser.add_argument(
        "--hiqm",
        metavar="F",
        type=Path,
        help="quality model JSON (schema his-opt/hiqm/1); default: the shipped "
        "models/hiqm/<variant>.json for the scenario's variant",
    )
    parser.add_argument(
        "--candidates",
        metavar="F",
        type=Path,
        help="public-prompt candidates, one per line; default: the users' prompts",
    )
    parser.add_argument(
        "--similarity-model",
        metavar="PATH",
        help="sentence-transformers model folder for prompt similarity; default: "
        "the packaged all-MiniLM-L6-v2",
    )
    parser.add_argument(
        "--out",
        metavar="F",
        type=Path,
        default=Path("report.xlsx"),
        help="Excel report to write (default: report.xlsx)",
    )
    parser.add_argument(
        "--plan",
        metavar="F",
        type=Path,
        default=None,
        help="JSON plan to write (default: plan.json in the folder of --out)",
    )
    parser.add_argument(
        "--time-limit",
        metavar="S",
        type=_positive_float,
        default=60.0,
        help="time limit in seconds for the solve and for each baseline's MILP (default: 60); "
        "the best plan found and its optimality gap are reported",
    )
    parser.add_argument(
        "--gap",
        metavar="G",
        type=_gap_float,
        default=1e-4,
        help="relative optimality gap at which the solver (and each baseline) stops "
        "(default: 1e-4)",
    )
    parser.add_argument(
        "--seed",
        metavar="N",
        type=int,
        default=0,
        help="random seed: device clocks drawn under the cycle model, baseline "
        "choices, image seeds in the plan (default: 0)",
    )
    parser.add_argument(
        "--model",
        default=None,
        help="SD3 pipeline folder or hub id the plan is for, recorded in the plan's 'model' "
        "(generate then uses it and refuses another)",
    )
    parser.add_argument(
        "--dtype",
        choices=("float32", "float16", "bfloat16"),
        default=None,
        help="weights dtype recorded with --model (default: float16)",
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="no progress lines on stderr (the final summary is still printed)",
    )
    parser.set_defaults(func=solve_main)
    return parser


def _model_record(args: argparse.Namespace, scenario: Any) -> dict[str, Any] | None:
    """The plan's ``model`` object from ``--model``/``--dtype`` (``None`` without ``--model``)."""
    if args.model is None:
        if args.dtype is not None:
            raise InputError("needs --model", field="--dtype")
        return None
    path = Path(args.model)
    return {
        "id": str(path.resolve()) if path.exists() else args.model,
        "dtype": args.dtype or "float16",
        "variant": scenario.variant,
        "guidance_public": scenario.public_guidance_scale,
        "guidance_personal": scenario.guidance_scale,
    }


def add_solve_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``solve`` on the ``his-opt`` subcommand parsers."""
    parser = subparsers.add_parser(
        "solve",
        help="plan groups, common steps and edge/device splits for users",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return _configure(parser)


def build_solve_parser(prog: str = "solve.py") -> argparse.ArgumentParser:
    """The standalone parser used by ``python solve.py``."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return _configure(parser)


class _SolverProgress:
    """Solver events as lines on stderr, at most one a second (new bounds always shown)."""

    def __init__(self, every_s: float = 1.0) -> None:
        self.every_s = every_s
        self.last = -float("inf")

    def __call__(self, event: dict[str, Any]) -> None:
        now = time.perf_counter()
        if now - self.last < self.every_s and event.get("event") != "bound":
            return
        self.last = now
        parts = [f"{event.get('seconds', 0.0):6.1f} s", str(event.get("event", ""))]
        for key in ("objective", "bound"):
            if isinstance(event.get(key), (int, float)):
                parts.append(f"{key} {event[key]:.4f}")
        if event.get("source"):
            parts.append(f"({event['source']})")
        print("      " + "  ".join(parts), file=sys.stderr, flush=True)


class _Progress:
    """Step lines on stderr: ``[3/7] solving ... done in 4.2 s``."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.total, self.quiet, self.index = total, quiet, 0

    @contextmanager
    def step(self, what: str, *, announce: bool = True) -> Iterator[None]:
        """Time a step; ``announce=False`` prints only its completion (so a step that fails on
        bad input leaves the error as the only line on stderr)."""
        self.index += 1
        start = time.perf_counter()
        if announce and not self.quiet:
            print(f"[{self.index}/{self.total}] {what} ...", file=sys.stderr, flush=True)
        yield
        if not self.quiet:
            took = time.perf_counter() - start
            print(
                f"[{self.index}/{self.total}] {what}: done in {took:.1f} s",
                file=sys.stderr,
                flush=True,
            )

    def note(self, text: str) -> None:
        if not self.quiet:
            print(f"      {text}", file=sys.stderr, flush=True)


def solve_main(args: argparse.Namespace) -> int:
    """Run ``solve`` for parsed ``args``; raises ``InputError`` on bad input (exit code 2)."""
    from ..io import SolveInputs
    from ..report import build_plan_document, write_reports

    progress = _Progress(6, args.quiet)
    out = Path(args.out)
    plan_path = Path(args.plan) if args.plan is not None else out.parent / "plan.json"
    _check_outputs(out, plan_path)
    with progress.step("reading inputs", announce=False):
        inputs = SolveInputs.load(
            users=args.users,
            servers=args.servers,
            config=args.config,
            hiqm=args.hiqm,
            candidates=args.candidates,
            similarity_model=args.similarity_model,
            seed=args.seed,
        )
        progress.note(
            f"{len(inputs.users)} users, {len(inputs.servers)} server(s), HIQM {inputs.hiqm_path}"
        )
    if args.quiet:
        _quiet_model_loading()
    with progress.step("loading the similarity model and embedding the prompts"):
        instance = inputs.build_instance()
    from ..allocation import run_baselines, solve

    with progress.step(f"solving (time limit {args.time_limit:g} s)"):
        result = solve(
            instance,
            time_limit=args.time_limit,
            mip_gap=args.gap,
            random_state=args.seed,
            progress=None if args.quiet else _SolverProgress(),
        )
    if result.plan is None:
        reasons = "; ".join(str(d) for d in result.diagnostics) or "no reason given"
        print(
            f"his-opt: no feasible plan ({result.status}): {reasons}; nothing written",
            file=sys.stderr,
        )
        return 1
    with progress.step("scoring baselines (IIS, GFIS, PPGFIS, greedy)"):
        baselines = run_baselines(
            instance, random_state=args.seed, time_limit=args.time_limit, mip_gap=args.gap
        )
    with progress.step("checking the plan"):
        doc = build_plan_document(
            instance,
            result,
            baselines,
            inputs,
            solver={"time_limit_s": args.time_limit, "mip_gap": args.gap},
            arguments={k: _arg_text(v) for k, v in vars(args).items() if k != "func"},
            model=_model_record(args, instance.scenario),
        )
    with progress.step("writing the report and the plan"):
        write_reports(out, plan_path, doc, inputs.hiqm)
    print(_summary(doc, out, plan_path))
    return 0


def _quiet_model_loading() -> None:
    """Silence the weight-loading bar of transformers (only called under ``--quiet``)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def _arg_text(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else value


def _check_outputs(out: Path, plan_path: Path) -> None:
    if out.suffix.lower() != ".xlsx":
        raise InputError("the report must be an .xlsx file", file=out, field="--out")
    if out.resolve() == plan_path.resolve():
        raise InputError("--out and --plan name the same file", file=out, field="--plan")
    for path, flag in ((out, "--out"), (plan_path, "--plan")):
        if path.is_dir():
            raise InputError("is a directory", file=path, field=flag)
        parent = path.parent
        while not parent.exists():
            parent = parent.parent
        if not parent.is_dir():
            raise InputError("its folder is a file", file=path, field=flag)


def _fmt(value: Any, spec: str, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{unit}"


def _summary(doc: dict[str, Any], out: Path, plan_path: Path) -> str:
    """The closing summary table printed on stdout."""
    t, st = doc["totals"], doc["status"]
    gpu = (
        f"{_fmt(t['gpu_time_s'], '.2f', ' s')} of {_fmt(t['gpu_budget_s'], '.2f', ' s')} budget; "
        f"IIS baseline {_fmt(t['gpu_time_iis_s'], '.2f', ' s')} "
        f"(saved {_fmt(t['gpu_time_saved_vs_iis_s'], '.2f', ' s')})"
    )
    sharing = (
        f"{_fmt(t['gpu_time_unshared_s'], '.2f', ' s')} unshared -> "
        f"{_fmt(t['gpu_time_s'], '.2f', ' s')} "
        f"(saves {_fmt(t['gpu_time_saved_by_sharing_fraction'], '.1%')})"
    )
    rows = [
        ("status", st["status"] + ("" if st["feasible"] else " (PLAN VIOLATES CONSTRAINTS)")),
        (
            "objective",
            f"{t['objective']:.3f} = quality {t['quality_term']:.3f} - delay "
            f"{t['delay_term']:.3f} - energy {t['energy_term']:.3f}",
        ),
        ("bound / gap", f"{_fmt(st.get('bound'), '.3f')} / {_fmt(st.get('gap'), '.3%')}"),
        (
            "groups",
            f"{t['shared_groups']} shared, {t['solo_users']} solo, {t['users']} users",
        ),
        ("mean quality", f"{t['mean_quality']:.4f} (min {t['min_quality']:.4f})"),
        ("mean delay", f"{t['mean_delay_s']:.3f} s (max {t['max_delay_s']:.3f} s)"),
        ("GPU time", gpu),
        ("edge work", sharing),
    ]
    for b in doc.get("baselines", []):
        if b.get("objective") is None:
            text = f"no plan ({b.get('status')})"
        else:
            text = f"{b['objective']:.3f} (this plan {_fmt(b.get('plan_vs_method'), '+.1%')})" + (
                "" if b.get("feasible") else " -- baseline plan violates constraints"
            )
        rows.append((f"vs {b['name']}", text))
    rows += [("report", str(out)), ("plan", str(plan_path))]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def main(argv: Sequence[str] | None = None) -> int:
    """``python solve.py ...``: parse, run, and turn bad input into one line and exit code 2."""
    parser = build_solve_parser()
    args = parser.parse_args(argv)
    try:
        return solve_main(args)
    except InputError as err:
        print(f"his-opt: error: {err}", file=sys.stderr)
        return 2
