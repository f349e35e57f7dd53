"""Fit a HIQM from measured quality: per-bin shifted logistics, then a model continuous in similarity.

Steps: (1) validate the table and, for a per-image profile dataset, bin the raw similarity to the
nearest 0.1 and average the quality per (bin, common_steps); (2) fit the authors' logistic
``L / (1 + exp(K (x - B))) + D`` to each bin; (3) build every candidate continuous form
(``interp``: convex interpolation between neighbouring bins' curves; ``poly1``/``poly2``:
``log L, log K, B, D`` linear/quadratic in similarity, fitted jointly to all points), score each
in-sample and by leave-one-bin-out (LOBO: refit without a bin, predict it); (4) keep the candidate
with the lowest mean LOBO RMSE among those reaching the in-sample R^2 floor on every bin.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._errors import InputError
from ._model import HIQM, shifted_logistic

__all__ = [
    "CANDIDATE_FORMS",
    "REQUIRED_COLUMNS",
    "BinFit",
    "BinScore",
    "CandidateResult",
    "HIQMFit",
    "fit_bin_logistic",
    "fit_hiqm",
    "prepare_quality_table",
    "read_quality_table",
]

REQUIRED_COLUMNS = ("variant", "similarity", "common_steps", "clip_alignment")
CANDIDATE_FORMS = ("interp", "poly1", "poly2")
DEFAULT_TOTAL_STEPS = 28
_POLY_DEGREE = {"poly1": 1, "poly2": 2}


@dataclass(frozen=True)
class BinFit:
    """The shifted logistic fitted to one similarity bin, with its goodness of fit."""

    similarity: float
    L: float
    K: float
    B: float
    D: float
    r2: float
    rmse: float
    n_points: int
    n_samples: int

    def predict(self, common_steps: Any) -> np.ndarray:
        return shifted_logistic(common_steps, self.L, self.K, self.B, self.D)

    def to_dict(self) -> dict[str, Any]:
        return {
            "similarity": self.similarity,
            "L": self.L,
            "K": self.K,
            "B": self.B,
            "D": self.D,
            "r2": self.r2,
            "rmse": self.rmse,
            "n_points": self.n_points,
            "n_samples": self.n_samples,
        }


@dataclass(frozen=True)
class BinScore:
    """How well a model predicts one bin's points."""

    similarity: float
    r2: float
    rmse: float
    max_abs: float

    def to_dict(self) -> dict[str, float]:
        return {
            "similarity": self.similarity,
            "r2": self.r2,
            "rmse": self.rmse,
            "max_abs": self.max_abs,
        }


@dataclass(frozen=True)
class CandidateResult:
    """One continuous form: the model fitted on all bins, its in-sample and LOBO scores."""

    name: str
    model: HIQM | None
    in_sample: tuple[BinScore, ...] = ()
    lobo: tuple[BinScore, ...] = ()
    lobo_predictions: dict[float, np.ndarray] = field(default_factory=dict, repr=False)
    skipped: str | None = None

    @property
    def min_r2(self) -> float:
        return min((b.r2 for b in self.in_sample), default=math.nan)

    @property
    def mean_lobo_rmse(self) -> float:
        return float(np.mean([b.rmse for b in self.lobo])) if self.lobo else math.nan

    @property
    def max_lobo_abs(self) -> float:
        return max((b.max_abs for b in self.lobo), default=math.nan)

    def to_dict(self) -> dict[str, Any]:
        if self.skipped:
            return {"skipped": self.skipped}
        return {
            "in_sample": [b.to_dict() for b in self.in_sample],
            "in_sample_min_r2": self.min_r2,
            "lobo": [b.to_dict() for b in self.lobo],
            "lobo_mean_rmse": self.mean_lobo_rmse,
            "lobo_max_abs": self.max_lobo_abs,
        }


