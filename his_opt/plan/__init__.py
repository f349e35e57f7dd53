"""The plan: one owner for its classes, its JSON Schema and its validator.

``Plan`` / ``GroupPlan`` / ``UserPlan`` (``to_dict`` / ``from_dict``), the schema id and JSON
Schema (the shipped file ``his_opt/data/schemas/plan-1.json``), and :func:`validate_plan`
(schema plus the cross-field rules such as x + y + z = T), used by ``solve`` before writing, by
``generate`` before running and by ``his-opt validate``.
"""

from ..allocation._result import GroupPlan, Plan, UserPlan
from ..report._schema import PLAN_JSON_SCHEMA, PLAN_SCHEMA_ID, plan_schema_path, validate_plan
from ._load import load_plan_document

__all__ = [
    "PLAN_JSON_SCHEMA",
    "PLAN_SCHEMA_ID",
    "GroupPlan",
    "Plan",
    "UserPlan",
    "load_plan_document",
    "plan_schema_path",
    "validate_plan",
]
