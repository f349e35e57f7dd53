"""Sweep definitions: the prompts, seeds, variants and common steps of a quality profiling run.

A sweep file (YAML or JSON) makes a run reproducible from one file. The unit of work is a *block*,
one (public prompt, seed, variant): its public trajectory runs once and every (personal prompt,
common steps x) branch continues from it.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._errors import InputError

__all__ = [
    "BUILTIN_VARIANTS",
    "Block",
    "PersonalPrompt",
    "PromptGroup",
    "Sweep",
    "Variant",
    "load_sweep",
]


@dataclass(frozen=True)
class Variant:
    """Guidance settings of one sweep variant.

    ``public_guidance_scale`` drives the public (shared) phase, ``guidance_scale`` the personal
    phase; a scale <= 1 turns classifier-free guidance off. With ``negative_prompts`` each personal
    prompt's negative prompt replaces the empty unconditional prompt in the personal phase (NPI).
    """

    name: str
    public_guidance_scale: float
    guidance_scale: float
    negative_prompts: bool = False

    def public_rows_per_image(self) -> int:
        return 2 if self.public_guidance_scale > 1 else 1

    def personal_rows_per_image(self) -> int:
        return 2 if self.guidance_scale > 1 else 1


BUILTIN_VARIANTS: dict[str, Variant] = {
    "plain": Variant("plain", 7.0, 7.0, False),
    "sim_npi": Variant("sim_npi", 2.0, 8.0, True),
}
"""The reference data's variants: ``plain`` (7.0 / 7.0, no negative prompt) and ``sim_npi``
(SIM: public 2.0, personal 8.0; NPI: per-user negative prompt)."""


@dataclass(frozen=True)
class PersonalPrompt:
    """A user's prompt and the negative prompt used by NPI variants."""

    prompt: str
    negative_prompt: str | None = None


@dataclass(frozen=True)
class PromptGroup:
    """Public prompts crossed with personal prompts."""

    public: tuple[str, ...]
    personal: tuple[PersonalPrompt, ...]


@dataclass(frozen=True)
class Block:
    """One (public prompt, seed, variant) and the personal prompts that branch from it."""

    public_prompt: str
    seed: int
    variant: Variant
    personal: tuple[PersonalPrompt, ...]

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.public_prompt, self.seed, self.variant.name)

    @property
    def block_id(self) -> str:
        """Short stable id of the block (for image folders and Ray task names)."""
        text = json.dumps([self.public_prompt, self.seed, self.variant.name], ensure_ascii=False)
        return hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


@dataclass(frozen=True)
class Sweep:
    """A validated sweep definition; build it with :func:`load_sweep` or directly."""

    name: str
    groups: tuple[PromptGroup, ...]
    seeds: tuple[int, ...]
    variants: tuple[Variant, ...]
    common_steps: tuple[int, ...]
    total_steps: int = 28
    height: int = 1024
    width: int = 1024
    model: str | None = None
    clip_model: str | None = None
    similarity_model: str | None = None
    dtype: str | None = None
    max_batch_size: int | None = None
    description: str = ""
    source: str | None = field(default=None, compare=False)

    def blocks(self) -> Iterator[Block]:
        """Blocks in a fixed order: group, public prompt, seed, variant."""
        for group in self.groups:
            for public in group.public:
                for seed in self.seeds:
                    for variant in self.variants:
                        yield Block(public, seed, variant, group.personal)

    @property
    def n_blocks(self) -> int:
        return sum(len(g.public) for g in self.groups) * len(self.seeds) * len(self.variants)

    @property
    def n_images(self) -> int:
        """Rows of the dataset: one per (public, personal, seed, variant, x)."""
        pairs = sum(len(g.public) * len(g.personal) for g in self.groups)
        return pairs * len(self.seeds) * len(self.variants) * len(self.common_steps)

    def prompt_pairs(self) -> list[tuple[str, str]]:
        """Every distinct (public, personal) prompt pair, in block order."""
        seen: dict[tuple[str, str], None] = {}
        for group in self.groups:
            for public in group.public:
                for p in group.personal:
                    seen[(public, p.prompt)] = None
        return list(seen)


_TOP_KEYS = {
    "name",
    "description",
    "model",
    "clip_model",
    "similarity_model",
    "dtype",
    "total_steps",
    "height",
    "width",
    "common_steps",
    "seeds",
    "variants",
    "groups",
    "max_batch_size",
    "default_negative_prompt",
}


