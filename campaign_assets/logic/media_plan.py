"""The media plan: channel x week budget, summing to the budget to the cent."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

import pandas as pd

from campaign_assets.spec import CampaignSpec

CENT = Decimal("0.01")
COLUMNS = ["channel", "dsp", "week", "week_start", "week_end", "days", "budget"]


def flight_weeks(start: dt.date, end: dt.date) -> list[tuple[dt.date, dt.date]]:
    """Consecutive 7-day windows from the flight start; the last may be short."""
    weeks = []
    cursor = start
    while cursor <= end:
        week_end = min(cursor + dt.timedelta(days=6), end)
        weeks.append((cursor, week_end))
        cursor = week_end + dt.timedelta(days=1)
    return weeks


def allocate(total: Decimal, weights: list[Decimal]) -> list[Decimal]:
    """Split ``total`` by ``weights`` into cents that add up exactly
    (largest-remainder method, ties to the earliest line)."""
    cents = int((total / CENT).to_integral_value(ROUND_HALF_UP))
    weight_sum = sum(weights)
    raw = [Decimal(cents) * w / weight_sum for w in weights]
    floors = [int(r) for r in raw]
    leftover = cents - sum(floors)
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - floors[i]), i))
    for i in order[:leftover]:
        floors[i] += 1
    return [Decimal(c) * CENT for c in floors]


def build_media_plan(spec: CampaignSpec) -> pd.DataFrame:
    """One row per channel and flight week; budget pro rata to days in the week."""
    total = Decimal(str(spec.budget.total))
    channel_budgets = allocate(total, [Decimal(str(c.share)) for c in spec.channels])
    weeks = flight_weeks(spec.flight.start, spec.flight.end)
    rows = []
    for channel, budget in zip(spec.channels, channel_budgets):
        days = [Decimal((e - s).days + 1) for s, e in weeks]
        for n, ((start, end), amount) in enumerate(zip(weeks, allocate(budget, days)), start=1):
            rows.append(
                dict(
                    channel=channel.name,
                    dsp=channel.dsp or "",
                    week=n,
                    week_start=start.isoformat(),
                    week_end=end.isoformat(),
                    days=(end - start).days + 1,
                    budget=float(amount),
                )
            )
    return pd.DataFrame(rows, columns=COLUMNS)


def plan_total_cents(plan: pd.DataFrame) -> int:
    return int(sum(round(Decimal(str(b)) / CENT) for b in plan["budget"]))


def channel_summary(plan: pd.DataFrame) -> pd.DataFrame:
    summary = plan.groupby("channel", sort=False).agg(
        dsp=("dsp", "first"), weeks=("week", "count"), budget=("budget", "sum")
    )
    return summary.reset_index()


def plan_markdown(plan: pd.DataFrame, currency: str) -> str:
    """A channel summary people can read in the UI."""
    summary = channel_summary(plan)
    lines = [f"| channel | DSP | weeks | budget ({currency}) |", "| --- | --- | ---: | ---: |"]
    for row in summary.itertuples():
        lines.append(f"| {row.channel} | {row.dsp or '—'} | {row.weeks} | {row.budget:,.2f} |")
    lines.append(f"| **total** | | | **{summary['budget'].sum():,.2f}** |")
    return "\n".join(lines)


def plan_values(plan: pd.DataFrame) -> list[list[str | int | float]]:
    """The header and rows as a spreadsheet range body."""
    return [list(plan.columns)] + plan.astype(object).values.tolist()


def plan_outside_flight(plan: pd.DataFrame, spec: CampaignSpec) -> list[str]:
    """What would make a DSP spend outside the plan: a week outside the
    flight, a negative budget. Empty when the plan is sound."""
    start, end = spec.flight.start.isoformat(), spec.flight.end.isoformat()
    problems = []
    for row in plan.itertuples():
        if row.week_start < start or row.week_end > end or row.week_start > row.week_end:
            problems.append(f"{row.channel} week {row.week}: {row.week_start}..{row.week_end} outside {start}..{end}")
        if row.budget < 0:
            problems.append(f"{row.channel} week {row.week}: negative budget {row.budget}")
    return problems
