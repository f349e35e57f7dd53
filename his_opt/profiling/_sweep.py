"""Sweep definitions: the prompts, seeds, variants and common steps of a quality profiling run.

A sweep file (YAML or JSON) makes a run reproducible from one file. The unit of work is a *block*,
one (public prompt, seed, variant): its public trajectory runs once and every (personal prompt,
common steps x) branch continues from it. The file is checked by the :class:`SweepFile` schema
(pydantic); errors name the key as a path (``groups[0].personal[1].prompt``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, model_validator

from .._validate import FieldError, Schema, side, validate

__all__ = [
    "BUILTIN_VARIANTS",
    "Block",
    "PersonalPrompt",
    "PromptGroup",
    "Sweep",
    "SweepFile",
    "Variant",
    "load_sweep",
    "sweep_from_dict",
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


def _one_line(value: str) -> str:
    if not value.strip():
        raise ValueError(f"must be a non-empty string, got {value!r}")
    if "\n" in value or "\r" in value:
        raise ValueError(f"must be one line (no line breaks): {value[:40]!r}")
    return value


OneLine = Annotated[str, AfterValidator(_one_line)]
Scale = Annotated[float, Field(ge=0)]
Side = Annotated[int, AfterValidator(side)]
_STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def _listed(value: Any) -> Any:
    """One item given alone stands for a list of one (``public: a dog``)."""
    return [value] if isinstance(value, str) else value


def _variant_entry(value: Any) -> Any:
    """A variant: a built-in name, or a mapping with at least its name and both scales."""
    if isinstance(value, str):
        if value not in BUILTIN_VARIANTS:
            raise ValueError(
                f"unknown variant {value!r}; built in: {', '.join(BUILTIN_VARIANTS)}, "
                "or give {name, public_guidance_scale, guidance_scale, negative_prompts}"
            )
        return asdict(BUILTIN_VARIANTS[value])
    if not isinstance(value, dict):
        raise ValueError("must be a variant name or a mapping")
    for need in ("name", "public_guidance_scale", "guidance_scale"):
        if need not in value:
            raise ValueError(f"missing '{need}'")
    return value


def _personal_entry(value: Any) -> Any:
    """A personal prompt: its text, or ``{prompt, negative_prompt}``."""
    return {"prompt": value} if isinstance(value, str) else value


def _steps_form(value: Any) -> Any:
    """``common_steps``: ``all`` (or left out), a list of steps, or ``{start, stop, step}``."""
    if value is None or value == "all":
        return {}
    if isinstance(value, list):
        return {"listed": value}
    if isinstance(value, dict):
        return value
    raise ValueError("must be 'all', a list of integers or {start, stop, step}")


class VariantSpec(Schema):
    """A variant's guidance settings (see :class:`Variant`)."""

    model_config = _STRICT
    name: OneLine
    public_guidance_scale: Scale
    guidance_scale: Scale
    negative_prompts: bool = False


class PersonalSpec(Schema):
    """A personal prompt; ``negative_prompt`` left out takes the sweep's default."""

    model_config = _STRICT
    prompt: OneLine
    negative_prompt: OneLine | None = None


class GroupSpec(Schema):
    """Public prompts crossed with personal prompts, each list without repeats."""

    model_config = _STRICT
    name: str | None = None
    public: Annotated[list[OneLine], BeforeValidator(_listed), Field(min_length=1)]
    personal: Annotated[
        list[Annotated[PersonalSpec, BeforeValidator(_personal_entry)]], Field(min_length=1)
    ]

    @model_validator(mode="after")
    def _distinct(self) -> GroupSpec:
        prompts = [p.prompt for p in self.personal]
        if len(set(prompts)) != len(prompts):
            raise FieldError("personal", "personal prompts must be distinct")
        if len(set(self.public)) != len(self.public):
            raise FieldError("public", "public prompts must be distinct")
        return self


class CommonSteps(Schema):
    """The common steps x swept: ``listed`` ones, else ``range(start, stop or total, step)``."""

    model_config = _STRICT
    listed: list[int] | None = None
    start: int = 0
    stop: int | None = None
    step: Annotated[int, Field(ge=1)] = 1

    @classmethod
    def unknown_keys(cls, unknown: list[str], known: list[str]) -> ValueError:
        return ValueError(f"unknown keys {unknown}; use start, stop, step")

    def steps(self, total: int) -> list[int]:
        if self.listed is not None:
            return self.listed
        return list(range(self.start, total if self.stop is None else self.stop, self.step))


