"""The hybrid-inference quality model: quality as a function of prompt similarity and shared steps.

``HIQM.predict(s, x)`` is the quality (mean CLIP alignment of the personal prompt and the final
image) of a user whose personal prompt has cosine similarity ``s`` to its group's public prompt
when the group shares ``x`` of the ``T`` denoising steps. It is continuous in ``s`` and
non-increasing in ``x`` for every ``s``, which the solver relies on. It is stored as JSON
(schema ``his-opt/hiqm/1``) with its fit metrics and provenance.

Two continuous forms exist, both built on the authors' shifted logistic in ``x``
``Q(x) = L / (1 + exp(K (x - B))) + D`` with ``L, K >= 0``:

- ``interp``: piecewise-linear (convex) interpolation in ``s`` between neighbouring similarity
  bins' fitted curves. A convex combination of non-increasing curves is non-increasing.
- ``poly``: ``log L``, ``log K``, ``B`` and ``D`` polynomials in ``s``, fitted jointly. ``L`` and
  ``K`` are positive for every ``s``, so the curve is non-increasing everywhere.

Outside the fitted similarity range ``[s_min, s_max]`` the model clamps ``s`` (conservative above
the range, where quality grows with similarity). The ``interp`` form may instead carry an
``identical_anchor`` above the range: at ``s = 1`` the personal prompt equals the public prompt,
and when both phases also use the same guidance and no negative prompt (the ``plain`` variant)
sharing changes nothing, so ``Q(1, x) = Q(s_max, 0)`` for every ``x``; between ``s_max`` and 1 the
model interpolates towards that flat curve.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_write_json
from .._errors import InputError

__all__ = [
    "HIQM",
    "HIQM_SCHEMA",
    "default_hiqm_path",
    "load_default_hiqm",
    "shifted_logistic",
]

HIQM_SCHEMA = "his-opt/hiqm/1"
FORMS = ("interp", "poly")
EXTRAPOLATION_BELOW = ("clamp",)
EXTRAPOLATION_ABOVE = ("clamp", "identical_anchor")
_REQUIRED = (
    "schema",
    "variant",
    "total_steps",
    "quality_metric",
    "form",
    "params",
    "similarity_range",
    "extrapolation",
    "metrics",
    "provenance",
)
_PARAM_NAMES = ("L", "K", "B", "D")
_POLY_KEYS = ("log_L", "log_K", "B", "D")
_SIM_TOL = 1e-6
_MONO_TOL = 1e-12


def shifted_logistic(x: Any, L: Any, K: Any, B: Any, D: Any) -> np.ndarray:
    """The authors' modified sigmoid ``L / (1 + exp(K (x - B))) + D``, overflow-free (tanh form)."""
    z = np.multiply(K, np.subtract(x, B))
    return np.multiply(L, 0.5 * (1.0 - np.tanh(0.5 * z))) + D