@dataclass(frozen=True)
class HIQMFit:
    """Result of :func:`fit_hiqm`: the data used, per-bin fits, every candidate and the model."""

    variant: str
    total_steps: int
    table: pd.DataFrame = field(repr=False)
    bin_fits: tuple[BinFit, ...]
    candidates: dict[str, CandidateResult]
    chosen: str
    model: HIQM
    aggregated: bool = False
    dropped_bins: tuple[float, ...] = ()

    def summary(self) -> str:
        """Human-readable tables: per-bin fits, the chosen model per bin, LOBO per candidate."""
        lines = [f"HIQM fit, variant {self.variant}, T = {self.total_steps}, chosen: {self.chosen}"]
        lines.append("per-bin logistic fit:")
        lines.append("   bin       L       K       B       D       R^2     RMSE")
        for b in self.bin_fits:
            lines.append(
                f"  {b.similarity:4.2f} {b.L:7.4f} {b.K:7.4f} {b.B:7.3f} {b.D:7.4f}"
                f"  {b.r2:8.5f}  {b.rmse:7.5f}"
            )
        for name, cand in self.candidates.items():
            if cand.skipped:
                lines.append(f"candidate {name}: skipped ({cand.skipped})")
                continue
            lines.append(
                f"candidate {name}: in-sample min R^2 {cand.min_r2:.5f}, "
                f"LOBO mean RMSE {cand.mean_lobo_rmse:.5f}, LOBO max |err| {cand.max_lobo_abs:.5f}"
            )
            lines.append("   bin   in-R^2   in-RMSE  LOBO-RMSE  LOBO-max|err|")
            for ins, out in zip(cand.in_sample, cand.lobo, strict=True):
                lines.append(
                    f"  {ins.similarity:4.2f}  {ins.r2:7.5f}  {ins.rmse:7.5f}  "
                    f"{out.rmse:9.5f}  {out.max_abs:13.5f}"
                )
        lines.append(f"selection: {self.model.metrics['selection']['reason']}")
        return "\n".join(lines)


def read_quality_table(path: str | Path) -> pd.DataFrame:
    """Read a quality table (CSV, optionally compressed, or .xlsx); InputError if unreadable."""
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", file=path)
    try:
        if path.suffix.lower() == ".xlsx":
            return pd.read_excel(path)
        return pd.read_csv(path)
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as err:
        raise InputError(f"cannot read table ({err})", file=path) from err


def prepare_quality_table(
    data: pd.DataFrame,
    variant: str,
    *,
    source: str | Path | None = None,
    quality_column: str = "clip_alignment",
    total_steps: int | None = None,
    bin_width: float = 0.1,
) -> tuple[pd.DataFrame, int, bool]:
    """Validate ``data`` and return ``(table, total_steps, aggregated)``.

    ``table`` has one row per (similarity bin, common_steps): columns ``similarity`` (the bin),
    ``common_steps``, ``quality`` (mean) and ``n`` (rows averaged). Raw similarities are binned to
    the nearest multiple of ``bin_width`` (halves round up); ``aggregated`` says whether any
    binning or averaging happened (a per-image profile dataset) or the data was already binned.
    Raises InputError naming ``source`` and the column (and row) on a problem.
    """
    columns = ("variant", "similarity", "common_steps", quality_column)
    for col in columns:
        if col not in data.columns:
            raise InputError(f"missing column (need {', '.join(columns)})", file=source, field=col)
    if len(data) == 0:
        raise InputError("no data rows", file=source)
    steps = _total_steps(data, total_steps, source)
    numeric = {}
    for col in ("similarity", "common_steps", quality_column):
        values = pd.to_numeric(data[col], errors="coerce").to_numpy(dtype=float)
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise InputError("not a finite number", file=source, row=int(bad[0]) + 1, field=col)
        numeric[col] = values
    names = data["variant"].astype(str).str.strip().to_numpy()
    keep = names == variant
    if not keep.any():
        found = ", ".join(sorted(set(names)))
        raise InputError(
            f"no rows for variant {variant!r} (found: {found})", file=source, field="variant"
        )
    rows = np.flatnonzero(keep)
    s = numeric["similarity"][keep]
    x = numeric["common_steps"][keep]
    q = numeric[quality_column][keep]
    for col, values, ok in (
        ("similarity", s, np.abs(s) <= 1.0 + 1e-9),
        ("common_steps", x, (x == np.round(x)) & (x >= 0) & (x <= steps - 1)),
    ):
        if not ok.all():
            i = int(np.flatnonzero(~ok)[0])
            what = "within [-1, 1]" if col == "similarity" else f"an integer in [0, {steps - 1}]"
            raise InputError(
                f"must be {what}, got {values[i]:g}", file=source, row=int(rows[i]) + 1, field=col
            )
    per_unit = 1.0 / bin_width  # s * 10, as his_opt.profiling bins it
    bins = np.round(np.floor(s * per_unit + 0.5) / per_unit, 6)
    frame = pd.DataFrame({"similarity": bins, "common_steps": x.astype(int), "quality": q})
    table = (
        frame.groupby(["similarity", "common_steps"], sort=True)["quality"]
        .agg(quality="mean", n="size")
        .reset_index()
    )
    aggregated = bool((table["n"] > 1).any() or np.any(np.abs(s - bins) > 1e-9))
    return table, steps, aggregated


