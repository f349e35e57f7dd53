"""Execute a ``his-opt/plan/1`` plan: one hybrid call per group, server after server.

Each group runs once (:func:`execute_group`): its public phase, then its members' personal
phases on its edge server (``edge_steps``) under the server's batch cap. Members with
``device_steps > 0`` get a hand-off, serialized in the plan's mode and resumed as the user
device would (personal phase II). The driver (:class:`_Recorder`) writes ``USER_ID.png`` and
``manifest.json`` atomically after every group, so a killed run resumes where it stopped;
:mod:`._ray_plan` runs the same groups on one Ray actor per server.
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

from .._atomic import atomic_write_bytes, atomic_write_json
from .._errors import InputError
from ..costs._payload import HANDOFF_MODES
from ._rows import _rows_per_image, independent_rows

__all__ = [
    "MANIFEST_NAME",
    "MANIFEST_SCHEMA",
    "PLAN_SCHEMA",
    "GenerateResult",
    "Plan",
    "PlanGroup",
    "PlanUser",
    "GroupOutput",
    "batch_cap",
    "check_manifest",
    "execute_group",
    "load_plan",
    "pending_users",
    "run_plan",
]

PLAN_SCHEMA = "his-opt/plan/1"
MODEL_DTYPES = ("float32", "float16", "bfloat16")
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
    server: str = "es1"


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
    servers: dict[str, int | None] = field(default_factory=dict)
    model: dict[str, Any] | None = None
    handoff: str = "latent"

    def server_groups(self) -> dict[str, list[PlanGroup]]:
        """Groups per server, servers in plan order (servers without groups left out)."""
        out: dict[str, list[PlanGroup]] = {}
        for name in [*self.servers, *(g.server for g in self.groups)]:
            here = [g for g in self.groups if g.server == name]
            if here:
                out.setdefault(name, here)
        return out


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
    handoff = scenario.get("handoff", "latent")
    if handoff not in HANDOFF_MODES:
        raise fail("scenario.handoff", f"must be one of {', '.join(HANDOFF_MODES)}, got {handoff!r}")
    servers = _load_servers(doc, fail)
    model = _load_model(doc, fail, float(guidance), float(public_guidance))

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
        server = g.get("server")
        if not isinstance(server, str) or not server:
            raise fail(f"{where}.server", f"must be a non-empty string, got {server!r}")
        if servers and server not in servers:
            raise fail(
                f"{where}.server",
                f"unknown server {server!r}; the plan's servers are {', '.join(servers)}",
            )
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
        groups[gid] = PlanGroup(gid, public, x, seed, tuple(members), server)

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
        servers=servers,
        model=model,
        handoff=handoff,
    )


def _load_servers(doc: dict[str, Any], fail: Any) -> dict[str, int | None]:
    """``servers[]`` of the plan: name -> images per launch (``{}`` when the plan has none).

    ``batch_images`` (the solver's launch size: ``max_batch_images`` within the profile's
    measured range) when present, else ``max_batch_images``."""
    raw = doc.get("servers")
    if raw is None:
        return {}
    if not isinstance(raw, list):
        raise fail("servers", "must be a list")
    servers: dict[str, int | None] = {}
    for i, srv in enumerate(raw):
        name = srv.get("name") if isinstance(srv, dict) else None
        if not isinstance(name, str) or not name:
            raise fail(f"servers[{i}].name", f"must be a non-empty string, got {name!r}")
        if name in servers:
            raise fail(f"servers[{i}].name", f"duplicate server {name!r}")
        key = "batch_images" if "batch_images" in srv else "max_batch_images"
        cap = srv.get(key)
        if cap is not None and (not _int(cap) or cap < 1):
            raise fail(f"servers[{i}].{key}", f"must be a positive integer or null, got {cap!r}")
        servers[name] = cap
    return servers


def _load_model(
    doc: dict[str, Any], fail: Any, guidance: float, public_guidance: float
) -> dict[str, Any] | None:
    """The optional ``model`` object (id, dtype, variant, guidance), checked against the scenario."""
    model = doc.get("model")
    if model is None:
        return None
    if not isinstance(model, dict):
        raise fail("model", "must be an object")
    if not isinstance(model.get("id"), str) or not model["id"]:
        raise fail("model.id", f"must be a non-empty string, got {model.get('id')!r}")
    dtype = model.get("dtype")
    if dtype is not None and dtype not in MODEL_DTYPES:
        raise fail("model.dtype", f"must be one of {', '.join(MODEL_DTYPES)}, got {dtype!r}")
    for key, expected in (("guidance_public", public_guidance), ("guidance_personal", guidance)):
        value = model.get(key)
        if value is not None and (not _number(value) or abs(value - expected) > 1e-9):
            raise fail(f"model.{key}", f"{value!r} differs from the scenario's {expected!r}")
    return dict(model)


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


def pending_users(plan: Plan, out_dir: str | Path, manifest: dict[str, Any] | None) -> dict[str, list[str]]:
    """Per group id, the members still to generate (no image or not in the manifest)."""
    out_dir = Path(out_dir)
    done = set((manifest or {}).get("users", {}))
    return {
        g.group_id: [u for u in g.members if not (u in done and (out_dir / f"{u}.png").is_file())]
        for g in plan.groups
    }


def batch_cap(plan: Plan, group: PlanGroup, max_batch_size: int | None) -> int | None:
    """Images per transformer call for ``group``: its server's launch size (``batch_images``)
    and the caller's ``max_batch_size``, whichever is smaller (``None``: no cap)."""
    caps = [c for c in (plan.servers.get(group.server), max_batch_size) if c is not None]
    return min(caps) if caps else None


