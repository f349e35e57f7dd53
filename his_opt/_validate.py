"""File formats checked by a schema library (pydantic v2), errors mapped to file, row and field.

``validate(Model, data, source=...)`` returns the validated model or raises :class:`InputError`
whose ``field`` is the dotted location of the first error and ``row`` the 1-based index when the
location passes through a list (a profile row, a sweep entry).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ._errors import InputError

__all__ = ["MAX_PROFILE_ROWS", "FittedAt", "GPUProfileFile", "validate"]

MAX_PROFILE_ROWS = 4096
"""Most transformer rows in one measured launch, and most entries in a profile (sanity bound)."""

M = TypeVar("M", bound=BaseModel)
PositiveInt = Annotated[int, Field(strict=True, ge=1)]
PositiveSeconds = Annotated[float, Field(gt=0, le=3600, allow_inf_nan=False)]


def _side(value: int) -> int:
    if value < 16 or value % 16:
        raise ValueError(f"must be a positive multiple of 16 (the latent patch), got {value}")
    return value


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
        return _side(value)

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
        return _side(value)


def validate(model: type[M], data: Any, *, source: str | Path, prefix: str = "") -> M:
    """``model.model_validate(data)``; the first error as one ``InputError`` line."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        names: list[str] = [prefix] if prefix else []
        row = None
        for part in first["loc"]:
            if isinstance(part, int):
                row = part + 1 if row is None else row
            else:
                names.append("schema" if part == "schema_" else str(part))
        message = first["msg"]
        if first["type"] == "value_error":
            message = str(first.get("ctx", {}).get("error", message))
        elif "input" in first and not isinstance(first["input"], dict | list):
            value = first["input"]
            if not (isinstance(value, float) and not math.isfinite(value)):
                message += f", got {value!r}"
        raise InputError(message, file=source, row=row, field=".".join(names) or None) from None