def _total_steps(data: pd.DataFrame, total_steps: int | None, source: str | Path | None) -> int:
    if "total_steps" in data.columns:
        values = pd.to_numeric(data["total_steps"], errors="coerce")
        if values.isna().any():
            row = int(np.flatnonzero(values.isna().to_numpy())[0]) + 1
            raise InputError("not a number", file=source, row=row, field="total_steps")
        found = sorted({int(v) for v in values})
        if len(found) > 1:
            raise InputError(
                f"mixed total steps {found}; fit one total_steps at a time",
                file=source,
                field="total_steps",
            )
        if total_steps is not None and found[0] != total_steps:
            raise InputError(
                f"data has total_steps {found[0]}, but {total_steps} was requested",
                file=source,
                field="total_steps",
            )
        steps = found[0]
    else:
        steps = DEFAULT_TOTAL_STEPS if total_steps is None else int(total_steps)
    if steps < 2:
        raise InputError(f"total_steps must be >= 2, got {steps}", file=source, field="total_steps")
    return steps


def _r2(y: np.ndarray, yhat: np.ndarray) -> float:
    sse = float(np.sum((y - yhat) ** 2))
    sst = float(np.sum((y - y.mean()) ** 2))
    if sst <= 0.0:
        return 1.0 if sse <= 1e-24 else 0.0
    return 1.0 - sse / sst


def _score(similarity: float, y: np.ndarray, yhat: np.ndarray) -> BinScore:
    err = y - yhat
    return BinScore(
        similarity=float(similarity),
        r2=_r2(y, yhat),
        rmse=float(np.sqrt(np.mean(err**2))),
        max_abs=float(np.max(np.abs(err))),
    )


def fit_bin_logistic(
    common_steps: np.ndarray, quality: np.ndarray, total_steps: int
) -> tuple[float, float, float, float]:
    """Least-squares fit of ``L / (1 + exp(K (x - B))) + D`` with ``L, K >= 0`` (non-increasing).

    Bounds: ``L`` in [0, 10 span], ``K`` in [1e-4, 10] per step, ``B`` in [-T, 2T], ``D`` between
    ``min - 10 span`` and ``max`` (span = max - min of the data). Nine starts over ``K`` and ``B``;
    the lowest residual wins, so the fit does not depend on one initial guess.
    """
    from scipy.optimize import least_squares

    x = np.asarray(common_steps, dtype=float)
    y = np.asarray(quality, dtype=float)
    span = float(y.max() - y.min()) + 1e-9
    lower = [0.0, 1e-4, -float(total_steps), float(y.min()) - 10 * span]
    upper = [10 * span, 10.0, 2.0 * total_steps, float(y.max())]
    best = None
    for k0 in (0.1, 0.3, 1.0):
        for b0 in (0.25 * total_steps, 0.5 * total_steps, 0.75 * total_steps):
            start = np.clip([span, k0, b0, float(y.min())], lower, upper)
            res = least_squares(
                lambda p: shifted_logistic(x, *p) - y,
                start,
                bounds=(lower, upper),
                x_scale="jac",
                xtol=1e-12,
                ftol=1e-12,
                gtol=1e-12,
                max_nfev=2000,
            )
            if best is None or res.cost < best.cost:
                best = res
    L, K, B, D = (float(v) for v in best.x)
    return L, K, B, D


