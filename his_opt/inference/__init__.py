"""Hybrid SD3 inference: the common phase once per group, personal phases batched.

Names are loaded on first access, so ``import his_opt.inference`` does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._arch import (
        build_random_sd3_pipeline,
        sd3_medium_scheduler_config,
        sd3_medium_transformer_config,
        sd3_vae_config,
    )
    from ._executor import GenerateResult, load_plan, run_plan
    from ._handoff import HybridHandoff, model_fingerprint, weights_probe
    from ._pipeline import HybridSD3Pipeline, HybridSD3PipelineOutput
    from ._ray_plan import run_plan_ray
    from ._rows import hybrid_rows, independent_rows

__all__ = [
    "GenerateResult",
    "HybridHandoff",
    "HybridSD3Pipeline",
    "HybridSD3PipelineOutput",
    "build_random_sd3_pipeline",
    "hybrid_rows",
    "independent_rows",
    "load_plan",
    "model_fingerprint",
    "run_plan",
    "run_plan_ray",
    "sd3_medium_scheduler_config",
    "sd3_medium_transformer_config",
    "sd3_vae_config",
    "weights_probe",
]

_WHERE = {
    "GenerateResult": "_executor",
    "HybridHandoff": "_handoff",
    "HybridSD3Pipeline": "_pipeline",
    "HybridSD3PipelineOutput": "_pipeline",
    "build_random_sd3_pipeline": "_arch",
    "hybrid_rows": "_rows",
    "independent_rows": "_rows",
    "load_plan": "_executor",
    "model_fingerprint": "_handoff",
    "run_plan": "_executor",
    "run_plan_ray": "_ray_plan",
    "sd3_medium_scheduler_config": "_arch",
    "sd3_medium_transformer_config": "_arch",
    "sd3_vae_config": "_arch",
    "weights_probe": "_handoff",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
