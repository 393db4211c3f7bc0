"""Performance charts as PNG bytes (issue #16), drawn with matplotlib.

Pure: data in, bytes out; the callers write the files and make UI previews
(``logic/render.thumbnail_uri``). No pyplot: each chart is its own
``matplotlib.figure.Figure`` on an Agg canvas, so nothing global is touched
and charts can be drawn from several threads or steps at once. Every chart is
exactly ``SIZE_PX`` pixels (``DPI`` dots per inch, no tight bounding box), with
a title, labelled axes with units, and a legend.

- ``spend_chart``: cumulative spend per channel (solid) against the plan's
  cumulative budget (dashed, the plan line), in the campaign's currency;
- ``clicks_chart``: daily clicks per channel as grouped bars, and the
  click-through rate per channel as lines on a percent axis (email: clicks
  per delivered email; organic sources are labelled by source);
- ``funnel_chart``: the email funnel, delivered -> opens -> clicks, each bar
  with its count and its share of the deliveries.

Channel colours are fixed by name order, so a channel has one colour in
every chart.
"""

from __future__ import annotations

import datetime as dt
import io
import math
from collections.abc import Sequence

from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

from campaign_assets.logic.performance import (
    ORGANIC_SOURCES,
    as_date,
    daily_plan,
    email_totals,
    pacing,
)

SIZE_PX = (1000, 500)
DPI = 100
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
EMPTY_TEXT = "No delivery reported yet"

# File name -> title (the report's alt text), in the order the report shows them.
CHARTS = {
    "performance_spend.png": "Cumulative spend against plan",
    "performance_clicks.png": "Daily clicks and CTR per channel",
    "performance_email_funnel.png": "Email funnel",
}


# matplotlib is imported where a chart is drawn, not with this module: it is
# imported by the definitions, so by every run worker and code server, and
# matplotlib's import alone was 1.3 of the 2.1 CPU-seconds of loading them.
def _figure() -> tuple[Figure, Axes]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(SIZE_PX[0] / DPI, SIZE_PX[1] / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    figure.set_facecolor("white")
    return figure, figure.add_subplot()


def _png(figure: Figure) -> bytes:
    buf = io.BytesIO()
    figure.savefig(buf, format="png", dpi=DPI, facecolor="white")
    return buf.getvalue()


def colours(names: Sequence[str]) -> dict[str, str]:
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(sorted(set(names)))}


def _money_axis(ax: Axes, currency: str, label: str) -> None:
    from matplotlib.ticker import FuncFormatter

    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
    ax.set_ylabel(f"{label} ({currency})")


def _date_axis(ax: Axes) -> None:
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.set_xlabel("Day")


def _empty(ax: Axes) -> None:
    ax.text(0.5, 0.5, EMPTY_TEXT, transform=ax.transAxes, ha="center", va="center", fontsize=14, color="#555555")


def _label(source: str, channel: str) -> str:
    if source == "email":
        return "email"
    return f"{channel} (organic)" if source in ORGANIC_SOURCES else channel


def spend_chart(plan: pd.DataFrame, performance: pd.DataFrame, day: dt.date, currency: str) -> bytes:
    """Cumulative spend per measured channel through ``day`` against the
    plan's cumulative budget over the whole flight."""
    figure, ax = _figure()
    table = pacing(plan, performance, day)
    measured = [c for c, m in zip(table["channel"], table["measured"], strict=False) if m] or list(table["channel"])
    palette = colours(list(table["channel"]))
    daily = daily_plan(plan)
    spend = performance[~performance["source"].isin(ORGANIC_SOURCES)] if not performance.empty else performance
    for channel in measured:
        planned = daily[daily["channel"] == channel]
        if not planned.empty:
            ax.plot(
                list(planned["day"]), (planned["planned_cents"].cumsum() / 100).tolist(),
                linestyle="--", color=palette[channel], label=f"{channel} plan",
            )
        rows = spend[(spend["channel"] == channel)] if not spend.empty else spend
        if not rows.empty:
            per_day = rows.groupby([as_date(d) for d in rows["day"]])["spend_cents"].sum().sort_index()
            per_day = per_day[[d <= day for d in per_day.index]]
            ax.plot(
                list(per_day.index), (per_day.cumsum() / 100).tolist(),
                linewidth=2.5, marker="o", markersize=4, color=palette[channel], label=f"{channel} spent",  # a lone day shows too
            )
    if daily.empty:
        _empty(ax)
    ax.axvline(day, color="#888888", linewidth=1, linestyle=":")
    ax.set_title(CHARTS["performance_spend.png"] + f" (through {day.isoformat()})")
    _money_axis(ax, currency, "Cumulative spend")
    _date_axis(ax)
    ax.grid(True, axis="y", alpha=0.3)
    figure.legend(loc="outside right upper", fontsize="small")
    return _png(figure)


