"""The plan document's JSON Schema (schema id ``his-opt/plan/1``) and its one validator.

``PLAN_JSON_SCHEMA`` is a JSON Schema (draft 2020-12, shipped as ``his_opt/data/schemas/
plan-1.json`` and printed by ``his-opt schema plan``) of what ``his-opt solve`` writes and
``his-opt generate`` reads. Fields beyond the ones listed are allowed (readers ignore them), so
later versions can add figures without breaking old readers. ``validate_plan`` checks the same
structure (``jsonschema-rs``; an error is worded by ``jsonschema``) plus the invariants a schema cannot express (step sums,
membership, unique ids): solve, the report, generate and ``his-opt validate`` all use it.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from .._errors import InputError
from .._read import is_safe_name

__all__ = ["PLAN_JSON_SCHEMA", "PLAN_SCHEMA_ID", "plan_schema_path", "validate_plan"]

PLAN_SCHEMA_ID = "his-opt/plan/1"


def _load_schema() -> dict[str, Any]:
    from ..resources import shipped_dir

    return json.loads((shipped_dir("schemas") / "plan-1.json").read_text(encoding="utf-8"))


PLAN_JSON_SCHEMA: dict[str, Any] = _load_schema()
"""The JSON Schema of ``his-opt/plan/1``, read from the shipped ``schemas/plan-1.json``."""


def plan_schema_path() -> Path:
    """The shipped JSON Schema file of the plan (what ``his-opt schema plan`` prints)."""
    from ..resources import shipped_dir

    return shipped_dir("schemas") / "plan-1.json"


_FIGURES = ("similarity", "predicted_quality", "delay_s", "energy_j")


def _run_schema() -> dict[str, Any]:
    """The schema as ``generate`` needs it: every field it executes, none of the solver's
    figures (totals, status, provenance and per-user predictions become optional)."""
    import copy

    schema = copy.deepcopy(PLAN_JSON_SCHEMA)
    schema["required"] = ["schema", "scenario", "groups", "users"]
    users = schema["properties"]["users"]["items"]
    users["required"] = [k for k in users["required"] if k not in _FIGURES]
    for key in ("totals", "status", "provenance"):
        schema["properties"][key] = {"type": "object"}
    return schema


@functools.cache
def _fast_validator(purpose: str) -> Any:
    import jsonschema_rs

    schema = PLAN_JSON_SCHEMA if purpose == "full" else _run_schema()
    return jsonschema_rs.validator_for(schema, validate_formats=False)


def _schema_error(doc: Any, fail: Any, purpose: str) -> None:
    """Run the JSON Schema; report the most relevant error as (field, row, message).

    A valid document is recognised by the compiled ``jsonschema-rs`` validator (50,000 users:
    0.04 s against 5.2 s); only an invalid one goes through ``jsonschema``, whose
    ``best_match`` picks the error to report."""
    try:
        if _fast_validator(purpose).is_valid(doc):
            return
    except ValueError:  # not JSON at all (e.g. non-text keys): jsonschema says what is wrong
        pass
    import jsonschema

    schema = PLAN_JSON_SCHEMA if purpose == "full" else _run_schema()
    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(doc))
    if error is None:
        return
    path = list(error.absolute_path)
    row = None
    names: list[str] = []
    for part in path:
        if isinstance(part, int):
            row = part + 1 if row is None else row
        else:
            names.append(str(part))
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else "?"
        names.append(missing)
        message = "missing"
    else:
        message = error.message if len(error.message) < 160 else error.message[:157] + "..."
    fail(message, ".".join(names) or None, row)


def validate_plan(doc: Any, *, source: str | Path = "<plan>", purpose: str = "full") -> None:
    """Check a plan document's structure and invariants; ``InputError`` naming the first problem.

    ``row`` in the error is the 1-based index in ``groups`` or ``users``. ``purpose="run"``
    (``generate``) does not require the solver's figures (totals, predictions); the
    cross-field rules (x + y + z = T, membership, unique and file-safe ids) always hold.
    """
    if purpose not in ("full", "run"):
        raise ValueError(f"purpose must be 'full' or 'run', got {purpose!r}")

    def fail(msg: str, field: str | None = None, row: int | None = None) -> None:
        raise InputError(msg, file=source, row=row, field=field)

    if not isinstance(doc, dict):
        fail("a plan must be a JSON object")
    if doc.get("schema") != PLAN_SCHEMA_ID:
        fail(f"unknown schema {doc.get('schema')!r}, expected {PLAN_SCHEMA_ID!r}", "schema")
    _schema_error(doc, fail, purpose)
    total = doc["scenario"]["total_steps"]
    groups: dict[str, dict[str, Any]] = {}
    member_of: dict[str, str] = {}
    for i, g in enumerate(doc["groups"], start=1):
        if g["group_id"] in groups:
            fail(f"duplicate group id {g['group_id']!r}", "groups.group_id", i)
        groups[g["group_id"]] = g
        if g["public_prompt"] is None and (g["common_steps"] != 0 or len(g["members"]) != 1):
            fail(
                "a group without public prompt must have one member and 0 common steps",
                "groups.public_prompt",
                i,
            )
        if g["common_steps"] > total - 1:
            fail(f"exceeds total_steps - 1 = {total - 1}", "groups.common_steps", i)
        for m in g["members"]:
            if m in member_of:
                fail(f"user {m!r} is also in group {member_of[m]!r}", "groups.members", i)
            member_of[m] = g["group_id"]
    seen: set[str] = set()
    for i, u in enumerate(doc["users"], start=1):
        uid = u["user_id"]
        if not is_safe_name(uid):
            fail(f"user id {uid!r} is not safe as a file name", "users.user_id", i)
        if uid in seen:
            fail(f"duplicate user id {uid!r}", "users.user_id", i)
        seen.add(uid)
        if u["group_id"] not in groups:
            fail(f"unknown group {u['group_id']!r}", "users.group_id", i)
        if member_of.get(uid) != u["group_id"]:
            fail(f"not listed among the members of group {u['group_id']!r}", "users.group_id", i)
        if u["common_steps"] != groups[u["group_id"]]["common_steps"]:
            fail("differs from its group's common_steps", "users.common_steps", i)
        if u["common_steps"] + u["edge_steps"] + u["device_steps"] != total:
            fail(f"common + edge + device steps != total_steps = {total}", "users.device_steps", i)
    missing = set(member_of) - seen
    if missing:
        fail(f"members without a user entry: {sorted(missing)}", "groups.members")
