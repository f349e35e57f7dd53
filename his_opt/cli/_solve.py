"""``his-opt solve`` (and ``python solve.py``): plan hybrid inference for a set of users.

Reads and validates every input first (users, servers, scenario, HIQM, candidates, output
paths), embeds the prompts, solves the allocation, scores the baselines, and only then writes the
Excel report and the JSON plan, each atomically: bad input or an interrupted run leaves no output
file behind (and never a half-written one).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .._errors import InputError

log = logging.getLogger("his_opt")

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
                in $HIS_OPT_MODELS/gpu/ or shipped, a profile JSON path, or 'cycle' (paper's cycle model, with
                optional cycles_per_step, freq_hz, kappa). Default: one server 'es1' with the
                scenario's server_profile and server_budget_s.
  --config      YAML or TOML with any Scenario field (`his-opt examples` copies scenario.yaml).
  --similarity  precomputed matrix: `his-opt similarity PROMPTS.txt --labels prompt --out F`.
  --candidates  public-prompt candidates, one per line ('#' comments). Default: the users'
                own prompts.

outputs:
  --out         Excel report (sheets Overview, Charts, Groups, Users, Servers,
                Baselines, Model, Chart data), printable A4 landscape.
  --plan        JSON plan, schema his-opt/plan/1. Default: plan.json beside --out.

exit status: 0 done; 1 no feasible plan; 2 bad input (one line naming file, row and field;
nothing is written); 3 the run could not finish (one line; --verbose for the traceback).
'-' reads USERS.csv (or one other input) from stdin, and writes --plan or --out to stdout.

examples:
  his-opt examples ex     # copy the shipped examples into ./ex
  his-opt solve ex/users.csv --out out/report.xlsx --plan out/plan.json
  his-opt solve ex/users.csv --servers ex/servers.csv --time-limit 60 --seed 1
  his-opt solve ex/users_paper.csv --config ex/paper_cycle.yaml --seed 0
  his-opt solve ex/users_small.csv --similarity ex/users_small_similarity.csv --plan -
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
        "(`his-opt examples` copies scenario.yaml, which lists them)",
    )
    parser.add_argument(
        "--hiqm",
        metavar="F",
        type=Path,
        help="quality model JSON (schema his-opt/hiqm/1); default: the shipped "
        "hiqm/<variant>.json for the scenario's variant ($HIS_OPT_MODELS first)",
    )
    parser.add_argument(
        "--candidates",
        metavar="F",
        type=Path,
        help="public-prompt candidates, one per line; default: the users' prompts",
    )
    parser.add_argument(
        "--similarity",
        metavar="F",
        type=Path,
        help="precomputed similarity CSV (`his-opt similarity PROMPTS.txt --labels prompt` over "
        "every user prompt and candidate); the solve then loads no embedding model (no torch)",
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
        help="time limit in seconds for the whole run once the prompts are embedded: the "
        "solve, the baselines and the report (default: 60); the best plan found and its "
        "optimality gap are reported",
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
        "--baselines",
        metavar="LIST",
        default="all",
        help="baselines to score against the plan, comma-separated from iis, gfis, ppgfis, "
        "greedy; 'all' (default) or 'none'",
    )
    parser.add_argument(
        "--baseline-time-limit",
        metavar="S",
        type=_positive_float,
        default=10.0,
        help="seconds for each baseline, its model and MILP included (default: 10), within "
        "what --time-limit leaves them; one out of time keeps its heuristic start plan or has "
        "none (status time_limit)",
    )
    parser.add_argument(
        "--ray-address",
        metavar="ADDR",
        default=None,
        help="spread the solver's Lagrangian dual (large instances) over Ray: 'local', 'auto' "
        "or HOST:PORT (the 'ray' extra)",
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
        "-q",
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
        log.info("      %s", "  ".join(parts))


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
            log.info("[%d/%d] %s ...", self.index, self.total, what)
        yield
        if not self.quiet:
            took = time.perf_counter() - start
            log.info("[%d/%d] %s: done in %.1f s", self.index, self.total, what, took)

    def note(self, text: str) -> None:
        if not self.quiet:
            log.info("      %s", text)


def solve_main(args: argparse.Namespace) -> int:
    """Run ``solve`` for parsed ``args``; raises ``InputError`` on bad input (exit code 2)."""
    from ..io import SolveInputs
    from ..report import build_plan_document, write_reports
    from ._baselines import parse_baselines, run_selected_baselines

    baseline_names = parse_baselines(args.baselines)
    progress = _Progress(7, args.quiet)
    out = Path(args.out)
    plan_path = Path(args.plan) if args.plan is not None else out.parent / "plan.json"
    _check_outputs(out, plan_path)
    _check_inputs(args)
    with progress.step("reading inputs", announce=False):
        inputs = SolveInputs.load(
            users=args.users,
            servers=args.servers,
            config=args.config,
            hiqm=args.hiqm,
            candidates=args.candidates,
            similarity_model=args.similarity_model,
            similarity=args.similarity,
            seed=args.seed,
        )
        progress.note(
            f"{len(inputs.users)} users, {len(inputs.servers)} server(s), HIQM {inputs.hiqm_path}"
        )
    for note in inputs.consistency:  # an estimated profile is the shipped default: a note only
        level = logging.INFO if "is an estimate" in note else logging.WARNING
        log.log(level, "his-opt: warning: %s (recorded in the plan)", note)
    from ..app import build_solve_instance, similarity_matrix

    if inputs.similarity_table is not None:
        what = f"reading similarities from {args.similarity}"
    else:
        what = "loading the similarity model and embedding the prompts"
        if args.quiet:
            _quiet_model_loading()
    with progress.step(what):
        sim = similarity_matrix(inputs)
    start = time.perf_counter()  # --time-limit counts from here: the embedding is done
    with progress.step("building the instance", announce=False):
        instance = build_solve_instance(inputs, similarity=sim, hand_over=True)
    del sim
    from ..allocation import CapacityError, solve
    from ..app import plan_run

    run = plan_run(args.time_limit, instance.n_users, len(baseline_names),
                   args.baseline_time_limit, start=start)
    log.info("his-opt: time limit %g s: solve %.1f s, baselines up to %.1f s, report about "
             "%.1f s", args.time_limit, run.solve_s, run.baselines_s, run.report_s)
    if run.over_s > 0:
        log.warning("his-opt: warning: checking and writing the plan of %d users takes about "
                    "%.1f s: the run will take about %.1f s past --time-limit %g s",
                    instance.n_users, run.report_s, run.over_s, args.time_limit)
    with progress.step(f"solving (time limit {run.solve_s:.3g} s)"):
        try:
            result = solve(
                instance,
                time_limit=run.solve_s,
                mip_gap=args.gap,
                progress=None if args.quiet else _SolverProgress(),
                ray_address=args.ray_address,
            )
        except CapacityError as err:
            raise InputError(str(err), file=args.users) from err
    if result.plan is None:
        reasons = "; ".join(str(d) for d in result.diagnostics) or "no reason given"
        print(
            f"his-opt: no feasible plan ({result.status}): {reasons}; nothing written",
            file=sys.stderr,
        )
        return 1
    with progress.step(f"scoring baselines ({', '.join(baseline_names) or 'none'})"):
        baselines = run_selected_baselines(
            instance,
            baseline_names,
            time_limit=args.baseline_time_limit,
            mip_gap=args.gap,
            random_state=args.seed,
            total_s=run.baselines_left,
            min_start_s=run.settings.min_baseline_s,
        )
    with progress.step("checking the plan"):
        doc = build_plan_document(
            instance,
            result,
            baselines,
            inputs,
            solver={"time_limit_s": run.solve_s, "run_time_limit_s": args.time_limit,
                    "mip_gap": args.gap},
            arguments={k: _arg_text(v) for k, v in vars(args).items() if k != "func"},
            model=_model_record(args, instance.scenario),
        )
    with progress.step("writing the report and the plan"):
        write_reports(out, plan_path, doc, inputs.hiqm)
    to_stdout = "-" in (str(out), str(plan_path))
    print(_summary(doc, out, plan_path), file=sys.stderr if to_stdout else sys.stdout)
    return 0


def _quiet_model_loading() -> None:
    """Silence the weight-loading bar of transformers (only called under ``--quiet``)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def _arg_text(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else value


def _check_outputs(out: Path, plan_path: Path) -> None:
    """Before any work: the report is an .xlsx file, the two outputs differ and both can be
    written (``-`` is stdout, for one of them)."""
    from .._outputs import check_output

    if str(out) == "-" and str(plan_path) == "-":
        raise InputError("--out and --plan cannot both be '-' (stdout)", field="--plan")
    if str(out) != "-" and out.suffix.lower() != ".xlsx":
        raise InputError("the report must be an .xlsx file", file=out, field="--out")
    if "-" not in (str(out), str(plan_path)) and out.resolve() == plan_path.resolve():
        raise InputError("--out and --plan name the same file", file=out, field="--plan")
    check_output(out, flag="--out", allow_stdout=True)
    check_output(plan_path, flag="--plan", allow_stdout=True)


def _check_inputs(args: argparse.Namespace) -> None:
    """An output must not overwrite an input, and at most one input reads stdin."""
    inputs = [args.users, args.servers, args.config, args.hiqm, args.candidates, args.similarity]
    named = [str(p) for p in inputs if p is not None]
    if named.count("-") > 1:
        raise InputError("only one input can be '-' (stdin)", field="-")
    outs = [Path(args.out)] + ([Path(args.plan)] if args.plan is not None else [])
    for path in inputs:
        if path is None or str(path) == "-":
            continue
        for o in outs:
            if str(o) != "-" and Path(path).resolve() == o.resolve():
                raise InputError("an output would overwrite this input", file=path, field="--out")


def _fmt(value: Any, spec: str, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{unit}"


def _summary(doc: dict[str, Any], out: Path, plan_path: Path) -> str:
    """The closing summary table printed on stdout."""
    from ..report import baseline_line

    t, st = doc["totals"], doc["status"]
    on_edge = sum(1 for u in doc["users"] if u["device_steps"] == 0)
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
        ("finish", f"{on_edge} users on the edge (z = 0), {t['users'] - on_edge} on their devices"),
        ("mean quality", f"{t['mean_quality']:.4f} (min {t['min_quality']:.4f})"),
        ("mean delay", f"{t['mean_delay_s']:.3f} s (max {t['max_delay_s']:.3f} s)"),
        ("GPU time", gpu),
        ("edge work", sharing),
    ]
    rows += [(f"vs {b['name']}", baseline_line(b)) for b in doc.get("baselines", [])]
    rows += [("report", str(out)), ("plan", str(plan_path))]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def main(argv: Sequence[str] | None = None) -> int:
    """``python solve.py ...``: the ``his-opt solve`` command under the same error contract."""
    from . import _add_verbosity, run_parsed

    parser = build_solve_parser()
    _add_verbosity(parser)
    return run_parsed(parser.parse_args(argv))
