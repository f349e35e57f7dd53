"""The simulation config (YAML): its JSON Schema, its defaults, and the checks a schema cannot say.

Paths in the config are relative to the config file. Every problem is an ``InputError`` naming
the file and the field (dotted, e.g. ``arrivals.rate_per_s``), so the CLI prints one line.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from .._errors import InputError

__all__ = [
    "BUILTIN_POLICIES",
    "CONFIG_SCHEMA",
    "ArrivalSettings",
    "IppoSettings",
    "SimConfig",
    "SolverSettings",
    "load_sim_config",
]

BUILTIN_POLICIES = ("his", "ippo", "iis", "gfis", "ppgfis", "greedy")
"""Policy names known without a plug-in; a plug-in is named ``package.module:ClassName``."""

_NUM = {"type": "number"}
_POS = {"type": "number", "exclusiveMinimum": 0}
_NONNEG = {"type": "number", "minimum": 0}
_POS_INT = {"type": "integer", "minimum": 1}

CONFIG_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "his-opt simulate config",
    "type": "object",
    "additionalProperties": False,
    "required": ["users"],
    "properties": {
        "users": {"type": "string", "minLength": 1},
        "scenario": {"type": ["string", "null"]},
        "servers": {"type": ["string", "null"]},
        "hiqm": {"type": ["string", "null"]},
        "seed": {"type": "integer", "minimum": 0},
        "episodes": _POS_INT,
        "rounds_per_episode": _POS_INT,
        "round_length_s": {"anyOf": [_POS, {"type": "null"}]},
        "gpu_share": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "queue": {"type": "boolean"},
        "redraw_device_clock": {"type": ["boolean", "null"]},
        "policies": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
        "arrivals": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "mode": {"enum": ["fixed", "poisson"]},
                "users_per_round": _POS_INT,
                "rate_per_s": {"anyOf": [_POS, {"type": "null"}]},
                "replace": {"type": "boolean"},
            },
        },
        "solver": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"time_limit_s": _POS, "mip_gap": {"type": "number", "minimum": 0,
                                                             "exclusiveMaximum": 1}},
        },
        "ippo": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "episodes": _POS_INT,
                "slots_per_episode": _POS_INT,
                "minibatch": _POS_INT,
                "epochs": _POS_INT,
                "lr": _POS,
                "hidden": {"type": "array", "minItems": 1, "items": _POS_INT},
                "clip_epsilon": _POS,
                "gamma": {"type": "number", "minimum": 0, "maximum": 1},
                "gae_lambda": {"type": "number", "minimum": 0, "maximum": 1},
                "entropy_coef": _NONNEG,
                "critic_coef": _NONNEG,
                "max_grad_norm": _POS,
                "budget_penalty": _NONNEG,
                "device": {"type": "string"},
                "threads": _POS_INT,
                "load": {"type": ["string", "null"]},
                "eval_mode": {"enum": ["mode", "sample"]},
            },
        },
        "notes": {},
    },
}


@dataclass(frozen=True)
class ArrivalSettings:
    """``fixed``: ``users_per_round`` users each round (the paper); ``poisson``: a Poisson stream
    at ``rate_per_s`` users per second over rounds of ``round_length_s``. Users are drawn from the
    pool with replacement unless ``replace`` is false."""

    mode: str = "fixed"
    users_per_round: int = 50
    rate_per_s: float | None = None
    replace: bool = True


@dataclass(frozen=True)
class SolverSettings:
    """Limits of each exact solve (``his`` and the MILP baselines) per round."""

    time_limit_s: float = 60.0
    mip_gap: float = 1e-4


@dataclass(frozen=True)
class IppoSettings:
    """The paper's HID (independent PPO). Paper values: ``lr`` 5e-4, minibatch 128, three hidden
    layers of 128, Adam, 500 episodes. His-opt's choices where the paper is silent: 128 slots an
    episode (one PPO batch), 2 epochs, clip 0.2, ``gamma`` 0 (slots are independent, see README),
    GAE lambda 0.95, entropy 0.01, critic 0.5, gradient norm 0.5. ``threads``: torch CPU threads
    (1 by default: on a shared 2-core machine two threads ran 5-10x slower than one)."""

    episodes: int = 500
    slots_per_episode: int = 128
    minibatch: int = 128
    epochs: int = 2
    lr: float = 5e-4
    hidden: tuple[int, ...] = (128, 128, 128)
    clip_epsilon: float = 0.2
    gamma: float = 0.0
    gae_lambda: float = 0.95
    entropy_coef: float = 0.01
    critic_coef: float = 0.5
    max_grad_norm: float = 0.5
    budget_penalty: float = 100.0
    device: str = "cpu"
    threads: int = 1
    load: Path | None = None
    eval_mode: str = "mode"


@dataclass(frozen=True)
class SimConfig:
    """A validated simulation config; paths are absolute."""

    source: Path
    users: Path
    scenario: Path | None = None
    servers: Path | None = None
    hiqm: Path | None = None
    seed: int = 0
    episodes: int = 2
    rounds_per_episode: int = 10
    round_length_s: float | None = None
    gpu_share: float = 1.0
    queue: bool = False
    redraw_device_clock: bool | None = None
    policies: tuple[str, ...] = ("his", "ippo", "iis", "gfis", "ppgfis", "greedy")
    arrivals: ArrivalSettings = field(default_factory=ArrivalSettings)
    solver: SolverSettings = field(default_factory=SolverSettings)
    ippo: IppoSettings = field(default_factory=IppoSettings)

    def with_value(self, key: str, value: Any) -> SimConfig:
        """A copy with one (dotted) setting changed, e.g. ``arrivals.rate_per_s``; re-checked."""
        head, _, rest = key.partition(".")
        if rest:
            sub = getattr(self, head)
            return _check(replace(self, **{head: replace(sub, **{rest: value})}))
        return _check(replace(self, **{head: value}))

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for the run's ``config.json``)."""

        def plain(obj: Any) -> Any:
            if hasattr(obj, "__dataclass_fields__"):
                return {f.name: plain(getattr(obj, f.name)) for f in fields(obj)}
            if isinstance(obj, Path):
                return str(obj)
            if isinstance(obj, tuple):
                return list(obj)
            return obj

        return plain(self)