def _fail(path: str, message: str, key: str | None = None) -> InputError:
    return InputError(message, file=path, field=key)


def _int(value: Any, path: str, key: str, *, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(path, f"must be an integer, got {value!r}", key)
    if minimum is not None and value < minimum:
        raise _fail(path, f"must be >= {minimum}, got {value}", key)
    return value


def _text(value: Any, path: str, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(path, f"must be a non-empty string, got {value!r}", key)
    if "\n" in value or "\r" in value:
        raise _fail(path, f"must be one line (no line breaks): {value[:40]!r}", key)
    return value


def _common_steps(value: Any, total: int, path: str) -> tuple[int, ...]:
    key = "common_steps"
    if value is None or value == "all":
        return tuple(range(total))
    if isinstance(value, dict):
        unknown = set(value) - {"start", "stop", "step"}
        if unknown:
            raise _fail(path, f"unknown keys {sorted(unknown)}; use start, stop, step", key)
        start = _int(value.get("start", 0), path, key)
        stop = _int(value.get("stop", total), path, key)
        step = _int(value.get("step", 1), path, key, minimum=1)
        steps = list(range(start, stop, step))
    elif isinstance(value, list):
        steps = [_int(v, path, key) for v in value]
    else:
        raise _fail(path, "must be 'all', a list of integers or {start, stop, step}", key)
    if not steps:
        raise _fail(path, "selects no steps", key)
    bad = [x for x in steps if not 0 <= x < total]
    if bad:
        raise _fail(
            path, f"values must lie in [0, {total - 1}] (total_steps {total}), got {bad}", key
        )
    if len(set(steps)) != len(steps):
        raise _fail(path, "values must be distinct", key)
    return tuple(sorted(steps))


def _variant(value: Any, path: str, index: int) -> Variant:
    key = f"variants[{index}]"
    if isinstance(value, str):
        if value not in BUILTIN_VARIANTS:
            raise _fail(
                path,
                f"unknown variant {value!r}; built in: {', '.join(BUILTIN_VARIANTS)}, "
                "or give {name, public_guidance_scale, guidance_scale, negative_prompts}",
                key,
            )
        return BUILTIN_VARIANTS[value]
    if not isinstance(value, dict):
        raise _fail(path, "must be a variant name or a mapping", key)
    unknown = set(value) - {"name", "public_guidance_scale", "guidance_scale", "negative_prompts"}
    if unknown:
        raise _fail(path, f"unknown keys {sorted(unknown)}", key)
    for need in ("name", "public_guidance_scale", "guidance_scale"):
        if need not in value:
            raise _fail(path, f"missing '{need}'", key)
    name = _text(value["name"], path, f"{key}.name")
    scales = []
    for sub in ("public_guidance_scale", "guidance_scale"):
        v = value[sub]
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
            raise _fail(path, f"must be a finite number >= 0, got {v!r}", f"{key}.{sub}")
        scales.append(float(v))
    negative = value.get("negative_prompts", False)
    if not isinstance(negative, bool):
        raise _fail(path, f"must be true or false, got {negative!r}", f"{key}.negative_prompts")
    return Variant(name, scales[0], scales[1], negative)


def _group(value: Any, path: str, index: int, default_negative: str | None) -> PromptGroup:
    key = f"groups[{index}]"
    if not isinstance(value, dict) or "public" not in value or "personal" not in value:
        raise _fail(path, "must be a mapping with 'public' and 'personal'", key)
    unknown = set(value) - {"public", "personal", "name"}
    if unknown:
        raise _fail(path, f"unknown keys {sorted(unknown)}", key)
    public = value["public"]
    public = [public] if isinstance(public, str) else public
    if not isinstance(public, list) or not public:
        raise _fail(path, "must be a prompt or a non-empty list of prompts", f"{key}.public")
    publics = tuple(_text(p, path, f"{key}.public") for p in public)
    if not isinstance(value["personal"], list) or not value["personal"]:
        raise _fail(path, "must be a non-empty list", f"{key}.personal")
    personal = []
    for j, item in enumerate(value["personal"]):
        sub = f"{key}.personal[{j}]"
        if isinstance(item, str):
            personal.append(PersonalPrompt(_text(item, path, sub), default_negative))
        elif isinstance(item, dict) and "prompt" in item:
            extra = set(item) - {"prompt", "negative_prompt"}
            if extra:
                raise _fail(path, f"unknown keys {sorted(extra)}", sub)
            neg = item.get("negative_prompt", default_negative)
            neg = None if neg is None else _text(neg, path, f"{sub}.negative_prompt")
            personal.append(PersonalPrompt(_text(item["prompt"], path, f"{sub}.prompt"), neg))
        else:
            raise _fail(path, "must be a prompt or {prompt, negative_prompt}", sub)
    prompts = [p.prompt for p in personal]
    if len(set(prompts)) != len(prompts):
        raise _fail(path, "personal prompts must be distinct", f"{key}.personal")
    if len(set(publics)) != len(publics):
        raise _fail(path, "public prompts must be distinct", f"{key}.public")
    return PromptGroup(publics, tuple(personal))


def sweep_from_dict(data: Any, *, source: str = "<sweep>") -> Sweep:
    """Validate a parsed sweep definition; raise ``InputError`` naming the bad key."""
    if not isinstance(data, dict):
        raise _fail(source, "a sweep must be a mapping")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise _fail(
            source, f"unknown keys {sorted(unknown)}; known: {', '.join(sorted(_TOP_KEYS))}"
        )
    for need in ("groups", "seeds", "variants"):
        if need not in data:
            raise _fail(source, "missing", need)
    total = _int(data.get("total_steps", 28), source, "total_steps", minimum=2)
    height = _int(data.get("height", 1024), source, "height", minimum=16)
    width = _int(data.get("width", 1024), source, "width", minimum=16)
    for key, side in (("height", height), ("width", width)):
        if side % 16:
            raise _fail(source, f"must be a multiple of 16 (the latent patch), got {side}", key)
    seeds_raw = data["seeds"]
    if not isinstance(seeds_raw, list) or not seeds_raw:
        raise _fail(source, "must be a non-empty list of integers", "seeds")
    seeds = tuple(_int(s, source, "seeds", minimum=0) for s in seeds_raw)
    if len(set(seeds)) != len(seeds):
        raise _fail(source, "seeds must be distinct", "seeds")
    if not isinstance(data["variants"], list) or not data["variants"]:
        raise _fail(source, "must be a non-empty list", "variants")
    variants = tuple(_variant(v, source, i) for i, v in enumerate(data["variants"]))
    if len({v.name for v in variants}) != len(variants):
        raise _fail(source, "variant names must be distinct", "variants")
    default_negative = data.get("default_negative_prompt")
    if default_negative is not None:
        default_negative = _text(default_negative, source, "default_negative_prompt")
    if not isinstance(data["groups"], list) or not data["groups"]:
        raise _fail(source, "must be a non-empty list", "groups")
    groups = tuple(_group(g, source, i, default_negative) for i, g in enumerate(data["groups"]))
    pairs = [(pub, p.prompt) for g in groups for pub in g.public for p in g.personal]
    if len(set(pairs)) != len(pairs):
        raise _fail(source, "a (public, personal) prompt pair appears in two groups", "groups")
    if any(v.negative_prompts for v in variants):
        missing = [p.prompt for g in groups for p in g.personal if p.negative_prompt is None]
        if missing:
            raise _fail(
                source,
                f"variants with negative_prompts need a negative_prompt for every personal prompt "
                f"(or a default_negative_prompt); none for {missing[0]!r}",
                "groups",
            )
    max_batch = data.get("max_batch_size")
    if max_batch is not None:
        max_batch = _int(max_batch, source, "max_batch_size", minimum=1)
    optional_text = {}
    for key in ("model", "clip_model", "similarity_model", "dtype"):
        value = data.get(key)
        optional_text[key] = None if value is None else _text(value, source, key)
    return Sweep(
        name=_text(data.get("name", Path(source).stem), source, "name"),
        description=str(data.get("description", "")),
        groups=groups,
        seeds=seeds,
        variants=variants,
        common_steps=_common_steps(data.get("common_steps", "all"), total, source),
        total_steps=total,
        height=height,
        width=width,
        max_batch_size=max_batch,
        source=source,
        **optional_text,
    )


def load_sweep(path: str | Path) -> Sweep:
    """Read and validate a sweep file (``.yaml``/``.yml`` or ``.json``)."""
    from .._read import read_json, read_mapping

    path = Path(path)
    data = read_json(path) if path.suffix == ".json" else read_mapping(path, what="sweep")
    return sweep_from_dict(data, source=str(path))
