"""The application layer: wires inputs, prompt similarity, the solver and the outputs together.

``his_opt.io`` reads files, ``his_opt.similarity`` embeds prompts, ``his_opt.allocation`` solves
on numbers; only this layer knows all three.
"""

from ._run_budget import RunBudget, RunSettings, plan_run
from ._solve_app import build_solve_instance, similarity_matrix

__all__ = ["RunBudget", "RunSettings", "build_solve_instance", "plan_run", "similarity_matrix"]