@dataclass
class GroupOutput:
    """What executing one group produced: PNG bytes per user, the run record, hand-off files."""

    pngs: dict[str, bytes]
    run: dict[str, Any]
    handoffs: dict[str, bytes] = field(default_factory=dict)


def execute_group(
    pipe: Any,
    plan: Plan,
    group: PlanGroup,
    pending: list[str],
    *,
    height: int | None,
    width: int | None,
    max_batch_size: int | None,
    keep_handoffs: bool = False,
) -> GroupOutput:
    """Run one group on ``pipe``: the edge call, then its hand-offs serialized (in the plan's
    hand-off mode) and resumed as the devices would. Writes nothing; the caller does."""
    import io

    import torch

    from ._handoff import HybridHandoff

    total = plan.total_steps
    cap = batch_cap(plan, group, max_batch_size)
    users = [plan.users[uid] for uid in pending]
    pipe.set_progress_bar_config(desc=f"group {group.group_id} on {group.server}")
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
        max_batch_size=cap,
        output_type="pil",
    )
    images = dict(zip((pending[i] for i in edge.finished), edge.images, strict=True))
    device_record = None
    files: dict[str, bytes] = {}
    handed = [(uid, h) for uid, h in zip(pending, edge.handoffs, strict=True) if h is not None]
    if handed:
        for uid, handoff in handed:
            files[uid] = handoff.to_bytes(plan.handoff)
        received = [HybridHandoff.from_bytes(files[uid], source=uid) for uid, _ in handed]
        pipe.set_progress_bar_config(desc=f"group {group.group_id} devices")
        device = pipe.resume(
            received,
            num_inference_steps=total,
            height=height,
            width=width,
            max_batch_size=cap,
            output_type="pil",
        )
        images.update(zip((uid for uid, _ in handed), device.images, strict=True))
        device_record = {
            "timings": device.timings,
            "transformer_rows": device.transformer_rows,
            "batch_sizes": device.batch_sizes,
        }
    pngs = {}
    for uid in pending:
        buffer = io.BytesIO()
        images[uid].save(buffer, format="PNG")
        pngs[uid] = buffer.getvalue()
    run = {
        "users": pending,
        "server": group.server,
        "batch_cap": cap,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "edge": {
            "timings": edge.timings,
            "transformer_rows": edge.transformer_rows,
            "public_rows": edge.public_rows,
            "personal_rows": edge.personal_rows,
            "batch_sizes": edge.batch_sizes,
        },
        "device": device_record,
        "handoff_mode": plan.handoff,
        "handoff_bytes": {uid: len(data) for uid, data in files.items()},
        "transformer_rows": edge.transformer_rows
        + (device_record or {}).get("transformer_rows", 0),
        "independent_rows": independent_rows(len(pending), total, plan.guidance_scale),
    }
    return GroupOutput(pngs=pngs, run=run, handoffs=files if keep_handoffs else {})


