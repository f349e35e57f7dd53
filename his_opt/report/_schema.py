"""The plan document's JSON Schema (schema id ``his-opt/plan/1``) and a dependency-free check.

``PLAN_JSON_SCHEMA`` is a JSON Schema (draft 2020-12) of what ``his-opt solve`` writes and
``his-opt generate`` reads. Fields beyond the ones listed are allowed (readers ignore them), so
later versions can add figures without breaking old readers. ``validate_plan`` checks the same
structure plus the invariants a schema cannot express (step sums, membership, unique ids) and
needs no ``jsonschema`` package.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .._errors import InputError

__all__ = ["PLAN_JSON_SCHEMA", "PLAN_SCHEMA_ID", "validate_plan"]

PLAN_SCHEMA_ID = "his-opt/plan/1"

_NUM = {"type": "number"}
_NNUM = {"type": "number", "minimum": 0}
_INT = {"type": "integer", "minimum": 0}
_STR = {"type": "string"}
_OPT_STR = {"type": ["string", "null"]}
_OPT_NUM = {"type": ["number", "null"]}


def _d(spec: dict[str, Any], description: str) -> dict[str, Any]:
    return {**spec, "description": description}


PLAN_JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://his-opt.invalid/schemas/plan-1.json",
    "title": "his-opt plan",
    "description": (
        "An allocation plan: groups of users sharing a public prompt for x common denoising "
        "steps on an edge server, then y personal steps on the server and z on the device "
        "(x + y + z = scenario.total_steps). Written by `his-opt solve`, read by "
        "`his-opt generate`. Times in seconds, energies in joules, quality in the HIQM's metric."
    ),
    "type": "object",
    "required": ["schema", "scenario", "groups", "users", "totals", "status", "provenance"],
    "properties": {
        "schema": {"const": PLAN_SCHEMA_ID},
        "scenario": {
            "description": "The scenario the plan was solved for (every Scenario field).",
            "type": "object",
            "required": [
                "total_steps",
                "variant",
                "public_guidance_scale",
                "guidance_scale",
                "height",
                "width",
            ],
            "properties": {
                "total_steps": {"type": "integer", "minimum": 1},
                "variant": _STR,
                "public_guidance_scale": _NNUM,
                "guidance_scale": _NNUM,
                "height": {"type": "integer", "minimum": 16},
                "width": {"type": "integer", "minimum": 16},
                "w_quality": _NNUM,
                "w_delay": _NNUM,
                "w_energy": _NNUM,
            },
        },
        "groups": {
            "description": "One entry per group; a user that shares nothing is a one-member "
            "group with common_steps 0 and public_prompt null.",
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": [
                    "group_id",
                    "server",
                    "public_prompt",
                    "common_steps",
                    "seed",
                    "members",
                ],
                "properties": {
                    "group_id": _STR,
                    "server": _STR,
                    "public_prompt": _OPT_STR,
                    "common_steps": _INT,
                    "seed": {"type": "integer"},
                    "members": {"type": "array", "minItems": 1, "items": _STR},
                },
            },
        },
        "users": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": [
                    "user_id",
                    "prompt",
                    "negative_prompt",
                    "group_id",
                    "similarity",
                    "common_steps",
                    "edge_steps",
                    "device_steps",
                    "predicted_quality",
                    "delay_s",
                    "energy_j",
                ],
                "properties": {
                    "user_id": _STR,
                    "prompt": _STR,
                    "negative_prompt": _OPT_STR,
                    "group_id": _STR,
                    "similarity": {
                        "type": "number",
                        "minimum": -1,
                        "maximum": 1,
                        "description": "cosine to the group's public prompt "
                        "(1 for a user sharing nothing)",
                    },
                    "common_steps": _INT,
                    "edge_steps": _INT,
                    "device_steps": _INT,
                    "predicted_quality": _NUM,
                    "delay_s": _NNUM,
                    "energy_j": {
                        **_NNUM,
                        "description": "the user's share of all energy; "
                        "the shares sum to totals.energy_j",
                    },
                    "subject": _OPT_STR,
                    "deadline_s": _OPT_NUM,
                    "min_quality": _OPT_NUM,
                },
            },
        },
        "servers": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "profile", "budget_s", "gpu_time_s"],
                "properties": {
                    "name": _STR,
                    "profile": _STR,
                    "profile_kind": _STR,
                    "budget_s": _NNUM,
                    "gpu_time_s": _NNUM,
                    "gpu_time_simulated_s": _NNUM,
                    "utilisation": _OPT_NUM,
                    "groups": _INT,
                    "users": _INT,
                    "power_w": _OPT_NUM,
                    "batch_images": _d(
                        {"type": "integer", "minimum": 1},
                        "images per personal launch the solver assumed (generate's cap)",
                    ),
                },
            },
        },
        "totals": {
            "type": "object",
            "required": [
                "objective",
                "quality_term",
                "delay_term",
                "energy_term",
                "sum_quality",
                "sum_delay_s",
                "energy_j",
                "gpu_time_s",
                "users",
                "groups",
            ],
            "properties": {
                "objective": _d(_NUM, "quality_term - delay_term - energy_term"),
                "quality_term": _d(_NUM, "w_quality * sum_quality"),
                "delay_term": _d(_NUM, "w_delay * sum_delay_s"),
                "energy_term": _d(_NUM, "w_energy * energy_j"),
                "sum_quality": _d(_NUM, "sum of the users' predicted quality"),
                "sum_delay_s": _d(_NNUM, "sum of the users' delays"),
                "energy_j": _d(_NNUM, "edge GPU energy + downlink + device energy, all users"),
                "gpu_time_s": _d(_NNUM, "edge GPU time, all servers (the model's upper bound)"),
                "gpu_time_simulated_s": _d(_NNUM, "the same, replaying the launch schedule"),
                "gpu_time_iis_s": _d(_OPT_NUM, "GPU time of the IIS baseline's plan"),
                "gpu_time_unshared_s": _d(
                    _NNUM, "GPU time if every user ran its x + y edge steps alone"
                ),
                "users": _INT,
                "groups": _d(_INT, "entries in groups, one-member groups of solo users included"),
                "shared_groups": _d(_INT, "groups with a public prompt"),
                "solo_users": _d(_INT, "users that share nothing"),
            },
        },
        "status": {
            "type": "object",
            "required": ["status", "objective", "feasible"],
            "properties": {
                "status": _STR,
                "objective": _NUM,
                "bound": _OPT_NUM,
                "gap": _OPT_NUM,
                "bound_scope": _OPT_STR,
                "solve_time_s": _OPT_NUM,
                "feasible": {"type": "boolean"},
                "violations": {"type": "array", "items": _STR},
            },
        },
        "baselines": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "objective"],
                "properties": {"name": _STR, "objective": _OPT_NUM, "status": _STR},
            },
        },
        "model": {
            "description": "Optional: the SD3 pipeline the plan is for (`solve --model`); "
            "`generate` uses it by default and refuses another.",
            "type": "object",
            "required": ["id"],
            "properties": {
                "id": _d(_STR, "pipeline folder (resolved path) or hub id"),
                "dtype": {"enum": ["float32", "float16", "bfloat16"]},
                "variant": _STR,
                "guidance_public": _NNUM,
                "guidance_personal": _NNUM,
            },
        },
        "provenance": {
            "type": "object",
            "required": ["his_opt_version", "inputs", "hiqm"],
            "properties": {
                "his_opt_version": _STR,
                "inputs": {"type": "object"},
                "hiqm": {"type": "object"},
                "seed": {"type": ["integer", "null"]},
                "command": {"type": "array", "items": _STR},
            },
        },
    },
}


def validate_plan(doc: Any, *, source: str | Path = "<plan>") -> None:
    """Check a plan document's structure and invariants; ``InputError`` naming the first problem.

    ``row`` in the error is the 1-based index in ``groups`` or ``users``.
    """

    def fail(msg: str, field: str | None = None, row: int | None = None) -> None:
        raise InputError(msg, file=source, row=row, field=field)

    if not isinstance(doc, dict):
        fail("a plan must be a JSON object")
    for key in PLAN_JSON_SCHEMA["required"]:
        if key not in doc:
            fail("missing", key)
    if doc["schema"] != PLAN_SCHEMA_ID:
        fail(f"unknown schema {doc['schema']!r}, expected {PLAN_SCHEMA_ID!r}", "schema")
    scenario = doc["scenario"]
    if not isinstance(scenario, dict):
        fail("must be an object", "scenario")
    total = scenario.get("total_steps")
    if not _is_int(total) or total < 1:
        fail("must be a positive integer", "scenario.total_steps")
    for key in ("groups", "users"):
        if not isinstance(doc[key], list) or not doc[key]:
            fail("must be a non-empty list", key)
    group_spec = PLAN_JSON_SCHEMA["properties"]["groups"]["items"]
    user_spec = PLAN_JSON_SCHEMA["properties"]["users"]["items"]
    groups: dict[str, dict[str, Any]] = {}
    member_of: dict[str, str] = {}
    for i, g in enumerate(doc["groups"], start=1):
        _check_item(g, group_spec, "groups", i, fail)
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
        _check_item(u, user_spec, "users", i, fail)
        uid = u["user_id"]
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


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_item(item: Any, spec: dict[str, Any], name: str, row: int, fail: Any) -> None:
    if not isinstance(item, dict):
        fail("must be an object", name, row)
    for key in spec["required"]:
        if key not in item:
            fail("missing", f"{name}.{key}", row)
    for key, prop in spec["properties"].items():
        if key not in item:
            continue
        v = item[key]
        types = prop.get("type")
        types = [types] if isinstance(types, str) else list(types or [])
        ok = (
            ("string" in types and isinstance(v, str))
            or ("null" in types and v is None)
            or ("integer" in types and _is_int(v))
            or (
                "number" in types
                and isinstance(v, (int, float))
                and not isinstance(v, bool)
                and math.isfinite(v)
            )
            or ("array" in types and isinstance(v, list))
        )
        if not ok:
            fail(f"must be {' or '.join(types)}, got {v!r}", f"{name}.{key}", row)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if "minimum" in prop and v < prop["minimum"]:
                fail(f"must be >= {prop['minimum']}, got {v!r}", f"{name}.{key}", row)
            if "maximum" in prop and v > prop["maximum"] + 1e-9:
                fail(f"must be <= {prop['maximum']}, got {v!r}", f"{name}.{key}", row)
        if isinstance(v, list) and "items" in prop:
            if len(v) < prop.get("minItems", 0):
                fail("must not be empty", f"{name}.{key}", row)
            if not all(isinstance(e, str) for e in v):
                fail("must be a list of strings", f"{name}.{key}", row)
