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

Each row (a CSV data row or a YAML entry) is checked by the :class:`ServerRecord` schema (pydantic);
row numbers in errors are 1-based data rows (CSV: the header is row 0; YAML: the list entry).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BeforeValidator, ConfigDict, Field, field_validator

from .._errors import InputError
from .._validate import Schema, validate
from ..costs import CycleProfile, EdgeServer, GPUProfile, load_profile
from ..scenario import Scenario
from ._table import check_header, read_csv_records, read_text

__all__ = [
    "CYCLE_PROFILE",
    "SERVER_COLUMNS",
    "ServerRecord",
    "default_servers",
    "load_servers",
    "resolve_profile",
    "server_summary",
]

CYCLE_PROFILE = "cycle"
"""The ``profile`` value that selects the paper's cycle model."""

_CYCLE_FIELDS = ("cycles_per_step", "freq_hz", "kappa")


def _cell(value: Any) -> Any:
    """A CSV cell or a YAML value: a scalar, stripped; an empty cell is a value left out."""
    if isinstance(value, bool | dict | list):
        raise ValueError(f"must be a scalar, got {value!r}")
    if isinstance(value, str):
        return value.strip() or None
    return value


def _text(value: Any) -> Any:
    """A name cell: like :func:`_cell`, but an empty one stays text (the field says what is empty)."""
    value = _cell(value)
    return "" if value is None else value


Cell = BeforeValidator(_cell)
Text = Annotated[str, BeforeValidator(_text)]
Seconds = Annotated[Annotated[float, Field(ge=0)] | None, Cell]
Positive = Annotated[Annotated[float, Field(gt=0)] | None, Cell]
Images = Annotated[Annotated[int, Field(ge=1)] | None, Cell]


class ServerRecord(Schema):
    """One server row; numbers may be given as text (a CSV cell, ``"4.0"`` for 4)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, coerce_numbers_to_str=True)

    name: Text
    profile: Text
    budget_s: Seconds = None
    max_batch_images: Images = None
    cycles_per_step: Positive = None
    freq_hz: Positive = None
    kappa: Positive = None

    @field_validator("name", "profile")
    @classmethod
    def _not_empty(cls, value: str, info: Any) -> str:
        if not value:
            raise ValueError("empty server name" if info.field_name == "name" else "empty profile")
        return value


SERVER_COLUMNS: tuple[str, ...] = tuple(ServerRecord.model_fields)


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
        rows = [(i, 0, entry) for i, entry in enumerate(_yaml_entries(path, label), start=1)]
    else:
        rows = [(rec.row, rec.line, rec.cells) for rec in _csv_records(path, label)]
    servers: list[EdgeServer] = []
    first_row: dict[str, int] = {}
    for row, line, cells in rows:
        spec = validate(ServerRecord, cells, source=label, row=row, line=line or None)
        if spec.name in first_row:
            raise InputError(
                f"duplicate server name {spec.name!r}, first used in row {first_row[spec.name]}",
                file=label,
                row=row,
                field="name",
            )
        first_row[spec.name] = row
        servers.append(_server(spec, label, row, path.parent, scenario))
    return servers


def _csv_records(path: Path, label: str) -> list[Any]:
    """The CSV's records, after checking its header: the required columns, no unknown one."""
    header, records = read_csv_records(path, name=label)
    check_header(header, file=label, required=("name", "profile"), known=SERVER_COLUMNS)
    return records


def _yaml_entries(path: Path, label: str) -> list[Any]:
    """The YAML's list of servers (optionally under a top-level ``servers:`` key)."""
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
    return data


def _server(spec: ServerRecord, label: str, row: int, base_dir: Path, sc: Scenario) -> EdgeServer:
    """The server of a checked row; budget and launch cap default to the scenario's."""
    cycle = {k: getattr(spec, k) for k in _CYCLE_FIELDS}
    profile = resolve_profile(spec.profile, base_dir=base_dir, cycle=cycle, where=label, row=row)
    budget = sc.server_budget_s if spec.budget_s is None else spec.budget_s
    batch = sc.server_max_batch_images if spec.max_batch_images is None else spec.max_batch_images
    return EdgeServer(spec.name, profile, budget, batch)


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
