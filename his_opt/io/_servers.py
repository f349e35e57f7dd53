"""Edge servers: ``servers.csv`` or ``servers.yaml``, or the scenario's single default server.

Columns (CSV) or keys (YAML, a list of mappings, optionally under a top-level ``servers:`` key):

================  ===========================================================================
name              unique server name (required)
profile           a GPU profile: a name in ``$HIS_OPT_MODELS/gpu/`` or shipped
                  (``sd3-medium-1024-fp16-a100-estimate``), a path to a profile JSON
                  (relative to the servers file), or ``cycle`` for the
                  paper's cycle model (required)
budget_s          GPU seconds available per round (default: the scenario's ``server_budget_s``)
max_batch_images  largest personal-phase launch, images (default: what the profile measured)
cycles_per_step   cycle model only: cycles per image-step (default 15e6, the paper's ES)
freq_hz           cycle model only: clock, Hz (default 2e9)
kappa             cycle model only: switched-capacitance constant (default 1e-27)
================  ===========================================================================

Row numbers in errors are 1-based data rows (CSV: the header is row 0; YAML: the list entry).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from .._errors import InputError
from ..costs import CycleProfile, EdgeServer, GPUProfile, load_profile
from ..scenario import Scenario
from ._table import Record, parse_float, parse_int, read_csv_records, read_text

__all__ = [
    "CYCLE_PROFILE",
    "SERVER_COLUMNS",
    "default_servers",
    "load_servers",
    "resolve_profile",
    "server_summary",
]

CYCLE_PROFILE = "cycle"
"""The ``profile`` value that selects the paper's cycle model."""

_CYCLE_FIELDS = ("cycles_per_step", "freq_hz", "kappa")
SERVER_COLUMNS: tuple[str, ...] = (
    "name",
    "profile",
    "budget_s",
    "max_batch_images",
    *_CYCLE_FIELDS,
)


def default_servers(scenario: Scenario | None = None) -> list[EdgeServer]:
    """One server ``es1`` with the scenario's ``server_profile`` and ``server_budget_s``."""
    scenario = scenario or Scenario()
    profile = resolve_profile(scenario.server_profile, where="scenario", field="server_profile")
    return [EdgeServer("es1", profile, scenario.server_budget_s, scenario.server_max_batch_images)]


def resolve_profile(
    value: str,
    *,
    base_dir: Path | None = None,
    cycle: dict[str, float] | None = None,
    where: str = "<servers>",
    row: int | None = None,
    field: str = "profile",
) -> GPUProfile | CycleProfile:
    """A server profile from a ``profile`` cell: ``cycle``, a shipped name, or a JSON path."""
    if value == CYCLE_PROFILE:
        kwargs = {k: v for k, v in (cycle or {}).items() if v is not None}
        paper = not kwargs or all(getattr(CycleProfile(), k) == v for k, v in kwargs.items())
        if not paper:
            kwargs["name"] = "cycle-model"
            kwargs["provenance"] = "cycle model with figures given in the servers file"
        return CycleProfile(**kwargs)
    if cycle and any(v is not None for v in cycle.values()):
        key = next(k for k, v in cycle.items() if v is not None)
        raise InputError(
            f"only allowed with profile '{CYCLE_PROFILE}'", file=where, row=row, field=key
        )
    target: str | Path = value
    looks_like_path = value.endswith(".json") or "/" in value or "\\" in value
    if looks_like_path and base_dir is not None and not Path(value).is_absolute():
        beside = base_dir / value
        target = beside if beside.exists() or not Path(value).exists() else Path(value)
    try:
        return load_profile(target)
    except InputError as err:
        detail = err.message if err.file is None else str(err)
        raise InputError(
            f"bad profile {value!r}: {detail}", file=where, row=row, field=field
        ) from err


