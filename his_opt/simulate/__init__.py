"""Operation over time: episodes of rounds, arrivals, policies (the exact solver, the paper's
learned IPPO policy, the baselines, plug-ins), resumable runs, figures and a round-length sweep.

Entry points: :func:`load_sim_config`, :func:`prepare`, :func:`run_simulation`,
:func:`run_sweep`; the ``his-opt simulate`` subcommand wraps them.
"""

from ._arrivals import Arrivals, draw_arrivals
from ._config import (
    BUILTIN_POLICIES,
    CONFIG_SCHEMA,
    ArrivalSettings,
    IppoSettings,
    SimConfig,
    SolverSettings,
    load_sim_config,
)
from ._env import Layout, PaperEnv
from ._ippo import TRAINING_COLUMNS, IppoAgents, train_ippo
from ._policies import BaselinePolicy, HisPolicy, IppoPolicy, Outcome, Policy, load_plugin
from ._rounds import Pool, Round, RoundBuilder
from ._runner import ROUND_COLUMNS, Setup, check_resumable, prepare, run_simulation, summarize
from ._sweep import SWEEP_KEYS, parse_sweep, run_sweep

__all__ = [
    "BUILTIN_POLICIES",
    "CONFIG_SCHEMA",
    "ROUND_COLUMNS",
    "SWEEP_KEYS",
    "TRAINING_COLUMNS",
    "ArrivalSettings",
    "Arrivals",
    "BaselinePolicy",
    "HisPolicy",
    "IppoAgents",
    "IppoPolicy",
    "IppoSettings",
    "Layout",
    "Outcome",
    "PaperEnv",
    "Policy",
    "Pool",
    "Round",
    "RoundBuilder",
    "Setup",
    "SimConfig",
    "SolverSettings",
    "check_resumable",
    "draw_arrivals",
    "load_plugin",
    "load_sim_config",
    "parse_sweep",
    "prepare",
    "run_simulation",
    "run_sweep",
    "summarize",
    "train_ippo",
]
