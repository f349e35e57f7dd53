"""The scenario format's schema (pydantic), built from the :class:`~his_opt.scenario.Scenario`
dataclass so that the dataclass stays the one list of fields and defaults.

Every integer field is a non-negative count and every float a finite non-negative number unless
``_TYPES`` says otherwise (a cosine lies in [-1, 1], image sides are multiples of 16); the rules
that tie fields together (step ranges ordered, steps within ``total_steps``) name the field they
blame. This module loads pydantic, so ``his_opt.scenario`` imports it only to check a scenario.
"""

from __future__ import annotations

import contextlib
import functools
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from ._validate import FieldError, Schema, dataclass_schema, side, validate
from .scenario import MAX_STEP_S, VARIANTS, Scenario

__all__ = ["checked"]

Count = Annotated[int, Field(ge=0)]
Amount = Annotated[float, Field(ge=0)]
Side = Annotated[int, AfterValidator(side)]

_TYPES: dict[str, Any] = {
    "total_steps": Annotated[int, Field(ge=1)],
    "variant": Literal[(*VARIANTS, "custom")],
    "handoff": Literal["latent", "embeddings"],
    "device_model": Literal["measured", "cycles"],
    "height": Side,
    "width": Side,
    "device_step_s": Annotated[float, Field(ge=0, le=MAX_STEP_S)],
    "server_max_batch_images": Annotated[int, Field(ge=1)] | None,
    "max_groups": Annotated[int, Field(ge=1)] | None,
    "min_share_similarity": Annotated[float, Field(ge=-1, le=1)] | None,
    "notes": dict[str, str],
}
_STEP_RANGES = (
    ("common_steps_min", "common_steps_max"),
    ("edge_steps_min", "edge_steps_max"),
    ("device_steps_min", "device_steps_max"),
    ("device_freq_min_hz", "device_freq_max_hz"),
)


def _field_type(name: str, hint: Any) -> Any:
    """The schema type of a scenario field: its entry in ``_TYPES``, else a count or an amount."""
    return _TYPES.get(name, {int: Count, float: Amount}.get(hint, hint))


class _ScenarioRules(Schema):
    """Strict types (an integer field takes no 2.5, no "28", no true) and the cross-field rules."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    unknown_key = "scenario field"

    @model_validator(mode="before")
    @classmethod
    def _numbers_from_text(cls, data: Any) -> Any:
        """PyYAML (YAML 1.1) reads ``1e-27`` as text: a float field takes numeric text."""
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for key, value in data.items():
            if isinstance(value, str) and key in _float_fields():
                with contextlib.suppress(ValueError):
                    out[key] = float(value)
        return out

    @model_validator(mode="after")
    def _rules(self) -> _ScenarioRules:
        values = self.__dict__
        for lo, hi in _STEP_RANGES:
            if values[lo] > values[hi]:
                raise FieldError(lo, f"{values[lo]:g} exceeds {hi} = {values[hi]:g}")
        total = values["total_steps"]
        if values["common_steps_max"] > total - 1:
            raise FieldError("common_steps_max", f"must be at most total_steps - 1 = {total - 1}")
        return self


@functools.cache
def _float_fields() -> frozenset[str]:
    hints = typing.get_type_hints(Scenario)
    return frozenset(name for name, hint in hints.items() if hint in (float, float | None))


@functools.cache
def _schema() -> type[BaseModel]:
    return dataclass_schema(Scenario, base=_ScenarioRules, types=_field_type)


def checked(data: dict[str, Any], *, source: str | Path | None) -> dict[str, Any]:
    """The scenario fields in ``data`` validated, with defaults for those left out; raises
    ``InputError`` naming ``source`` and the field."""
    return validate(_schema(), data, source=source or "<scenario>").model_dump()
