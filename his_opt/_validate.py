"""File formats checked by a schema library (pydantic v2), errors mapped to file, row and field.

``validate(Model, data, source=...)`` returns the validated model or raises :class:`InputError`
whose ``field`` is the dotted location of the first error and ``row`` the 1-based index when the
location passes through a list (a profile row). Messages use the project's words ("must be
non-negative, got -5"), not pydantic's. :class:`Schema` refuses unknown keys naming the known
ones; :class:`FieldError` lets a rule that ties fields together name the field it blames;
:func:`dataclass_schema` checks a dataclass (the scenario) with the constraints its fields carry.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from ._errors import InputError

__all__ = [
    "MAX_PROFILE_ROWS",
    "FieldError",
    "FittedAt",
    "GPUProfileFile",
    "Schema",
    "dataclass_schema",
    "side",
    "validate",
]

MAX_PROFILE_ROWS = 4096
"""Most transformer rows in one measured launch, and most entries in a profile (sanity bound)."""

M = TypeVar("M", bound=BaseModel)
PositiveInt = Annotated[int, Field(strict=True, ge=1)]
PositiveSeconds = Annotated[float, Field(gt=0, le=3600, allow_inf_nan=False)]


def side(value: int) -> int:
    """An image side: a positive multiple of 16 (the latent patch of SD3's VAE and transformer)."""
    if value < 16 or value % 16:
        raise ValueError(f"must be a positive multiple of 16 (the latent patch), got {value}")
    return value


class FieldError(ValueError):
    """Raised inside a validator to blame ``field`` (a rule that ties fields together, an unknown
    key): :func:`validate` adds it to the error's location."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class Schema(BaseModel):
    """A record that refuses unknown keys, naming the first one and listing the known ones."""

    model_config = ConfigDict(extra="forbid")
    unknown_key: ClassVar[str] = "key"
    """How an unknown key is called in the message (``unknown scenario field; known: ...``)."""

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            known = [info.alias or name for name, info in cls.model_fields.items()]
            unknown = sorted(str(key) for key in data if key not in known)
            if unknown:
                raise cls.unknown_keys(unknown, known)
        return data

    @classmethod
    def unknown_keys(cls, unknown: list[str], known: list[str]) -> ValueError:
        """The error for keys not in the schema (a format may word it its own way)."""
        return FieldError(unknown[0], f"unknown {cls.unknown_key}; known: {', '.join(known)}")


def dataclass_schema(
    cls: type, *, base: type[BaseModel], types: Callable[[str, Any], Any] | None = None
) -> type[BaseModel]:
    """A pydantic model with the fields, annotations (``Annotated`` constraints included) and
    defaults of dataclass ``cls`` on top of ``base`` (its config and cross-field rules), so the
    dataclass stays the one list of fields. ``types(name, hint)`` may refine a field's type."""
    hints = typing.get_type_hints(cls, include_extras=True)
    spec: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        hint = hints[f.name] if types is None else types(f.name, hints[f.name])
        if f.default_factory is not dataclasses.MISSING:
            spec[f.name] = (hint, Field(default_factory=f.default_factory))
        else:
            spec[f.name] = (hint, f.default)
    return create_model(cls.__name__, __base__=base, **spec)


class GPUProfileFile(BaseModel):
    """``his-opt/gpu-profile/1``: the fields a solve relies on (others pass through)."""

    model_config = ConfigDict(extra="allow")

    schema_: str = Field(alias="schema")
    name: Annotated[str, Field(min_length=1, max_length=200)]
    rows: Annotated[list[PositiveInt], Field(min_length=1, max_length=MAX_PROFILE_ROWS)]
    step_latency_s: Annotated[list[PositiveSeconds], Field(min_length=1, max_length=MAX_PROFILE_ROWS)]
    resolution: Annotated[int, Field(strict=True)] = 1024
    dtype: str = "float16"
    device: str = "unknown"

    @field_validator("rows")
    @classmethod
    def _rows(cls, rows: list[int]) -> list[int]:
        if rows != sorted(set(rows)):
            raise ValueError("must be strictly increasing")
        if rows[-1] > MAX_PROFILE_ROWS:
            raise ValueError(f"at most {MAX_PROFILE_ROWS} rows per launch, got {rows[-1]}")
        return rows

    @field_validator("resolution")
    @classmethod
    def _resolution(cls, value: int) -> int:
        return side(value)

    @model_validator(mode="after")
    def _same_length(self) -> GPUProfileFile:
        if len(self.rows) != len(self.step_latency_s):
            raise ValueError("rows and step_latency_s must have the same length")
        return self


class FittedAt(BaseModel):
    """What a HIQM was fitted at: the diffusion model, the image size and the guidance scales."""

    model_config = ConfigDict(extra="forbid")

    model: Annotated[str, Field(min_length=1)]
    height: Annotated[int, Field(strict=True)]
    width: Annotated[int, Field(strict=True)]
    public_guidance_scale: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]
    guidance_scale: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]

    @field_validator("height", "width")
    @classmethod
    def _sides(cls, value: int) -> int:
        return side(value)