class SweepFile(Schema):
    """A sweep file: every key, its type and range, and the rules that tie keys together."""

    model_config = _STRICT
    name: OneLine | None = None
    description: str = ""
    model: OneLine | None = None
    clip_model: OneLine | None = None
    similarity_model: OneLine | None = None
    dtype: OneLine | None = None
    total_steps: Annotated[int, Field(ge=2)] = 28
    height: Side = 1024
    width: Side = 1024
    common_steps: Annotated[CommonSteps, BeforeValidator(_steps_form)] = CommonSteps()
    seeds: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]
    variants: Annotated[
        list[Annotated[VariantSpec, BeforeValidator(_variant_entry)]], Field(min_length=1)
    ]
    groups: Annotated[list[GroupSpec], Field(min_length=1)]
    max_batch_size: Annotated[int, Field(ge=1)] | None = None
    default_negative_prompt: OneLine | None = None

    @classmethod
    def unknown_keys(cls, unknown: list[str], known: list[str]) -> ValueError:
        return ValueError(f"unknown keys {unknown}; known: {', '.join(sorted(known))}")

    @model_validator(mode="after")
    def _rules(self) -> SweepFile:
        if len(set(self.seeds)) != len(self.seeds):
            raise FieldError("seeds", "seeds must be distinct")
        if len({v.name for v in self.variants}) != len(self.variants):
            raise FieldError("variants", "variant names must be distinct")
        pairs = [(pub, p.prompt) for g in self.groups for pub in g.public for p in g.personal]
        if len(set(pairs)) != len(pairs):
            raise FieldError("groups", "a (public, personal) prompt pair appears in two groups")
        if any(v.negative_prompts for v in self.variants):
            missing = [p for p, neg in self.personal_prompts() if neg is None]
            if missing:
                raise FieldError(
                    "groups",
                    "variants with negative_prompts need a negative_prompt for every personal "
                    f"prompt (or a default_negative_prompt); none for {missing[0]!r}",
                )
        self._check_steps()
        return self

    def _check_steps(self) -> None:
        steps, total = self.common_steps.steps(self.total_steps), self.total_steps
        if not steps:
            raise FieldError("common_steps", "selects no steps")
        bad = [x for x in steps if not 0 <= x < total]
        if bad:
            raise FieldError(
                "common_steps",
                f"values must lie in [0, {total - 1}] (total_steps {total}), got {bad}",
            )
        if len(set(steps)) != len(steps):
            raise FieldError("common_steps", "values must be distinct")

    def personal_prompts(self) -> list[tuple[str, str | None]]:
        """Every personal prompt with its negative prompt (the default where left out)."""
        return [(p.prompt, self._negative(p)) for g in self.groups for p in g.personal]

    def _negative(self, p: PersonalSpec) -> str | None:
        explicit = "negative_prompt" in p.model_fields_set
        return p.negative_prompt if explicit else self.default_negative_prompt

    def to_sweep(self, source: str) -> Sweep:
        """The :class:`Sweep` this file defines (named after the file when it has no name)."""
        groups = tuple(
            PromptGroup(
                tuple(g.public),
                tuple(PersonalPrompt(p.prompt, self._negative(p)) for p in g.personal),
            )
            for g in self.groups
        )
        return Sweep(
            name=self.name or Path(source).stem,
            description=self.description,
            groups=groups,
            seeds=tuple(self.seeds),
            variants=tuple(Variant(**v.model_dump()) for v in self.variants),
            common_steps=tuple(sorted(self.common_steps.steps(self.total_steps))),
            total_steps=self.total_steps,
            height=self.height,
            width=self.width,
            model=self.model,
            clip_model=self.clip_model,
            similarity_model=self.similarity_model,
            dtype=self.dtype,
            max_batch_size=self.max_batch_size,
            source=source,
        )


def sweep_from_dict(data: Any, *, source: str = "<sweep>") -> Sweep:
    """Validate a parsed sweep definition; raise ``InputError`` naming the bad key."""
    return validate(SweepFile, data, source=source, rows=False).to_sweep(source)


def load_sweep(path: str | Path) -> Sweep:
    """Read and validate a sweep file (``.yaml``/``.yml`` or ``.json``)."""
    from .._read import read_json, read_mapping

    path = Path(path)
    data = read_json(path) if path.suffix == ".json" else read_mapping(path, what="sweep")
    return sweep_from_dict(data, source=str(path))