def load_servers(path: str | Path | None, scenario: Scenario | None = None) -> list[EdgeServer]:
    """Read ``servers.csv`` / ``.yaml`` / ``.yml``; ``None`` gives ``default_servers(scenario)``."""
    scenario = scenario or Scenario()
    if path is None:
        return default_servers(scenario)
    path = Path(path)
    label = str(path)
    if path.suffix.lower() in (".yaml", ".yml"):
        records = _yaml_records(path, label)
    else:
        header, records = read_csv_records(path, name=label)
        for col in ("name", "profile"):
            if col not in header:
                raise InputError(
                    f"missing required column (header: {', '.join(header)})",
                    file=label,
                    row=0,
                    field=col,
                )
        for col in header:
            if col not in SERVER_COLUMNS:
                raise InputError(
                    f"unknown column; known: {', '.join(SERVER_COLUMNS)}",
                    file=label,
                    row=0,
                    field=col,
                )
    servers: list[EdgeServer] = []
    first_row: dict[str, int] = {}
    for rec in records:
        server = _parse_server(rec, label, path.parent, scenario)
        if server.name in first_row:
            raise InputError(
                f"duplicate server name {server.name!r}, first used in row "
                f"{first_row[server.name]}",
                file=label,
                row=rec.row,
                field="name",
            )
        first_row[server.name] = rec.row
        servers.append(server)
    return servers


def _yaml_records(path: Path, label: str) -> list[Record]:
    text = read_text(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(f"malformed YAML: {msg}", file=label) from err
    if isinstance(data, dict) and set(data) == {"servers"}:
        data = data["servers"]
    if not isinstance(data, list) or not data:
        raise InputError(
            "expected a non-empty list of servers (optionally under 'servers:')", file=label
        )
    records = []
    for i, entry in enumerate(data, start=1):
        if not isinstance(entry, dict):
            raise InputError(
                "each server must be a mapping of name, profile, budget_s, ...", file=label, row=i
            )
        cells: dict[str, str] = {}
        for key, value in entry.items():
            if key not in SERVER_COLUMNS:
                raise InputError(
                    f"unknown key; known: {', '.join(SERVER_COLUMNS)}",
                    file=label,
                    row=i,
                    field=str(key),
                )
            if isinstance(value, (bool, dict, list)):
                raise InputError(f"must be a scalar, got {value!r}", file=label, row=i, field=key)
            cells[key] = "" if value is None else str(value).strip()
        for key in ("name", "profile"):
            if key not in cells:
                raise InputError("missing", file=label, row=i, field=key)
        records.append(Record(i, 0, cells))
    return records


def _parse_server(rec: Record, label: str, base_dir: Path, sc: Scenario) -> EdgeServer:
    cells = rec.cells
    where = f" (line {rec.line})" if rec.line else ""
    name = cells.get("name", "")
    if not name:
        raise InputError(f"empty server name{where}", file=label, row=rec.row, field="name")
    profile_value = cells.get("profile", "")
    if not profile_value:
        raise InputError(f"empty profile{where}", file=label, row=rec.row, field="profile")

    def num(col: str, positive: bool = False) -> float | None:
        value = cells.get(col, "")
        if value == "":
            return None
        return parse_float(value, file=label, rec=rec, field=col, positive=positive)

    cycle = {k: num(k, positive=True) for k in _CYCLE_FIELDS}
    profile = resolve_profile(
        profile_value, base_dir=base_dir, cycle=cycle, where=label, row=rec.row
    )
    budget = num("budget_s")
    batch_cell = cells.get("max_batch_images", "")
    batch = (
        None
        if batch_cell == ""
        else parse_int(batch_cell, file=label, rec=rec, field="max_batch_images", minimum=1)
    )
    if batch is None:
        batch = sc.server_max_batch_images
    budget_s = sc.server_budget_s if budget is None else budget
    if not math.isfinite(budget_s):
        raise InputError("must be finite", file=label, row=rec.row, field="budget_s")
    return EdgeServer(name, profile, budget_s, batch)


def server_summary(server: EdgeServer) -> dict[str, Any]:
    """A flat description of a server for reports and provenance."""
    prof = server.profile
    return {
        "name": server.name,
        "profile": prof.name,
        "profile_kind": prof.kind,
        "budget_s": server.budget_s,
        "max_batch_images": server.max_batch_images,
        "power_w": getattr(prof, "power_w", None),
    }
