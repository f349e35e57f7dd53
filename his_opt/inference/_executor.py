"""Execute a ``his-opt/plan/1`` plan: one hybrid call per group, hand-offs resumed locally.

Each group runs once: its public phase, then its members' personal phases on the edge server
(``edge_steps``). Members with ``device_steps > 0`` get a hand-off, serialized and resumed here
as the user device would (personal phase II). Images are written atomically as ``USER_ID.png``;
``manifest.json`` is rewritten after every group, so a killed run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .._atomic import atomic_path, atomic_write_json
from .._errors import InputError
from ._rows import _rows_per_image, independent_rows

__all__ = [
    "MANIFEST_NAME",
    "MANIFEST_SCHEMA",
    "PLAN_SCHEMA",
    "GenerateResult",
    "Plan",
    "PlanGroup",
    "PlanUser",
    "check_manifest",
    "load_plan",
    "run_plan",
]

PLAN_SCHEMA = "his-opt/plan/1"
MANIFEST_SCHEMA = "his-opt/generate-manifest/1"
MANIFEST_NAME = "manifest.json"
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class PlanUser:
    """One user of a plan: prompts and the step split x + y + z = T."""

    user_id: str
    prompt: str
    negative_prompt: str | None
    group_id: str
    common_steps: int
    edge_steps: int
    device_steps: int


@dataclass(frozen=True)
class PlanGroup:
    """One group of a plan: the public prompt drives ``common_steps`` shared steps."""

    group_id: str
    public_prompt: str | None
    common_steps: int
    seed: int
    members: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    """A validated plan (see :func:`load_plan`)."""

    path: Path
    sha256: str
    total_steps: int
    guidance_scale: float
    public_guidance_scale: float
    height: int | None
    width: int | None
    groups: tuple[PlanGroup, ...]
    users: dict[str, PlanUser]


@dataclass
class GenerateResult:
    """What :func:`run_plan` did."""

    out_dir: Path
    manifest_path: Path
    generated: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    groups_run: list[str] = field(default_factory=list)


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def load_plan(path: str | Path) -> Plan:
    """Read and validate a plan; any problem raises :class:`InputError` naming file and field."""
    from .._read import read_bytes, read_json
    from ..report._schema import validate_plan

    raw = read_bytes(path)
    doc = read_json(path)
    validate_plan(doc, source=path, purpose="run")  # the one plan validator; then the engine's own checks
    path = Path(path)

    def fail(where: str, message: str) -> InputError:
        return InputError(message, file=path, field=where)

    if not isinstance(doc, dict):
        raise fail("<root>", "a plan is a JSON object")
    if doc.get("schema") != PLAN_SCHEMA:
        raise fail("schema", f"expected {PLAN_SCHEMA!r}, got {doc.get('schema')!r}")
    scenario = doc.get("scenario")
    if not isinstance(scenario, dict):
        raise fail("scenario", "missing or not an object")
    total = scenario.get("total_steps")
    if not _int(total) or total < 1:
        raise fail("scenario.total_steps", f"must be a positive integer, got {total!r}")
    guidance = scenario.get("guidance_scale")
    if not _number(guidance):
        raise fail("scenario.guidance_scale", f"must be a number, got {guidance!r}")
    public_guidance = scenario.get("public_guidance_scale", guidance)
    if not _number(public_guidance):
        raise fail("scenario.public_guidance_scale", f"must be a number, got {public_guidance!r}")
    size: dict[str, int | None] = {}
    for key in ("height", "width"):
        value = scenario.get(key)
        if value is not None and (not _int(value) or value < 1):
            raise fail(f"scenario.{key}", f"must be a positive integer, got {value!r}")
        size[key] = value

    raw_users = doc.get("users")
    if not isinstance(raw_users, list) or not raw_users:
        raise fail("users", "must be a non-empty list")
    raw_groups = doc.get("groups")
    if not isinstance(raw_groups, list) or not raw_groups:
        raise fail("groups", "must be a non-empty list")

    groups: dict[str, PlanGroup] = {}
    for i, g in enumerate(raw_groups):
        where = f"groups[{i}]"
        if not isinstance(g, dict):
            raise fail(where, "must be an object")
        gid = g.get("group_id")
        if not isinstance(gid, str) or not gid:
            raise fail(f"{where}.group_id", f"must be a non-empty string, got {gid!r}")
        if gid in groups:
            raise fail(f"{where}.group_id", f"duplicate group {gid!r}")
        x = g.get("common_steps")
        if not _int(x) or not 0 <= x < total:
            raise fail(f"{where}.common_steps", f"must be an integer in 0..{total - 1}, got {x!r}")
        public = g.get("public_prompt")
        if public is not None and not isinstance(public, str):
            raise fail(f"{where}.public_prompt", "must be a string or null")
        if x > 0 and not public:
            raise fail(
                f"{where}.public_prompt", f"group {gid!r} shares {x} steps but has no public prompt"
            )
        seed = g.get("seed")
        if not _int(seed) or not 0 <= seed < 2**63:
            raise fail(f"{where}.seed", f"must be a non-negative integer, got {seed!r}")
        members = g.get("members")
        if (
            not isinstance(members, list)
            or not members
            or not all(isinstance(m, str) for m in members)
        ):
            raise fail(f"{where}.members", "must be a non-empty list of user ids")
        if len(set(members)) != len(members):
            raise fail(f"{where}.members", f"group {gid!r} lists a user twice")
        groups[gid] = PlanGroup(gid, public, x, seed, tuple(members))

    users: dict[str, PlanUser] = {}
    for i, u in enumerate(raw_users):
        where = f"users[{i}]"
        if not isinstance(u, dict):
            raise fail(where, "must be an object")
        uid = u.get("user_id")
        if not isinstance(uid, str) or not _SAFE_ID.match(uid):
            raise fail(
                f"{where}.user_id",
                f"must be a file-name-safe id (letters, digits, '.', '_', '-'), got {uid!r}",
            )
        if uid in users:
            raise fail(f"{where}.user_id", f"duplicate user {uid!r}")
        prompt = u.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise fail(f"{where}.prompt", "must be a non-empty string")
        negative = u.get("negative_prompt")
        if negative is not None and not isinstance(negative, str):
            raise fail(f"{where}.negative_prompt", "must be a string or null")
        if negative and guidance <= 1:
            raise fail(f"{where}.negative_prompt", "needs scenario.guidance_scale > 1")
        gid = u.get("group_id")
        if gid not in groups:
            raise fail(f"{where}.group_id", f"group {gid!r} does not exist")
        group = groups[gid]
        if uid not in group.members:
            raise fail(f"{where}.group_id", f"user {uid!r} is not a member of group {gid!r}")
        steps = {}
        for key in ("common_steps", "edge_steps", "device_steps"):
            value = u.get(key)
            if not _int(value) or value < 0:
                raise fail(f"{where}.{key}", f"must be a non-negative integer, got {value!r}")
            steps[key] = value
        if steps["common_steps"] != group.common_steps:
            raise fail(
                f"{where}.common_steps",
                f"{steps['common_steps']} differs from group {gid!r}'s {group.common_steps}",
            )
        if sum(steps.values()) != total:
            raise fail(
                f"{where}.device_steps",
                f"common_steps + edge_steps + device_steps = {sum(steps.values())}, "
                f"expected scenario.total_steps = {total}",
            )
        users[uid] = PlanUser(uid, prompt, negative, gid, **steps)

    for i, g in enumerate(groups.values()):
        for member in g.members:
            if member not in users:
                raise fail(f"groups[{i}].members", f"user {member!r} does not exist")
            if users[member].group_id != g.group_id:
                raise fail(
                    f"groups[{i}].members",
                    f"user {member!r} belongs to group {users[member].group_id!r}",
                )
    return Plan(
        path=path,
        sha256=hashlib.sha256(raw).hexdigest(),
        total_steps=total,
        guidance_scale=float(guidance),
        public_guidance_scale=float(public_guidance),
        height=size["height"],
        width=size["width"],
        groups=tuple(groups.values()),
        users=users,
    )


def _run_identity(
    plan: Plan, model: str, height: int | None, width: int | None, dtype: str
) -> dict[str, Any]:
    return {
        "plan_sha256": plan.sha256,
        "model": model,
        "height": height,
        "width": width,
        "dtype": dtype,
    }


def check_manifest(
    out_dir: str | Path,
    plan: Plan,
    *,
    model: str,
    height: int | None,
    width: int | None,
    dtype: str,
) -> dict[str, Any] | None:
    """Return the existing manifest of ``out_dir`` (or ``None``); refuse one from another run.

    A manifest written for another plan, model, size or dtype raises :class:`InputError`, so
    images of different runs never mix in one folder.
    """
    path = Path(out_dir) / MANIFEST_NAME
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"unreadable manifest ({err})", file=path) from None
    if not isinstance(manifest, dict) or manifest.get("schema") != MANIFEST_SCHEMA:
        raise InputError(f"not a {MANIFEST_SCHEMA} manifest", file=path, field="schema")
    for key, value in _run_identity(plan, model, height, width, dtype).items():
        if manifest.get(key) != value:
            raise InputError(
                f"written by another run ({manifest.get(key)!r} != {value!r}); use another --out",
                file=path,
                field=key,
            )
    return manifest


def run_plan(
    plan: Plan | str | Path,
    pipe: Any,
    out_dir: str | Path,
    *,
    model: str = "",
    height: int | None = None,
    width: int | None = None,
    max_batch_size: int | None = 16,
    handoff_dir: str | Path | None = None,
) -> GenerateResult:
    """Execute ``plan`` group by group with ``pipe`` (a :class:`HybridSD3Pipeline`).

    Users whose image exists and who appear in the manifest are skipped. Hand-offs are
    serialized (to ``handoff_dir`` if given, else in memory) and resumed with the same pipeline,
    simulating the user device. ``height``/``width`` default to the plan's scenario.
    """
    import torch

    from ._handoff import HybridHandoff

    if not isinstance(plan, Plan):
        plan = load_plan(plan)
    out_dir = Path(out_dir)
    height = height or plan.height
    width = width or plan.width
    dtype = str(pipe.transformer.dtype).removeprefix("torch.")
    height, width = pipe._check_size(height, width, None)
    manifest = check_manifest(out_dir, plan, model=model, height=height, width=width, dtype=dtype)
    if manifest is None:
        manifest = {
            "schema": MANIFEST_SCHEMA,
            "plan": str(plan.path),
            **_run_identity(plan, model, height, width, dtype),
            "device": str(pipe._execution_device),
            "total_steps": plan.total_steps,
            "public_guidance_scale": plan.public_guidance_scale,
            "guidance_scale": plan.guidance_scale,
            "groups": {},
            "users": {},
        }
    manifest_path = out_dir / MANIFEST_NAME
    result = GenerateResult(out_dir=out_dir, manifest_path=manifest_path)
    total = plan.total_steps
    per_image = _rows_per_image(plan.guidance_scale)

    for k, group in enumerate(plan.groups, start=1):
        pending = [
            uid
            for uid in group.members
            if not (uid in manifest["users"] and (out_dir / f"{uid}.png").is_file())
        ]
        result.skipped += [uid for uid in group.members if uid not in pending]
        if not pending:
            continue
        users = [plan.users[uid] for uid in pending]
        pipe.set_progress_bar_config(desc=f"group {group.group_id} ({k}/{len(plan.groups)})")
        edge = pipe(
            public_prompt=group.public_prompt,
            prompts=[u.prompt for u in users],
            common_steps=group.common_steps,
            num_inference_steps=total,
            public_guidance_scale=plan.public_guidance_scale,
            guidance_scale=plan.guidance_scale,
            negative_prompts=[u.negative_prompt for u in users],
            edge_steps=[u.edge_steps for u in users],
            height=height,
            width=width,
            generator=torch.Generator("cpu").manual_seed(group.seed),
            max_batch_size=max_batch_size,
            output_type="pil",
        )
        images = dict(zip((pending[i] for i in edge.finished), edge.images, strict=True))
        device_record = None
        handed = [(uid, h) for uid, h in zip(pending, edge.handoffs, strict=True) if h is not None]
        if handed:
            received = []
            for uid, handoff in handed:
                if handoff_dir is not None:
                    received.append(
                        HybridHandoff.load(handoff.save(Path(handoff_dir) / f"{uid}.safetensors"))
                    )
                else:
                    received.append(HybridHandoff.from_bytes(handoff.to_bytes(), source=uid))
            pipe.set_progress_bar_config(desc=f"group {group.group_id} devices")
            device = pipe.resume(
                received,
                num_inference_steps=total,
                height=height,
                width=width,
                max_batch_size=max_batch_size,
                output_type="pil",
            )
            images.update(zip((uid for uid, _ in handed), device.images, strict=True))
            device_record = {"timings": device.timings, "transformer_rows": device.transformer_rows}

        for uid in pending:
            with atomic_path(out_dir / f"{uid}.png") as tmp:
                images[uid].save(tmp, format="PNG")
        now = datetime.now(UTC).isoformat(timespec="seconds")
        run = {
            "users": pending,
            "finished_at": now,
            "edge": {
                "timings": edge.timings,
                "transformer_rows": edge.transformer_rows,
                "public_rows": edge.public_rows,
                "personal_rows": edge.personal_rows,
            },
            "device": device_record,
            "transformer_rows": edge.transformer_rows
            + (device_record or {}).get("transformer_rows", 0),
            "independent_rows": independent_rows(len(pending), total, plan.guidance_scale),
        }
        record = manifest["groups"].setdefault(
            group.group_id,
            {
                "seed": group.seed,
                "common_steps": group.common_steps,
                "public_prompt": group.public_prompt,
                "runs": [],
            },
        )
        record["runs"].append(run)
        for u in users:
            manifest["users"][u.user_id] = {
                "image": f"{u.user_id}.png",
                "group_id": group.group_id,
                "seed": group.seed,
                "common_steps": u.common_steps,
                "edge_steps": u.edge_steps,
                "device_steps": u.device_steps,
                "edge_rows": u.edge_steps * per_image,
                "device_rows": u.device_steps * per_image,
                "finished_at": now,
            }
        atomic_write_json(manifest_path, manifest)
        result.generated += pending
        result.groups_run.append(group.group_id)
    return result
