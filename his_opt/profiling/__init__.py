"""Profiling stage: image quality of hybrid inference over a sweep, and GPU cost per step.

``run_quality_sweep`` (``his-opt profile-quality``) writes the tidy per-image dataset that
``fit-hiqm`` reads; ``profile_gpu`` (``his-opt profile-gpu``) writes the GPU profile JSON that
``his_opt.costs`` reads. Heavy libraries (torch, diffusers, ray) load only when a run starts.
"""

from ._dataset import COLUMNS, KEY_COLUMNS, QualityDataset, row_key
from ._engine import BranchResult, hybrid_rows, per_image_rows, run_branches, sweep_rows
from ._gpu import GpuProfileResult, default_profile_name, profile_gpu
from ._quality_run import (
    BlockOutput,
    BlockRunner,
    BlockTask,
    QualityRunReport,
    block_rows_estimate,
    largest_batch_that_fits,
    load_sd3_pipeline,
    plan_tasks,
    run_quality_sweep,
)
from ._sweep import (
    BUILTIN_VARIANTS,
    Block,
    PersonalPrompt,
    PromptGroup,
    Sweep,
    SweepFile,
    Variant,
    load_sweep,
    sweep_from_dict,
)

__all__ = [
    "BUILTIN_VARIANTS",
    "COLUMNS",
    "KEY_COLUMNS",
    "Block",
    "BlockOutput",
    "BlockRunner",
    "BlockTask",
    "BranchResult",
    "GpuProfileResult",
    "PersonalPrompt",
    "PromptGroup",
    "QualityDataset",
    "QualityRunReport",
    "Sweep",
    "SweepFile",
    "Variant",
    "block_rows_estimate",
    "default_profile_name",
    "hybrid_rows",
    "largest_batch_that_fits",
    "load_sd3_pipeline",
    "load_sweep",
    "per_image_rows",
    "plan_tasks",
    "profile_gpu",
    "row_key",
    "run_branches",
    "run_quality_sweep",
    "sweep_from_dict",
    "sweep_rows",
]