def _interp_model(fits: list[BinFit], variant: str, total_steps: int, anchor: bool) -> HIQM:
    knots = [{"similarity": b.similarity, "L": b.L, "K": b.K, "B": b.B, "D": b.D} for b in fits]
    params: dict[str, Any] = {"knots": knots, "anchor": None}
    above = "clamp"
    if anchor:
        top = fits[-1]
        params["anchor"] = {"similarity": 1.0, "quality": float(top.predict(0.0))}
        above = "identical_anchor"
    return HIQM(
        variant=variant,
        total_steps=total_steps,
        form="interp",
        params=params,
        similarity_range=(fits[0].similarity, fits[-1].similarity),
        extrapolation={"below": "clamp", "above": above},
    )


def _poly_model(
    table: pd.DataFrame, fits: list[BinFit], degree: int, variant: str, total_steps: int
) -> HIQM:
    from scipy.optimize import least_squares

    s_bins = np.array([b.similarity for b in fits])
    transformed = np.array(
        [[math.log(max(b.L, 1e-9)), math.log(max(b.K, 1e-6)), b.B, b.D] for b in fits]
    )
    start = np.concatenate(
        [np.polynomial.polynomial.polyfit(s_bins, transformed[:, j], degree) for j in range(4)]
    )
    s = table["similarity"].to_numpy(dtype=float)
    x = table["common_steps"].to_numpy(dtype=float)
    y = table["quality"].to_numpy(dtype=float)
    vander = np.polynomial.polynomial.polyvander(s, degree)

    def residuals(c: np.ndarray) -> np.ndarray:
        log_l, log_k, b, d = (vander @ part for part in c.reshape(4, degree + 1))
        return shifted_logistic(x, np.exp(log_l), np.exp(np.clip(log_k, -20, 5)), b, d) - y

    res = least_squares(residuals, start, x_scale="jac", max_nfev=5000)
    coefs = res.x.reshape(4, degree + 1)
    params = {"degree": degree}
    for key, row in zip(("log_L", "log_K", "B", "D"), coefs, strict=True):
        params[key] = [float(v) for v in row]
    return HIQM(
        variant=variant,
        total_steps=total_steps,
        form="poly",
        params=params,
        similarity_range=(float(s_bins[0]), float(s_bins[-1])),
        extrapolation={"below": "clamp", "above": "clamp"},
    )


def _build(
    name: str,
    table: pd.DataFrame,
    fits: list[BinFit],
    variant: str,
    total_steps: int,
    anchor: bool,
) -> HIQM:
    if name == "interp":
        return _interp_model(fits, variant, total_steps, anchor)
    return _poly_model(table, fits, _POLY_DEGREE[name], variant, total_steps)


def _min_bins(name: str) -> int:
    """Bins needed so that every LOBO training set can determine the form."""
    return 2 if name == "interp" else _POLY_DEGREE[name] + 2