def _field_of(err: Any) -> str | None:
    path = [str(p) for p in err.absolute_path]
    if err.validator == "additionalProperties":
        extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
        path.append(extra[0] if extra else "?")
    elif err.validator == "required":
        path.append(str(err.message).split("'")[1])
    return ".".join(path) or None


def _message(err: Any) -> str:
    if err.validator == "additionalProperties":
        known = ", ".join(sorted(err.schema.get("properties", {})))
        return f"unknown setting (known: {known})"
    if err.validator == "required":
        return "required setting is missing"
    if err.validator in ("exclusiveMinimum", "minimum"):
        op = ">" if err.validator == "exclusiveMinimum" else ">="
        return f"must be {op} {err.validator_value}, got {err.instance!r}"
    if err.validator == "anyOf":
        return f"must be a positive number or null, got {err.instance!r}"
    return str(err.message)


def load_sim_config(path: str | Path) -> SimConfig:
    """Read, validate and resolve a simulation config file; ``InputError`` on any problem."""
    import jsonschema

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise InputError("file not found", file=path) from err
    except UnicodeDecodeError as err:
        raise InputError("not UTF-8 text", file=path) from err
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(f"malformed config: {msg}", file=path) from err
    if not isinstance(data, dict):
        raise InputError("config must be a mapping of settings", file=path)
    data = _numeric_strings(copy.deepcopy(data))
    errors = sorted(jsonschema.Draft202012Validator(CONFIG_SCHEMA).iter_errors(data),
                    key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        raise InputError(_message(errors[0]), file=path, field=_field_of(errors[0]))
    base = path.resolve().parent

    def rel(value: str | None) -> Path | None:
        return None if value is None else (base / value)

    ip = dict(data.get("ippo", {}))
    if "hidden" in ip:
        ip["hidden"] = tuple(ip["hidden"])
    if ip.get("load") is not None:
        ip["load"] = rel(ip["load"])
    cfg = SimConfig(
        source=path,
        users=rel(data["users"]),
        scenario=rel(data.get("scenario")),
        servers=rel(data.get("servers")),
        hiqm=rel(data.get("hiqm")),
        **{k: data[k] for k in ("seed", "episodes", "rounds_per_episode", "round_length_s",
                                "gpu_share", "queue", "redraw_device_clock") if k in data},
        policies=tuple(data.get("policies", SimConfig.policies)),
        arrivals=ArrivalSettings(**data.get("arrivals", {})),
        solver=SolverSettings(**data.get("solver", {})),
        ippo=IppoSettings(**ip),
    )
    return _check(cfg)


def _numeric_strings(data: Any) -> Any:
    """PyYAML (YAML 1.1) reads ``5e-4`` as a string: accept numeric text where a number is."""
    if isinstance(data, dict):
        return {k: _numeric_strings(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_numeric_strings(v) for v in data]
    if isinstance(data, str):
        try:
            return float(data) if any(c in data for c in "eE.") and data.strip() else data
        except ValueError:
            return data
    return data


def _check(cfg: SimConfig) -> SimConfig:
    """What the schema cannot say: cross-field rules and policy names."""
    src = cfg.source

    def fail(fld: str, what: str) -> None:
        raise InputError(what, file=src, field=fld)

    if cfg.arrivals.mode == "poisson":
        if cfg.arrivals.rate_per_s is None:
            fail("arrivals.rate_per_s", "Poisson arrivals need a rate (users per second)")
        if cfg.round_length_s is None:
            fail("round_length_s", "Poisson arrivals need a round length in seconds")
    if cfg.arrivals.rate_per_s is not None and not cfg.arrivals.rate_per_s > 0:
        fail("arrivals.rate_per_s", f"must be > 0, got {cfg.arrivals.rate_per_s!r}")
    if cfg.round_length_s is not None and not cfg.round_length_s > 0:
        fail("round_length_s", f"must be > 0, got {cfg.round_length_s!r}")
    if cfg.queue and cfg.round_length_s is None:
        fail("queue", "queue mode needs round_length_s (users wait for the next round)")
    seen: set[str] = set()
    for name in cfg.policies:
        if name in seen:
            fail("policies", f"policy {name!r} is listed twice")
        seen.add(name)
        if name not in BUILTIN_POLICIES and ":" not in name:
            fail("policies", f"unknown policy {name!r} (known: {', '.join(BUILTIN_POLICIES)}, "
                             "or a plug-in 'package.module:ClassName')")
    if "ippo" in cfg.policies and cfg.arrivals.mode != "fixed":
        fail("policies", "the ippo policy has one agent per user slot: it needs fixed arrivals "
                         "(arrivals.mode: fixed)")
    if cfg.ippo.device not in ("cpu", "cuda") and not cfg.ippo.device.startswith("cuda:"):
        fail("ippo.device", f"must be 'cpu' or 'cuda[:N]', got {cfg.ippo.device!r}")
    return cfg
