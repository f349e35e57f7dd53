"""his-opt: diffusion hybrid inference for edge (MEC) AI-generated-content networks.

Subpackages: ``inference`` (the hybrid SD3 engine), ``quality`` (CLIP, BRISQUE), ``hiqm`` (the
quality model), ``costs`` (GPU profiles, devices, channel), ``allocation`` (the optimizer and
baselines), ``report`` (Excel and JSON), ``profiling`` (quality and GPU profiling), ``cli``.

The names below load on first use, so ``import his_opt`` pulls in neither torch nor cvxpy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from ._errors import InputError
    from .allocation import Instance, Plan, SolveResult, build_instance, run_baselines, solve
    from .costs import CycleProfile, EdgeServer, GPUProfile, load_profile
    from .hiqm import HIQM, fit_hiqm, load_default_hiqm
    from .inference import HybridHandoff, HybridSD3Pipeline
    from .scenario import Scenario, load_scenario
    from .similarity import PromptSimilarity

_WHERE = {
    "InputError": "._errors",
    "Instance": ".allocation",
    "Plan": ".allocation",
    "SolveResult": ".allocation",
    "build_instance": ".allocation",
    "run_baselines": ".allocation",
    "solve": ".allocation",
    "CycleProfile": ".costs",
    "EdgeServer": ".costs",
    "GPUProfile": ".costs",
    "load_profile": ".costs",
    "HIQM": ".hiqm",
    "fit_hiqm": ".hiqm",
    "load_default_hiqm": ".hiqm",
    "HybridHandoff": ".inference",
    "HybridSD3Pipeline": ".inference",
    "Scenario": ".scenario",
    "load_scenario": ".scenario",
    "PromptSimilarity": ".similarity",
}

__all__ = [
    "__version__",
    "CycleProfile",
    "EdgeServer",
    "GPUProfile",
    "HIQM",
    "HybridHandoff",
    "HybridSD3Pipeline",
    "InputError",
    "Instance",
    "Plan",
    "PromptSimilarity",
    "Scenario",
    "SolveResult",
    "build_instance",
    "fit_hiqm",
    "load_default_hiqm",
    "load_profile",
    "load_scenario",
    "run_baselines",
    "solve",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