def _evaluate(
    name: str, table: pd.DataFrame, fits: list[BinFit], variant: str, total_steps: int, anchor: bool
) -> CandidateResult:
    if len(fits) < _min_bins(name):
        return CandidateResult(
            name=name, model=None, skipped=f"needs at least {_min_bins(name)} similarity bins"
        )
    model = _build(name, table, fits, variant, total_steps, anchor)
    in_sample, lobo, preds = [], [], {}
    for i, b in enumerate(fits):
        part = table[table["similarity"] == b.similarity]
        x = part["common_steps"].to_numpy(dtype=float)
        y = part["quality"].to_numpy(dtype=float)
        in_sample.append(_score(b.similarity, y, model.predict(b.similarity, x)))
        rest = fits[:i] + fits[i + 1 :]
        held_out = _build(
            name, table[table["similarity"] != b.similarity], rest, variant, total_steps, anchor
        )
        yhat = held_out.predict(b.similarity, x)
        lobo.append(_score(b.similarity, y, yhat))
        preds[b.similarity] = yhat
    return CandidateResult(
        name=name,
        model=model,
        in_sample=tuple(in_sample),
        lobo=tuple(lobo),
        lobo_predictions=preds,
    )


def fit_hiqm(
    data: pd.DataFrame,
    variant: str = "sim_npi",
    *,
    source: str | Path | None = None,
    quality_column: str = "clip_alignment",
    total_steps: int | None = None,
    form: str = "auto",
    identical_anchor: bool | None = None,
    min_r2: float = 0.99,
    min_points: int = 6,
    provenance: dict[str, Any] | None = None,
    fitted_at: dict[str, Any] | None = None,
) -> HIQMFit:
    """Fit the HIQM of one ``variant`` from a quality table; see the module docstring.

    ``data`` is either the reference format (one row per similarity bin and ``common_steps``) or
    a profile dataset (one row per image, raw similarity; it is binned to the nearest 0.1 and
    averaged). ``total_steps`` defaults to the data's ``total_steps`` column, else 28.
    ``form`` is ``"auto"`` (lowest mean LOBO RMSE among candidates whose in-sample R^2 reaches
    ``min_r2`` on every bin) or one of :data:`CANDIDATE_FORMS`. ``identical_anchor`` (default: on
    for ``variant == "plain"`` only) lets the ``interp`` form rise above the largest bin towards a
    flat curve at ``s = 1``. Bins with fewer than ``min_points`` distinct ``common_steps`` are
    dropped with a warning. ``source`` names the data in errors and the provenance; ``fitted_at``
    records the diffusion model, image size and guidance scales the data was measured at.
    """
    if form != "auto" and form not in CANDIDATE_FORMS:
        raise ValueError(f"form must be 'auto' or one of {CANDIDATE_FORMS}, got {form!r}")
    if not 0.0 < min_r2 <= 1.0:
        raise ValueError(f"min_r2 must be in (0, 1], got {min_r2}")
    if min_points < 5:
        raise ValueError("min_points must be >= 5 (the logistic has 4 parameters)")
    table, steps, aggregated = prepare_quality_table(
        data, variant, source=source, quality_column=quality_column, total_steps=total_steps
    )
    anchor = (variant == "plain") if identical_anchor is None else bool(identical_anchor)
    counts = table.groupby("similarity")["common_steps"].nunique()
    dropped = tuple(float(s) for s, n in counts.items() if n < min_points)
    if dropped:
        warnings.warn(
            f"{source or 'data'}: dropping similarity bins {list(dropped)} "
            f"(fewer than {min_points} distinct common_steps)",
            stacklevel=2,
        )
        table = table[~table["similarity"].isin(dropped)].reset_index(drop=True)
    kept = sorted(float(s) for s in table["similarity"].unique())
    if len(kept) < 2:
        raise InputError(
            f"need at least 2 similarity bins with >= {min_points} distinct common_steps, "
            f"found {len(kept)}",
            file=source,
            field="similarity",
        )
    fits = []
    for s in kept:
        part = table[table["similarity"] == s]
        x = part["common_steps"].to_numpy(dtype=float)
        y = part["quality"].to_numpy(dtype=float)
        L, K, B, D = fit_bin_logistic(x, y, steps)
        score = _score(s, y, shifted_logistic(x, L, K, B, D))
        fits.append(BinFit(s, L, K, B, D, score.r2, score.rmse, len(part), int(part["n"].sum())))
    candidates = {
        name: _evaluate(name, table, fits, variant, steps, anchor) for name in CANDIDATE_FORMS
    }
    if form != "auto" and candidates[form].skipped:
        raise InputError(
            f"form {form!r} {candidates[form].skipped}", file=source, field="similarity"
        )
    chosen, reason = _select(candidates, form, min_r2)
    model = candidates[chosen].model
    assert model is not None
    metrics = {
        "data": {
            "rows": len(data),
            "points": len(table),
            "aggregated": aggregated,
            "binning": "similarity rounded to the nearest 0.1, quality averaged per bin and x"
            if aggregated
            else "none (data already one row per similarity bin and x)",
            "bins": kept,
            "dropped_bins": list(dropped),
        },
        "bin_fits": [b.to_dict() for b in fits],
        "model": [b.to_dict() for b in candidates[chosen].in_sample],
        "model_min_r2": candidates[chosen].min_r2,
        "candidates": {name: c.to_dict() for name, c in candidates.items()},
        "selection": {
            "rule": f"lowest mean leave-one-bin-out RMSE among candidates with in-sample "
            f"R^2 >= {min_r2} on every bin"
            if form == "auto"
            else f"form forced to {form!r}",
            "chosen": chosen,
            "reason": reason,
        },
    }
    extrapolation = dict(model.extrapolation)
    extrapolation["note"] = _extrapolation_note(model, fits, anchor)
    model = replace(
        model,
        quality_metric=quality_column,
        extrapolation=extrapolation,
        metrics=metrics,
        provenance=dict(provenance or {}),
        fitted_at=None if fitted_at is None else dict(fitted_at),
    )
    return HIQMFit(
        variant=variant,
        total_steps=steps,
        table=table,
        bin_fits=tuple(fits),
        candidates=candidates,
        chosen=chosen,
        model=model,
        aggregated=aggregated,
        dropped_bins=dropped,
    )