_WORDS: dict[str, str] = {
    "missing": "missing",
    "int_type": "must be a valid integer",
    "int_parsing": "must be a valid integer",
    "int_from_float": "must be a valid integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "list_type": "must be a list",
    "literal_error": "must be {expected}",
    "string_too_short": "must not be empty",
    "string_too_long": "must be at most {max_length} characters",
    "too_short": "must have at least {min_length} entries",
    "too_long": "must have at most {max_length} entries",
    "less_than_equal": "must be <= {le}",
    "less_than": "must be < {lt}",
}


def _words(error: ErrorDetails) -> str:
    """The project's wording of one pydantic error (its own message for a type not listed)."""
    kind, ctx = error["type"], error.get("ctx", {})
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    ctx = {k: f"{v:g}" if isinstance(v, float) else v for k, v in ctx.items()}
    if kind == "greater_than_equal":
        return "must be non-negative" if ctx["ge"] in (0, "0") else f"must be >= {ctx['ge']}"
    if kind == "greater_than":
        return "must be positive" if ctx["gt"] in (0, "0") else f"must be > {ctx['gt']}"
    if kind == "too_short" and ctx.get("min_length") == 1:
        return "must be a non-empty list"
    if kind in _WORDS:
        return _WORDS[kind].format(**ctx)
    return error["msg"]


def _location(error: ErrorDetails, prefix: str, rows: bool) -> tuple[int | None, str | None]:
    """``(row, field)`` of an error: the first list index is the 1-based row (``rows``) or every
    index stays in the field as ``name[i]``; a :class:`FieldError` adds the field it blames."""
    names: list[str] = [prefix] if prefix else []
    row = None
    for part in error["loc"]:
        if isinstance(part, int) and rows:
            row = part + 1 if row is None else row
        elif isinstance(part, int):
            names[-1] = f"{names[-1] if names else ''}[{part}]"
        else:
            names.append("schema" if part == "schema_" else str(part))
    blamed = error.get("ctx", {}).get("error")
    if isinstance(blamed, FieldError):
        names.append(blamed.field)
    return row, ".".join(names) or None


def validate(
    model: type[M],
    data: Any,
    *,
    source: str | Path,
    prefix: str = "",
    row: int | None = None,
    line: int | None = None,
    rows: bool = True,
) -> M:
    """``model.model_validate(data)``; the first error as one ``InputError`` line.

    ``row`` (a CSV data row) replaces a row read from the location and ``line`` is said after
    the message; ``rows=False`` keeps list indices in the field (``groups[0].public``): for
    recipes whose lists are not rows of a table.
    """
    try:
        return model.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        found_row, field = _location(first, prefix, rows)
        message = _words(first)
        value = first.get("input")
        scalar = not isinstance(value, dict | list | tuple | BaseModel)
        if first["type"] != "value_error" and scalar and "input" in first and not (
            isinstance(value, float) and not math.isfinite(value)
        ):
            message += f", got {value!r}"
        if line:
            message += f" (line {line})"
        raise InputError(message, file=source, row=row or found_row, field=field) from None
