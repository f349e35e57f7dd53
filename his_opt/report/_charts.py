"""The report's charts and the numbers behind them (sheet "Chart data").

* Quality against common steps: the HIQM curve of each of the largest shared groups at its
  members' mean similarity, the rest summarised as one size-weighted mean curve, the chosen x of
  each shown group marked; the y axis spans the plotted values, not 0 to 1.
* GPU time per server against its budget.
* How quality and delay are spread over the users (histograms).
* The objective of this plan and of each baseline that has a plan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ._cells import FONT, LINE_PT, line_count, put

__all__ = ["ChartSettings", "add_charts", "axis_range", "chosen_points", "histogram",
           "quality_curves"]


@dataclass(frozen=True)
class ChartSettings:
    """Tuning numbers of the charts."""

    max_curves: int = 8  # groups drawn one by one; the rest as one mean curve
    histogram_bins: int = 10
    axis_pad: float = 0.08  # fraction of the data range added above and below
    axis_step: float = 0.005  # quality axis ends are rounded to this
    wide_cm: tuple[float, float] = (25.0, 11.0)  # (width, height) of the quality chart
    small_cm: tuple[float, float] = (12.6, 7.8)


SETTINGS = ChartSettings()


def _shared_by_size(plan: dict[str, Any]) -> list[dict[str, Any]]:
    shared = [g for g in plan["groups"] if g["public_prompt"] is not None]
    return sorted(shared, key=lambda g: (-len(g["members"]), g["group_id"]))


def _mean_similarity(plan: dict[str, Any], g: dict[str, Any]) -> float:
    sims = {u["user_id"]: u["similarity"] for u in plan["users"]}
    return float(np.mean([sims[m] for m in g["members"]]))


def quality_curves(plan: dict[str, Any], hiqm: Any,
                   settings: ChartSettings = SETTINGS) -> pd.DataFrame:
    """HIQM quality against common steps ``0 .. common_steps_max``: a column per shared group
    (the ``max_curves`` largest), named ``"g1: 16 users, s=0.62"``, evaluated at the mean
    similarity of its members, and ``"other N groups (mean)"`` for the rest, weighted by size."""
    x_max = int(plan.get("scenario", {}).get("common_steps_max", 13))
    xs = np.arange(0, x_max + 1)
    data: dict[str, Any] = {"common_steps": xs}
    shared = _shared_by_size(plan)
    for g in shared[: settings.max_curves]:
        s = _mean_similarity(plan, g)
        data[f"{g['group_id']}: {len(g['members'])} users, s={s:.2f}"] = np.asarray(
            hiqm.predict(s, xs), dtype=float)
    rest = shared[settings.max_curves:]
    if rest:
        weights = np.array([len(g["members"]) for g in rest], dtype=float)
        curves = np.array([np.asarray(hiqm.predict(_mean_similarity(plan, g), xs), dtype=float)
                           for g in rest])
        label = f"other {len(rest)} groups ({int(weights.sum())} users, mean)"
        data[label] = weights @ curves / weights.sum()
    if len(data) == 1:  # no shared group: the model at its similarity range's ends
        lo, hi = getattr(hiqm, "similarity_range", (0.2, 0.7))
        for s in (lo, hi):
            data[f"s={s:.2f}"] = np.asarray(hiqm.predict(s, xs), dtype=float)
    return pd.DataFrame(data)


def chosen_points(plan: dict[str, Any], hiqm: Any,
                  settings: ChartSettings = SETTINGS) -> pd.DataFrame:
    """The chosen common steps of each drawn group and its quality there."""
    rows = []
    for g in _shared_by_size(plan)[: settings.max_curves]:
        s = _mean_similarity(plan, g)
        rows.append({"group": g["group_id"], "common_steps": g["common_steps"],
                     "quality": float(np.asarray(hiqm.predict(s, g["common_steps"])))})
    return pd.DataFrame(rows, columns=["group", "common_steps", "quality"])


def axis_range(values: np.ndarray, settings: ChartSettings = SETTINGS) -> tuple[float, float]:
    """Axis ends around ``values``: padded by ``axis_pad`` of their range, rounded outwards to
    ``axis_step``, at least two steps apart."""
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    pad = max((hi - lo) * settings.axis_pad, settings.axis_step / 2)
    step = settings.axis_step
    a, b = math.floor((lo - pad) / step) * step, math.ceil((hi + pad) / step) * step
    if b - a < 2 * step:
        b = a + 2 * step
    return round(a, 10), round(b, 10)


def histogram(values: np.ndarray, bins: int, fmt: str) -> pd.DataFrame:
    """Counts of ``values`` in ``bins`` equal bins, labelled by their lower edge (``fmt``)."""
    values = np.asarray(values, dtype=float)
    lo, hi = float(values.min()), float(values.max())
    if hi - lo < 1e-12:
        return pd.DataFrame({"bin": [format(lo, fmt)], "users": [len(values)]})
    counts, edges = np.histogram(values, bins=bins, range=(lo, hi))
    labels = [format(a, fmt) for a in edges[:-1]]
    return pd.DataFrame({"bin": labels, "users": counts.astype(int)})


_DATA_WIDTH = 16.0  # column width on the chart data sheet (characters)


class _DataSheet:
    """Blocks of chart data written one under another, each with a title and a header."""

    def __init__(self, ws: Any) -> None:
        self.ws, self.row = ws, 1

    def block(self, title: str, frame: pd.DataFrame, labels: list[str],
              formats: list[str | None]) -> tuple[int, int]:
        """Write ``frame``; returns (header row, last row)."""
        from openpyxl.styles import Alignment, Font
        from openpyxl.utils import get_column_letter

        put(self.ws, self.row, 1, title).font = Font(name=FONT, bold=True)
        head = self.row + 1
        for j, label in enumerate(labels):
            c = put(self.ws, head, j + 1, label)
            c.font = Font(name=FONT, bold=True)
            c.alignment = Alignment(wrap_text=True, vertical="top")
            self.ws.column_dimensions[get_column_letter(j + 1)].width = _DATA_WIDTH
        # a wrapped header gets the rows it needs (spreadsheets do not grow rows themselves)
        lines = max(line_count(label, _DATA_WIDTH) for label in labels)
        self.ws.row_dimensions[head].height = LINE_PT * lines + 4
        for i, rec in enumerate(frame.itertuples(index=False)):
            for j, v in enumerate(rec):
                v = v.item() if isinstance(v, np.generic) else v
                put(self.ws, head + 1 + i, j + 1, v, formats[min(j, len(formats) - 1)])
        self.row = head + len(frame) + 3
        return head, head + len(frame)


_PALETTE = ("1F77B4", "FF7F0E", "2CA02C", "D62728", "9467BD", "8C564B", "E377C2", "17BECF")
_GREY = "7F7F7F"


def _rich(text: str, size: int, bold: bool = True) -> Any:
    """A chart or axis title of ``size`` hundredths of a point."""
    from openpyxl.chart.text import RichText, Text
    from openpyxl.chart.title import Title
    from openpyxl.drawing.text import (
        CharacterProperties,
        Paragraph,
        ParagraphProperties,
        RegularTextRun,
    )

    props = CharacterProperties(sz=size, b=bold)
    para = Paragraph(pPr=ParagraphProperties(defRPr=props), r=[RegularTextRun(rPr=props, t=text)])
    return Title(tx=Text(rich=RichText(p=[para])), overlay=False)


def _titles(chart: Any, title: str, x: str, y: str) -> None:
    chart.title = _rich(title, 1200)
    chart.x_axis.title = _rich(x, 900)
    chart.y_axis.title = _rich(y, 900)


def _size(chart: Any, cm: tuple[float, float]) -> None:
    chart.width, chart.height = cm
    for axis in (chart.x_axis, chart.y_axis):
        axis.delete = False


def _quality_chart(ds: _DataSheet, plan: dict[str, Any], hiqm: Any,
                   settings: ChartSettings) -> Any:
    from openpyxl.chart import Reference, ScatterChart, Series
    from openpyxl.chart.shapes import GraphicalProperties

    curves = quality_curves(plan, hiqm, settings)
    points = chosen_points(plan, hiqm, settings)
    head, last = ds.block("Predicted quality against common steps (HIQM)", curves,
                          ["Common steps x", *curves.columns[1:]], ["0", "0.0000"])
    chart = ScatterChart()
    _titles(chart, "Predicted quality against common steps x (black diamonds: the chosen x)",
            "common steps x (run once for the whole group)", "predicted quality (CLIP score)")
    xref = Reference(ds.ws, min_col=1, min_row=head + 1, max_row=last)
    for j in range(1, curves.shape[1]):
        series = Series(Reference(ds.ws, min_col=j + 1, min_row=head, max_row=last), xref,
                        title_from_data=True)
        series.marker.symbol = "none"
        series.smooth = False
        rest = str(curves.columns[j]).startswith("other ")
        color = _GREY if rest else _PALETTE[(j - 1) % len(_PALETTE)]
        series.graphicalProperties.line.solidFill = color
        series.graphicalProperties.line.width = 22000
        if rest:
            series.graphicalProperties.line.dashStyle = "dash"
        chart.series.append(series)
    values = curves.iloc[:, 1:].to_numpy().ravel()
    if len(points):
        p_head, p_last = ds.block("Chosen common steps of the groups drawn", points,
                                  ["Group", "Chosen x", "Quality at the chosen x"], [None, "0", "0.0000"])
        series = Series(Reference(ds.ws, min_col=3, min_row=p_head, max_row=p_last),
                        Reference(ds.ws, min_col=2, min_row=p_head + 1, max_row=p_last),
                        title_from_data=True)
        series.marker.symbol = "diamond"
        series.marker.size = 9
        series.marker.graphicalProperties = GraphicalProperties(solidFill="000000")
        series.marker.graphicalProperties.line.solidFill = "000000"
        series.graphicalProperties.line.noFill = True
        chart.series.append(series)
        values = np.concatenate([values, points["quality"].to_numpy()])
    chart.y_axis.scaling.min, chart.y_axis.scaling.max = axis_range(values, settings)
    chart.y_axis.number_format = "0.000"
    chart.x_axis.scaling.min, chart.x_axis.scaling.max = 0, int(curves["common_steps"].max())
    chart.x_axis.majorUnit = 1
    chart.legend.position = "r"
    _size(chart, settings.wide_cm)
    return chart


def _server_chart(ds: _DataSheet, plan: dict[str, Any], settings: ChartSettings) -> Any:
    from openpyxl.chart import BarChart, Reference

    servers = pd.DataFrame([(s["name"], s.get("gpu_time_s"), s.get("budget_s"))
                            for s in plan.get("servers", [])], columns=["server", "used", "budget"])
    head, last = ds.block("GPU time per server", servers,
                          ["Server", "GPU time used (s)", "GPU budget (s)"], [None, "0.00"])
    chart = BarChart()
    chart.type = "col"
    chart.grouping = "clustered"
    _titles(chart, "GPU time per server against its budget", "edge server",
            "GPU time per round (s)")
    chart.add_data(Reference(ds.ws, min_col=2, max_col=3, min_row=head, max_row=last),
                   titles_from_data=True)
    chart.set_categories(Reference(ds.ws, min_col=1, min_row=head + 1, max_row=last))
    for series, color in zip(chart.series, (_PALETTE[0], _GREY), strict=True):
        series.graphicalProperties.solidFill = color
    chart.y_axis.scaling.min = 0
    chart.legend.position = "b"
    _size(chart, settings.small_cm)
    return chart


def _histogram_chart(ds: _DataSheet, title: str, axis: str, frame: pd.DataFrame,
                     settings: ChartSettings) -> Any:
    from openpyxl.chart import BarChart, Reference

    head, last = ds.block(title, frame, [axis, "Users"], [None, "0"])
    chart = BarChart()
    chart.type = "col"
    chart.gapWidth = 15
    _titles(chart, title, axis, "users")
    chart.add_data(Reference(ds.ws, min_col=2, min_row=head, max_row=last), titles_from_data=True)
    chart.set_categories(Reference(ds.ws, min_col=1, min_row=head + 1, max_row=last))
    chart.series[0].graphicalProperties.solidFill = _PALETTE[0]
    chart.legend = None
    _size(chart, settings.small_cm)
    return chart


def _baseline_chart(ds: _DataSheet, plan: dict[str, Any], settings: ChartSettings) -> Any:
    from openpyxl.chart import BarChart, Reference

    rows = [("this plan", plan["totals"]["objective"])]
    rows += [(b["name"], b["objective"]) for b in plan.get("baselines", [])
             if b.get("objective") is not None]
    none = [b["name"] for b in plan.get("baselines", []) if b.get("objective") is None]
    head, last = ds.block("Objective of this plan and the baselines",
                          pd.DataFrame(rows, columns=["method", "objective"]),
                          ["Method", "Objective (points)"], [None, "#,##0.0"])
    chart = BarChart()
    chart.type = "col"
    _titles(chart, "Objective: this plan and the baselines (higher is better)",
            "method" + (f" ({', '.join(none)}: no plan, see Baselines)" if none else ""),
            "objective (points)")
    chart.add_data(Reference(ds.ws, min_col=2, min_row=head, max_row=last), titles_from_data=True)
    chart.set_categories(Reference(ds.ws, min_col=1, min_row=head + 1, max_row=last))
    chart.series[0].graphicalProperties.solidFill = _PALETTE[0]
    chart.x_axis.tickLblPos = "low"  # method names under the plot, not over negative bars
    chart.legend = None
    _size(chart, settings.small_cm)
    return chart


def add_charts(charts_ws: Any, data_ws: Any, plan: dict[str, Any], hiqm: Any,
               settings: ChartSettings = SETTINGS) -> None:
    """Write the chart data to ``data_ws`` and place the charts on ``charts_ws``, two rows of
    two small charts under the wide quality chart, each with a caption under it."""
    from openpyxl.styles import Alignment, Font
    from openpyxl.worksheet.pagebreak import Break

    ds = _DataSheet(data_ws)
    users = plan["users"]
    quality = np.array([u["predicted_quality"] for u in users], dtype=float)
    delay = np.array([u["delay_s"] for u in users], dtype=float)
    charts = [
        (_quality_chart(ds, plan, hiqm, settings), "A3"),
        (_server_chart(ds, plan, settings), "A27"),
        (_baseline_chart(ds, plan, settings), "G27"),
        (_histogram_chart(ds, "Predicted quality over the users", "predicted quality (CLIP score), bins from",
                          histogram(quality, settings.histogram_bins, ".3f"), settings), "A44"),
        (_histogram_chart(ds, "Delay over the users", "delay (s), bins from",
                          histogram(delay, settings.histogram_bins, ".1f"), settings), "G44"),
    ]
    put(charts_ws, 1, 1, "Charts (the numbers behind them are on the sheet 'Chart data')").font = \
        Font(name=FONT, bold=True, size=12)
    for chart, anchor in charts:
        charts_ws.add_chart(chart, anchor)
    charts_ws.row_breaks.append(Break(id=26))  # the small charts start on a new page
    n_shared = len(_shared_by_size(plan))
    shown = min(n_shared, settings.max_curves)
    caption = (f"Quality curves: {shown} of {n_shared} shared groups drawn one by one"
               + (f", the other {n_shared - shown} as their size-weighted mean" if
                  n_shared > shown else "") + "; each at its members' mean similarity.")
    put(charts_ws, 25, 1, caption).alignment = Alignment(vertical="top")
    put(charts_ws, 60, 1, f"{len(users)} users; histogram bars count users per bin.")
    for col in "ABCDEFGHIJKLMN":
        charts_ws.column_dimensions[col].width = 11