@dataclass(frozen=True)
class HIQM:
    """A fitted quality model ``Q(similarity, common_steps)``; see the module docstring.

    ``params`` holds the form's parameters as JSON data: for ``interp`` a list of ``knots``
    (``similarity, L, K, B, D`` per fitted bin, increasing similarity) and an optional ``anchor``
    (``{"similarity": 1.0, "quality": q}``); for ``poly`` the ``degree`` and the coefficient lists
    ``log_L, log_K, B, D`` in increasing powers of ``s``.
    """

    variant: str
    total_steps: int
    form: str
    params: dict[str, Any]
    similarity_range: tuple[float, float]
    extrapolation: dict[str, str] = field(
        default_factory=lambda: {"below": "clamp", "above": "clamp"}
    )
    quality_metric: str = "clip_alignment"
    metrics: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    fitted_at: dict[str, Any] | None = None
    _arrays: dict[str, np.ndarray] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "similarity_range", tuple(float(v) for v in self.similarity_range))
        object.__setattr__(self, "_arrays", self._build_arrays())

    def _build_arrays(self) -> dict[str, np.ndarray]:
        """Validate the parameters and precompute the arrays ``predict`` needs; ValueError if bad."""
        if not isinstance(self.total_steps, int) or isinstance(self.total_steps, bool):
            raise ValueError("total_steps must be an integer")
        if self.total_steps < 2:
            raise ValueError(f"total_steps must be >= 2, got {self.total_steps}")
        lo, hi = self.similarity_range
        if not (math.isfinite(lo) and math.isfinite(hi) and -1.0 <= lo <= hi <= 1.0):
            raise ValueError(f"similarity_range must satisfy -1 <= lo <= hi <= 1, got {lo, hi}")
        below = self.extrapolation.get("below")
        above = self.extrapolation.get("above")
        if below not in EXTRAPOLATION_BELOW:
            raise ValueError(f"extrapolation.below must be one of {EXTRAPOLATION_BELOW}")
        if above not in EXTRAPOLATION_ABOVE:
            raise ValueError(f"extrapolation.above must be one of {EXTRAPOLATION_ABOVE}")
        if self.form == "interp":
            return self._build_interp(lo, hi, above)
        if self.form == "poly":
            if above != "clamp":
                raise ValueError("extrapolation.above: the poly form supports only 'clamp'")
            return self._build_poly()
        raise ValueError(f"form must be one of {FORMS}, got {self.form!r}")

    def _build_interp(self, lo: float, hi: float, above: str) -> dict[str, np.ndarray]:
        knots = self.params.get("knots")
        if not isinstance(knots, list) or not knots:
            raise ValueError("params.knots must be a non-empty list")
        rows = []
        for i, knot in enumerate(knots):
            if not isinstance(knot, dict):
                raise ValueError(f"params.knots[{i}] must be an object")
            row = []
            for key in ("similarity", *_PARAM_NAMES):
                value = knot.get(key)
                if not _is_number(value):
                    raise ValueError(f"params.knots[{i}].{key} must be a finite number")
                row.append(float(value))
            if row[1] < 0 or row[2] < 0:
                raise ValueError(
                    f"params.knots[{i}]: L and K must be >= 0 (else quality rises with shared steps)"
                )
            rows.append(row)
        table = np.array(rows, dtype=float)
        sims = table[:, 0]
        if np.any(np.diff(sims) <= 0):
            raise ValueError("params.knots must have strictly increasing similarity")
        if not (math.isclose(sims[0], lo) and math.isclose(sims[-1], hi)):
            raise ValueError("similarity_range must span the first and last knot")
        params = table[:, 1:]
        anchor = self.params.get("anchor")
        if above == "identical_anchor":
            if not isinstance(anchor, dict):
                raise ValueError("extrapolation.above = 'identical_anchor' needs params.anchor")
            s_a, q_a = anchor.get("similarity"), anchor.get("quality")
            if not (_is_number(s_a) and _is_number(q_a)) or not hi < float(s_a) <= 1.0:
                raise ValueError(
                    "params.anchor needs a finite quality and a similarity in (s_max, 1]"
                )
            sims = np.append(sims, float(s_a))
            params = np.vstack([params, [0.0, 0.0, 0.0, float(q_a)]])
        elif anchor is not None:
            raise ValueError(
                "params.anchor is set but extrapolation.above is not 'identical_anchor'"
            )
        return {"sims": sims, "params": params}

    def _build_poly(self) -> dict[str, np.ndarray]:
        degree = self.params.get("degree")
        if not isinstance(degree, int) or isinstance(degree, bool) or not 0 <= degree <= 3:
            raise ValueError("params.degree must be an integer in [0, 3]")
        coefs = []
        for key in _POLY_KEYS:
            values = self.params.get(key)
            if (
                not isinstance(values, list)
                or len(values) != degree + 1
                or not all(_is_number(v) for v in values)
            ):
                raise ValueError(f"params.{key} must be {degree + 1} finite numbers")
            coefs.append([float(v) for v in values])
        return {"coefs": np.array(coefs, dtype=float)}

    # ------------------------------------------------------------------ evaluation

    def predict(self, similarity: Any, common_steps: Any) -> np.ndarray:
        """Quality for each ``(similarity, common_steps)`` pair, numpy-broadcast.

        ``similarity`` is a prompt cosine in [-1, 1]; ``common_steps`` lies in ``[0, T - 1]`` and
        may be fractional (a relaxation). Raises ValueError for values out of range or not finite.
        """
        s = np.asarray(similarity, dtype=float)
        x = np.asarray(common_steps, dtype=float)
        if not np.all(np.isfinite(s)) or np.any(np.abs(s) > 1.0 + _SIM_TOL):
            raise ValueError("similarity must be finite and within [-1, 1]")
        if not np.all(np.isfinite(x)) or np.any(x < 0) or np.any(x > self.total_steps - 1):
            raise ValueError(f"common_steps must be finite and within [0, {self.total_steps - 1}]")
        shape = np.broadcast_shapes(s.shape, x.shape)
        # Work on s and x unbroadcast: the per-similarity part runs once per similarity value.
        q = self._predict_poly(s, x) if self.form == "poly" else self._predict_interp(s, x)
        return np.asarray(np.broadcast_to(q, shape).copy() if q.shape != shape else q)

    def _predict_interp(self, s: np.ndarray, x: np.ndarray) -> np.ndarray:
        sims, params = self._arrays["sims"], self._arrays["params"]
        sc = np.clip(s, sims[0], sims[-1])
        if len(sims) == 1:
            return shifted_logistic(x, *params[0]) + np.zeros_like(sc)
        idx = np.clip(np.searchsorted(sims, sc, side="right") - 1, 0, len(sims) - 2)
        w = (sc - sims[idx]) / (sims[idx + 1] - sims[idx])
        lp, rp = params[idx], params[idx + 1]
        left = shifted_logistic(x, lp[..., 0], lp[..., 1], lp[..., 2], lp[..., 3])
        right = shifted_logistic(x, rp[..., 0], rp[..., 1], rp[..., 2], rp[..., 3])
        return (1.0 - w) * left + w * right

    def _predict_poly(self, s: np.ndarray, x: np.ndarray) -> np.ndarray:
        lo, hi = self.similarity_range
        sc = np.clip(s, lo, hi)
        log_l, log_k, b, d = (
            np.polynomial.polynomial.polyval(sc, c) for c in self._arrays["coefs"]
        )
        return shifted_logistic(x, np.exp(log_l), np.exp(log_k), b, d)

    def curve_params(self, similarity: float) -> dict[str, float] | None:
        """The logistic parameters at one similarity for the ``poly`` form (``None`` for interp)."""
        if self.form != "poly":
            return None
        lo, hi = self.similarity_range
        sc = min(max(float(similarity), lo), hi)
        log_l, log_k, b, d = (
            float(np.polynomial.polynomial.polyval(sc, c)) for c in self._arrays["coefs"]
        )
        return {"L": math.exp(log_l), "K": math.exp(log_k), "B": b, "D": d}

    def unshared_quality(self, n_similarity: int = 1001) -> float:
        """Quality of a user that shares nothing (x = 0).

        With no common steps the public prompt plays no part, so this is one number for every
        similarity. The fitted bins disagree slightly at x = 0 (they were measured on different
        prompt sets); the largest value is taken so that sharing never predicts a gain over it.
        """
        grid = np.linspace(0.0, 1.0, n_similarity)
        return float(np.max(self.predict(grid, 0)))

    def check_monotone(self, n_similarity: int = 101) -> None:
        """Spot-check on a grid that quality is finite and non-increasing in shared steps.

        Raises ValueError naming the first similarity where it fails.
        """
        grid_s = np.union1d(np.linspace(0.0, 1.0, n_similarity), self._arrays.get("sims", []))
        grid_x = np.linspace(0.0, self.total_steps - 1, 4 * (self.total_steps - 1) + 1)
        q = self.predict(grid_s[:, None], grid_x[None, :])
        if not np.all(np.isfinite(q)):
            raise ValueError("quality is not finite on the check grid")
        rising = np.diff(q, axis=1) > _MONO_TOL
        if np.any(rising):
            i, j = np.argwhere(rising)[0]
            raise ValueError(
                f"quality rises with shared steps at similarity {grid_s[i]:.3g}, "
                f"x {grid_x[j]:.3g} -> {grid_x[j + 1]:.3g}"
            )

    # ------------------------------------------------------------------ persistence

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract (schema ``his-opt/hiqm/1``)."""
        return {
            "schema": HIQM_SCHEMA,
            "variant": self.variant,
            "total_steps": self.total_steps,
            "quality_metric": self.quality_metric,
            "form": self.form,
            "params": self.params,
            "similarity_range": list(self.similarity_range),
            "extrapolation": self.extrapolation,
            "metrics": self.metrics,
            "provenance": self.provenance,
            **({} if self.fitted_at is None else {"fitted_at": self.fitted_at}),
        }

    def check_range(self, low: float = 0.0, high: float = 1.0) -> None:
        """Quality predicted on the whole (similarity, x) grid lies in ``[low, high]`` (a CLIP
        cosine of a real image is far inside [0, 1]); ValueError naming where it does not."""
        grid_s = np.linspace(-1.0, 1.0, 201)
        grid_x = np.arange(self.total_steps)
        q = self.predict(grid_s[:, None], grid_x[None, :])
        bad = np.argwhere((q < low) | (q > high))
        if len(bad):
            i, j = bad[0]
            raise ValueError(
                f"predicts quality {q[i, j]:.6g} at similarity {grid_s[i]:.2f}, x {grid_x[j]}: "
                f"outside [{low:g}, {high:g}] for {self.quality_metric}"
            )

    def save(self, path: str | Path) -> None:
        """Write the model as JSON, atomically."""
        atomic_write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, data: Any, *, source: str | Path = "<hiqm>") -> HIQM:
        """Build from the JSON contract; raise InputError naming ``source`` on any problem."""
        if not isinstance(data, dict):
            raise InputError("HIQM file must hold a JSON object", file=source)
        for key in _REQUIRED:
            if key not in data:
                raise InputError("missing", file=source, field=key)
        if data["schema"] != HIQM_SCHEMA:
            raise InputError(
                f"unknown schema {data['schema']!r}, expected {HIQM_SCHEMA!r}",
                file=source,
                field="schema",
            )
        bad = _first_non_finite(data)
        if bad is not None:
            raise InputError("not a finite number", file=source, field=bad)
        for key, kind in (
            ("variant", str),
            ("quality_metric", str),
            ("form", str),
            ("params", dict),
            ("extrapolation", dict),
            ("metrics", dict),
            ("provenance", dict),
        ):
            if not isinstance(data[key], kind):
                raise InputError(f"must be a {kind.__name__}", file=source, field=key)
        rng = data["similarity_range"]
        if not (isinstance(rng, list) and len(rng) == 2 and all(_is_number(v) for v in rng)):
            raise InputError("must be two numbers", file=source, field="similarity_range")
        total = data["total_steps"]
        if not isinstance(total, int) or isinstance(total, bool):
            raise InputError("must be an integer", file=source, field="total_steps")
        fitted_at = data.get("fitted_at")
        if fitted_at is not None:
            from .._validate import FittedAt, validate

            fitted_at = validate(FittedAt, fitted_at, source=source, prefix="fitted_at").model_dump()
        try:
            model = cls(
                variant=data["variant"],
                total_steps=total,
                form=data["form"],
                params=data["params"],
                similarity_range=(float(rng[0]), float(rng[1])),
                extrapolation=data["extrapolation"],
                quality_metric=data["quality_metric"],
                metrics=data["metrics"],
                provenance=data["provenance"],
                fitted_at=fitted_at,
            )
        except ValueError as err:
            raise InputError(str(err), file=source, field=_field_of(str(err))) from err
        try:
            model.check_monotone()
            model.check_range()
        except ValueError as err:
            raise InputError(str(err), file=source, field="params") from err
        return model

    @classmethod
    def load(cls, path: str | Path) -> HIQM:
        """Read and validate a HIQM JSON file; raise InputError(file=path, field=...) if bad."""
        from .._read import read_json

        return cls.from_dict(read_json(path, allow_non_finite=True), source=path)


def default_hiqm_path(variant: str = "sim_npi") -> Path:
    """Path of the model ``hiqm/<variant>.json``: first in ``HIS_OPT_MODELS``, then shipped."""
    from ..resources import find_model, model_dirs

    if not re.fullmatch(r"[A-Za-z0-9_.-]+", variant) or variant.startswith("."):
        raise ValueError(f"variant must be a plain name, got {variant!r}")
    found = find_model("hiqm", variant)
    return found if found is not None else model_dirs("hiqm")[-1] / f"{variant}.json"


def load_default_hiqm(variant: str = "sim_npi") -> HIQM:
    """Load the shipped HIQM of ``variant`` (``sim_npi`` or ``plain``)."""
    return HIQM.load(default_hiqm_path(variant))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _first_non_finite(obj: Any, prefix: str = "") -> str | None:
    """Dotted path of the first NaN/inf number in a JSON tree, or None."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return prefix or "<root>"
    if isinstance(obj, dict):
        for key, value in obj.items():
            found = _first_non_finite(value, f"{prefix}.{key}" if prefix else str(key))
            if found:
                return found
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            found = _first_non_finite(value, f"{prefix}[{i}]")
            if found:
                return found
    return None


def _field_of(message: str) -> str:
    """The field a constructor ValueError names (its first word when dotted/known), else params."""
    head = message.split()[0].rstrip(":") if message else ""
    for top in ("total_steps", "similarity_range", "extrapolation", "form"):
        if head.startswith(top):
            return head
    return head if head.startswith("params") else "params"
