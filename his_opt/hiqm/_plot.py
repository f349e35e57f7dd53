"""Plot a HIQM fit: data vs per-bin logistics and the continuous model, and the LOBO predictions."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from .._atomic import atomic_write_bytes
from ._fit import HIQMFit

__all__ = ["plot_hiqm_fit", "render_hiqm_fit_png"]


def render_hiqm_fit_png(fit: HIQMFit, *, dpi: int = 120) -> bytes:
    """PNG bytes of two panels: (left) data points, per-bin logistic (dashed) and the continuous
    model (solid) per bin, plus the model between bins (thin grey); (right) each bin's data
    against the chosen form's leave-one-bin-out prediction. One colour per bin."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    model = fit.model
    x_fine = np.linspace(0.0, fit.total_steps - 1, 200)
    fig = Figure(figsize=(12, 4.8), dpi=dpi)
    ax_fit, ax_lobo = fig.subplots(1, 2, sharey=True)
    colours = matplotlib.colormaps["viridis"](np.linspace(0.05, 0.85, len(fit.bin_fits)))
    sims = [b.similarity for b in fit.bin_fits]
    between = [(a + b) / 2 for a, b in zip(sims[:-1], sims[1:], strict=True)]
    for s in between + [0.0, 1.0]:
        ax_fit.plot(x_fine, model.predict(s, x_fine), color="0.75", lw=0.8, zorder=1)
    lobo = fit.candidates[fit.chosen].lobo_predictions
    for b, colour in zip(fit.bin_fits, colours, strict=True):
        part = fit.table[fit.table["similarity"] == b.similarity]
        x, y = part["common_steps"].to_numpy(), part["quality"].to_numpy()
        label = f"s = {b.similarity:g} (R$^2$ {b.r2:.4f})"
        for ax in (ax_fit, ax_lobo):
            ax.scatter(x, y, s=14, color=colour, zorder=3)
        ax_fit.plot(x_fine, b.predict(x_fine), "--", color=colour, lw=1.2, zorder=2)
        ax_fit.plot(
            x_fine,
            model.predict(b.similarity, x_fine),
            "-",
            color=colour,
            lw=1.6,
            label=label,
            zorder=2,
        )
        rmse = float(np.sqrt(np.mean((lobo[b.similarity] - y) ** 2)))
        ax_lobo.plot(
            x,
            lobo[b.similarity],
            "-",
            color=colour,
            lw=1.6,
            zorder=2,
            label=f"s = {b.similarity:g} (RMSE {rmse:.4f})",
        )
    same = " (equal at the bins)" if fit.chosen == "interp" else ""
    ax_fit.set_title(
        f"HIQM {fit.variant}: {fit.chosen} (solid), per-bin logistic (dashed){same}\n"
        "grey: the model between bins and at s = 0 and 1",
        fontsize=9,
    )
    ax_lobo.set_title(f"leave-one-bin-out prediction of each bin ({fit.chosen})", fontsize=9)
    for ax in (ax_fit, ax_lobo):
        ax.set_xlabel("common steps x")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax_fit.set_ylabel(model.quality_metric)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def plot_hiqm_fit(fit: HIQMFit, path: str | Path, *, dpi: int = 120) -> None:
    """Write :func:`render_hiqm_fit_png` to ``path`` atomically."""
    atomic_write_bytes(path, render_hiqm_fit_png(fit, dpi=dpi))
