"""``users.csv``: one row per user, parsed into the canonical table the optimizer reads.

Required columns: ``user_id``, ``prompt``. Optional columns (an empty cell takes the default):

=========================  =====================================================================
column                     meaning and default
=========================  =====================================================================
negative_prompt            the user's negative prompt (NPI); default none
device_step_s              seconds per denoising step on the user's device (measured model)
device_power_w             device power while stepping, W (with ``device_step_s``)
device_cycles_per_step     cycles per step (the paper's cycle model) ...
device_freq_hz             ... at this clock (drawn uniformly from the scenario's range if empty)
device_kappa               ... and this switched-capacitance constant
bandwidth_hz               downlink bandwidth, Hz (scenario ``bandwidth_hz``)
tx_power_w                 edge-server transmit power, W (scenario ``tx_power_w``)
channel_gain               channel power gain (scenario ``channel_gain``)
deadline_s                 upper bound on the user's delay, s; default none
min_quality                lower bound on the predicted quality; default none
subject                    a subject label, used only by the subject-grouping baseline (PPGFIS)
=========================  =====================================================================

A row gives its device either as ``device_step_s`` (+ ``device_power_w``) or as cycle-model
figures, not both. A row with neither takes the scenario's device: ``device_model: measured``
uses ``device_step_s``/``device_power_w``; ``device_model: cycles`` uses the paper's UE model,
``device_cycles_per_step`` at a clock drawn uniformly in
``[device_freq_min_hz, device_freq_max_hz]`` by the seeded generator. Columns whose name starts
with ``_`` are ignored (notes); any other unknown column is an error, so a misspelt column never
silently falls back to a default.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._columns import USER_TABLE_COLUMNS as USER_COLUMNS
from .._errors import InputError
from .._read import SAFE_NAME, check_text, is_safe_name
from ..costs import DeviceModel
from ..scenario import MAX_STEP_S, Scenario
from ._table import Record, check_header, parse_float, read_csv_records

__all__ = ["SAFE_ID", "USER_COLUMNS", "USER_INPUT_COLUMNS", "load_users"]


SAFE_ID = SAFE_NAME
"""A user id usable as a file name (``generate`` writes ``DIR/USER_ID.png``)."""

_MEASURED = ("device_step_s", "device_power_w")
_CYCLES = ("device_cycles_per_step", "device_freq_hz", "device_kappa")
_CHANNEL = ("bandwidth_hz", "tx_power_w", "channel_gain")
USER_INPUT_COLUMNS: tuple[str, ...] = (
    "user_id",
    "prompt",
    "negative_prompt",
    *_MEASURED,
    *_CYCLES,
    *_CHANNEL,
    "deadline_s",
    "min_quality",
    "subject",
)
"""Columns ``users.csv`` may have (plus ignored ``_``-prefixed note columns)."""

_TEXT = ("user_id", "prompt", "negative_prompt", "subject")
# Fields that must be strictly positive (a zero would divide by zero downstream).
_POSITIVE = {
    "device_step_s",
    "device_cycles_per_step",
    "device_freq_hz",
    "bandwidth_hz",
    "tx_power_w",
    "channel_gain",
    "deadline_s",
}


def load_users(
    path: str | Path,
    scenario: Scenario | None = None,
    *,
    random_state: int | np.random.Generator | None = None,
) -> pd.DataFrame:
    """Read and validate ``users.csv``; return the canonical table (columns ``USER_COLUMNS``).

    ``random_state`` seeds the device clocks drawn under the cycle model (one draw per row, in
    file order, whether or not the row uses it, so a row's clock does not depend on the others).
    Raises ``InputError`` naming the file, row and field of the first problem.
    """
    scenario = scenario or Scenario()
    label = str(path)
    header, records = read_csv_records(path, name=label)
    check_header(
        header, file=label, required=("user_id", "prompt"), known=USER_INPUT_COLUMNS, notes=True
    )
    rng = (
        random_state
        if isinstance(random_state, np.random.Generator)
        else np.random.default_rng(random_state)
    )
    clocks = rng.uniform(scenario.device_freq_min_hz, scenario.device_freq_max_hz, len(records))
    first_row: dict[str, int] = {}
    rows: list[dict[str, Any]] = []
    for rec, clock in zip(records, clocks, strict=True):
        rows.append(_parse_user(rec, label, scenario, float(clock), first_row))
    # Text columns stay ``object`` so a missing negative prompt or subject is ``None``, not NaN.
    return pd.DataFrame(
        {
            col: pd.Series([r[col] for r in rows], dtype=object if col in _TEXT else float)
            for col in USER_COLUMNS
        }
    )


def _parse_user(
    rec: Record, label: str, sc: Scenario, clock: float, first_row: dict[str, int]
) -> dict[str, Any]:
    cells = rec.cells

    def num(col: str) -> float | None:
        value = cells.get(col, "")
        if value == "":
            return None
        return parse_float(value, file=label, rec=rec, field=col, positive=col in _POSITIVE)

    for col in _TEXT:
        check_text(cells.get(col, ""), file=label, row=rec.row, field=col)
    user_id = cells["user_id"]
    if not user_id:
        raise InputError(
            f"empty user id (line {rec.line})", file=label, row=rec.row, field="user_id"
        )
    if not is_safe_name(user_id):
        raise InputError(
            f"user id {user_id!r} is not safe as a file name: use letters, digits, '_', '-' "
            f"and '.', at most 100 characters, no '..' (line {rec.line})",
            file=label,
            row=rec.row,
            field="user_id",
        )
    if user_id in first_row:
        raise InputError(
            f"duplicate user id {user_id!r}, first used in row {first_row[user_id]} "
            f"(line {rec.line})",
            file=label,
            row=rec.row,
            field="user_id",
        )
    first_row[user_id] = rec.row
    prompt = cells["prompt"]
    if not prompt:
        raise InputError(f"empty prompt (line {rec.line})", file=label, row=rec.row, field="prompt")

    measured = {c: num(c) for c in _MEASURED}
    cycles = {c: num(c) for c in _CYCLES}
    if measured["device_step_s"] is not None and any(v is not None for v in cycles.values()):
        clash = next(c for c, v in cycles.items() if v is not None)
        raise InputError(
            f"give the device as device_step_s or as cycle-model figures, not both "
            f"(line {rec.line})",
            file=label,
            row=rec.row,
            field=clash,
        )
    if (
        measured["device_power_w"] is not None
        and measured["device_step_s"] is None
        and any(v is not None for v in cycles.values())
    ):
        raise InputError(
            f"device_power_w goes with device_step_s, not with the cycle model (line {rec.line})",
            file=label,
            row=rec.row,
            field="device_power_w",
        )
    if measured["device_step_s"] is not None and measured["device_step_s"] > MAX_STEP_S:
        raise InputError(
            f"must be at most {MAX_STEP_S:g} s per step, got {cells['device_step_s']!r} "
            f"(line {rec.line})",
            file=label,
            row=rec.row,
            field="device_step_s",
        )
    use_cycles = any(v is not None for v in cycles.values()) or (
        measured["device_step_s"] is None
        and measured["device_power_w"] is None
        and sc.device_model == "cycles"
    )
    try:
        if use_cycles:
            device = DeviceModel.from_cycles(
                _or(cycles["device_cycles_per_step"], sc.device_cycles_per_step),
                _or(cycles["device_freq_hz"], clock),
                _or(cycles["device_kappa"], sc.device_kappa),
            )
        else:
            device = DeviceModel.from_power(
                _or(measured["device_step_s"], sc.device_step_s),
                _or(measured["device_power_w"], sc.device_power_w),
            )
    except ValueError as err:
        field = "device_cycles_per_step" if use_cycles else "device_power_w"
        raise InputError(
            f"the device figures give {str(err).rstrip('.')} (line {rec.line})",
            file=label,
            row=rec.row,
            field=field,
        ) from None
    deadline, min_quality = num("deadline_s"), num("min_quality")
    if min_quality is not None and min_quality > 1:
        raise InputError(
            f"is a CLIP cosine, at most 1, got {cells['min_quality']!r} (line {rec.line})",
            file=label,
            row=rec.row,
            field="min_quality",
        )
    return {
        "user_id": user_id,
        "prompt": prompt,
        "negative_prompt": cells.get("negative_prompt") or None,
        "device_step_s": device.step_time_s,
        "device_step_energy_j": device.step_energy_j,
        "bandwidth_hz": _or(num("bandwidth_hz"), sc.bandwidth_hz),
        "tx_power_w": _or(num("tx_power_w"), sc.tx_power_w),
        "channel_gain": _or(num("channel_gain"), sc.channel_gain),
        "deadline_s": math.nan if deadline is None else deadline,
        "min_quality": math.nan if min_quality is None else min_quality,
        "subject": cells.get("subject") or None,
    }


def _or(value: float | None, default: float) -> float:
    return float(default) if value is None else value