def _select(candidates: dict[str, CandidateResult], form: str, min_r2: float) -> tuple[str, str]:
    usable = {n: c for n, c in candidates.items() if not c.skipped}
    others = ", ".join(f"{n} {c.mean_lobo_rmse:.4f}" for n, c in usable.items())
    if form != "auto":
        return form, f"forced by the caller (mean LOBO RMSE: {others})"
    passing = {n: c for n, c in usable.items() if c.min_r2 >= min_r2}
    pool = passing or usable
    if not passing:
        warnings.warn(f"no candidate reaches in-sample R^2 >= {min_r2} on every bin", stacklevel=3)
    best = min(pool, key=lambda n: pool[n].mean_lobo_rmse)
    c = pool[best]
    why = {
        "interp": "it reproduces every bin's logistic exactly and is monotone by construction "
        "(convex combination of non-increasing curves)",
        "poly1": "its parameters are smooth (log-linear) in similarity and monotone by construction",
        "poly2": "its parameters are smooth (log-quadratic) in similarity and monotone by "
        "construction",
    }[best]
    return best, (
        f"{best}: lowest mean leave-one-bin-out RMSE ({others}); in-sample min R^2 "
        f"{c.min_r2:.4f}; {why}"
    )


def _extrapolation_note(model: HIQM, fits: list[BinFit], anchor: bool) -> str:
    lo, hi = model.similarity_range
    x = np.arange(model.total_steps, dtype=float)
    gap = float(np.max(np.abs(fits[0].predict(x) - fits[1].predict(x))))
    note = (
        f"below s = {lo:g} the curve of s = {lo:g} is used (clamp; no data there; the two lowest "
        f"bins' curves differ by at most {gap:.4f}); "
    )
    if model.extrapolation["above"] == "identical_anchor":
        return note + (
            f"between s = {hi:g} and 1 the model interpolates towards a flat curve at the "
            f"unshared quality of s = {hi:g} (identical prompts with the same guidance and no "
            "negative prompt lose nothing by sharing)"
        )
    why = "" if not anchor else " (the identical-prompt anchor applies to the interp form only)"
    return note + f"above s = {hi:g} the curve of s = {hi:g} is used (clamp: conservative){why}"
