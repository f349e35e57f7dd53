"""Hybrid-inference quality model (HIQM): quality against prompt similarity and shared steps."""

from ._fit import (
    CANDIDATE_FORMS,
    REQUIRED_COLUMNS,
    BinFit,
    BinScore,
    CandidateResult,
    HIQMFit,
    fit_bin_logistic,
    fit_hiqm,
    prepare_quality_table,
    read_quality_table,
)
from ._model import HIQM, HIQM_SCHEMA, default_hiqm_path, load_default_hiqm, shifted_logistic
from ._plot import plot_hiqm_fit, render_hiqm_fit_png

__all__ = [
    "CANDIDATE_FORMS",
    "HIQM",
    "HIQM_SCHEMA",
    "REQUIRED_COLUMNS",
    "BinFit",
    "BinScore",
    "CandidateResult",
    "HIQMFit",
    "default_hiqm_path",
    "fit_bin_logistic",
    "fit_hiqm",
    "load_default_hiqm",
    "plot_hiqm_fit",
    "prepare_quality_table",
    "read_quality_table",
    "render_hiqm_fit_png",
    "shifted_logistic",
]