class _Recorder:
    """The driver's side of a run: the manifest, images and hand-off files, written atomically
    after every group so a killed run resumes where it stopped."""

    def __init__(
        self, plan: Plan, out_dir: Path, manifest: dict[str, Any], handoff_dir: Path | None
    ) -> None:
        self.plan, self.out_dir, self.manifest, self.handoff_dir = plan, out_dir, manifest, handoff_dir
        self.path = out_dir / MANIFEST_NAME
        self.result = GenerateResult(out_dir=out_dir, manifest_path=self.path)

    def record(self, group: PlanGroup, output: GroupOutput, worker: dict[str, Any]) -> None:
        if self.handoff_dir is not None:
            for uid, data in output.handoffs.items():
                atomic_write_bytes(self.handoff_dir / f"{uid}.safetensors", data)
        for uid, data in output.pngs.items():
            atomic_write_bytes(self.out_dir / f"{uid}.png", data)
        run = output.run
        entry = self.manifest["groups"].setdefault(
            group.group_id,
            {
                "seed": group.seed,
                "common_steps": group.common_steps,
                "public_prompt": group.public_prompt,
                "server": group.server,
                "runs": [],
            },
        )
        entry["runs"].append(run)
        per_image = _rows_per_image(self.plan.guidance_scale)
        for uid in run["users"]:
            u = self.plan.users[uid]
            self.manifest["users"][uid] = {
                "image": f"{uid}.png",
                "group_id": group.group_id,
                "server": group.server,
                "seed": group.seed,
                "common_steps": u.common_steps,
                "edge_steps": u.edge_steps,
                "device_steps": u.device_steps,
                "edge_rows": u.edge_steps * per_image,
                "device_rows": u.device_steps * per_image,
                "handoff_bytes": run["handoff_bytes"].get(uid),
                "finished_at": run["finished_at"],
            }
        server = self.manifest.setdefault("servers", {}).setdefault(
            group.server,
            {
                "batch_cap": self.plan.servers.get(group.server),
                "groups_run": 0,
                "edge_s": 0.0,
                "device_s": 0.0,
                "max_batch_used": 0,
            },
        )
        server.update(worker)
        server["groups_run"] += 1
        server["edge_s"] += run["edge"]["timings"]["total_s"]
        server["device_s"] += ((run["device"] or {}).get("timings") or {}).get("total_s", 0.0)
        used = run["edge"]["batch_sizes"] + (run["device"] or {}).get("batch_sizes", [])
        server["max_batch_used"] = max([server["max_batch_used"], *used])
        atomic_write_json(self.path, self.manifest)
        self.result.generated += run["users"]
        self.result.groups_run.append(group.group_id)


def _new_manifest(plan: Plan, identity: dict[str, Any], device: str) -> dict[str, Any]:
    return {
        "schema": MANIFEST_SCHEMA,
        "plan": str(plan.path),
        **identity,
        "device": device,
        "total_steps": plan.total_steps,
        "public_guidance_scale": plan.public_guidance_scale,
        "guidance_scale": plan.guidance_scale,
        "handoff_mode": plan.handoff,
        "groups": {},
        "users": {},
        "servers": {},
    }


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
    """Execute ``plan`` with ``pipe`` (a :class:`HybridSD3Pipeline`), server after server.

    Users whose image exists and who appear in the manifest are skipped. Each group runs with
    its server's ``max_batch_images`` (and at most ``max_batch_size``) images per transformer
    call. Hand-offs are serialized in the plan's mode (kept in ``handoff_dir`` if given) and
    resumed with the same pipeline, simulating the user device. ``height``/``width`` default to
    the plan's scenario.
    """
    import os
    import platform

    if not isinstance(plan, Plan):
        plan = load_plan(plan)
    out_dir = Path(out_dir)
    height, width = pipe._check_size(height or plan.height, width or plan.width, None)
    dtype = str(pipe.transformer.dtype).removeprefix("torch.")
    identity = _run_identity(plan, model, height, width, dtype)
    manifest = check_manifest(out_dir, plan, model=model, height=height, width=width, dtype=dtype)
    manifest = manifest or _new_manifest(plan, identity, str(pipe._execution_device))
    recorder = _Recorder(plan, out_dir, manifest, None if handoff_dir is None else Path(handoff_dir))
    pending = pending_users(plan, out_dir, manifest)
    worker = {"worker": f"{platform.node()}:{os.getpid()}", "device": str(pipe._execution_device)}
    for groups in plan.server_groups().values():
        for group in groups:
            todo = pending[group.group_id]
            recorder.result.skipped += [u for u in group.members if u not in todo]
            if not todo:
                continue
            output = execute_group(
                pipe,
                plan,
                group,
                todo,
                height=height,
                width=width,
                max_batch_size=max_batch_size,
                keep_handoffs=handoff_dir is not None,
            )
            recorder.record(group, output, worker)
    return recorder.result