def clicks_chart(performance: pd.DataFrame, day: dt.date | None = None) -> bytes:
    """Daily clicks per channel (bars) and CTR per channel (lines, percent axis)."""
    figure, ax = _figure()
    rows = performance if day is None or performance.empty else performance[[as_date(d) <= day for d in performance["day"]]]
    ax.set_title(CHARTS["performance_clicks.png"])
    ax.set_ylabel("Clicks per day")
    _date_axis(ax)
    if rows.empty:
        _empty(ax)
        return _png(figure)
    frame = pd.DataFrame(
        {
            "label": [_label(s, c) for s, c in zip(rows["source"], rows["channel"], strict=False)],
            "day": [as_date(d) for d in rows["day"]],
            "clicks": rows["clicks"].astype("int64").to_numpy(),
            # the CTR's denominator: impressions, or deliveries for email
            "seen": [i if i else d for i, d in zip(rows["impressions"], rows["delivered"], strict=False)],
        }
    )
    sums = frame.groupby(["label", "day"], as_index=False)[["clicks", "seen"]].sum()
    labels = sorted(set(sums["label"]))
    palette = colours(labels)
    width = 0.8 / len(labels)
    rate_ax = ax.twinx()
    for i, label in enumerate(labels):
        part = sums[sums["label"] == label].sort_values("day")
        midnight = [dt.datetime.combine(d, dt.time()) for d in part["day"]]
        offset = dt.timedelta(days=(i - (len(labels) - 1) / 2) * width)
        ax.bar([m + offset for m in midnight], part["clicks"], width=width, color=palette[label], label=f"{label} clicks")
        # an email is delivered once and clicked over the following days: its
        # rate is clicks per email delivered so far
        seen = part["seen"].cumsum() if label == "email" else part["seen"]
        rate = [c / s if s else math.nan for c, s in zip(part["clicks"], seen, strict=False)]
        rate_ax.plot(midnight, rate, color=palette[label], marker="o", markersize=3, linewidth=1.5, label=f"{label} CTR")
    from matplotlib.ticker import PercentFormatter

    rate_ax.yaxis.set_major_formatter(PercentFormatter(xmax=1, decimals=1))
    rate_ax.set_ylabel("CTR (%)")
    rate_ax.set_ylim(bottom=0)
    ax.grid(True, axis="y", alpha=0.3)
    handles, names = ax.get_legend_handles_labels()
    rate_handles, rate_names = rate_ax.get_legend_handles_labels()
    figure.legend(handles + rate_handles, names + rate_names, loc="outside right upper", fontsize="small")
    return _png(figure)


def funnel_chart(delivered: int, opens: int, clicks: int) -> bytes:
    """The email funnel: delivered -> opens -> clicks as horizontal bars,
    each labelled with its count and its share of the deliveries."""
    figure, ax = _figure()
    stages = ["Delivered", "Opens", "Clicks"]
    counts = [delivered, opens, clicks]
    ax.set_title(CHARTS["performance_email_funnel.png"])
    ax.set_xlabel("Emails")
    if delivered <= 0:
        _empty(ax)
        return _png(figure)
    bars = ax.barh(stages[::-1], counts[::-1], color=["#9467bd", "#1f77b4", "#2ca02c"][::-1])
    ax.bar_label(bars, labels=[f"{n:,} ({n / delivered:.1%})" for n in counts[::-1]], padding=4)
    ax.set_xlim(0, delivered * 1.2)
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
    return _png(figure)


def render_charts(plan: pd.DataFrame, performance: pd.DataFrame, day: dt.date, currency: str) -> dict[str, bytes]:
    """Every chart of the report, by file name (``CHARTS``); the funnel only
    when the campaign sent email."""
    charts = {
        "performance_spend.png": spend_chart(plan, performance, day, currency),
        "performance_clicks.png": clicks_chart(performance, day),
    }
    email = email_totals(performance, day)
    if email["delivered"]:
        charts["performance_email_funnel.png"] = funnel_chart(email["delivered"], email["opens"], email["clicks"])
    return charts
