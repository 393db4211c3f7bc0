"""Performance against the media plan: plan to date, pacing, overspend, cost
per click, budget-shift suggestions and the report's section (issue #16).

Pure functions over two DataFrames:

- the **plan** (``logic/media_plan.py``): one row per channel and flight
  week, ``budget`` in currency units, ``week_start``/``week_end`` (ISO dates or
  dates), ``dsp`` ("" when no DSP runs the channel);
- the **performance** rows (the ``performance_daily`` table, see
  ``Ledger.performance``): ``day``, ``source`` (a DSP name, ``email`` or
  ``social``), ``channel``, ``object_id`` and the counts ``impressions``,
  ``clicks``, ``spend_cents``, ``delivered``, ``opens``.

Money is whole cents (int) throughout. The rules:

- A week's budget is spread over its days to the cent, the odd cents on its
  first days (``daily_plan``); plan to date is the sum through the day,
  inclusive. So plan to date is 0 before the flight, never above the total,
  and the total from the last flight day on.
- Spend counts from the paid sources only (``ORGANIC_SOURCES`` spend
  nothing, and their clicks are not bought).
- Pacing of a channel = spent to date / planned to date; within tolerance
  when ``|pacing - 1| <= PACING_TOLERANCE`` (±15%). A channel no DSP runs
  reports no spend: it is listed as not measured and not judged.
- Overspend: spend to date above a channel's plan total, or all spend above
  the plan's total.
- A budget shift is a suggestion only: from the channel with the highest
  cost per click to the one with the lowest, when the first costs at least
  ``min_ratio`` times the second and both have enough clicks to judge; at
  most ``max_fraction`` of the first's budget still to come, rounded down
  to a whole currency unit. Nothing here changes a plan.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

import pandas as pd

PACING_TOLERANCE = 0.15
ORGANIC_SOURCES = frozenset({"email", "social"})
METRICS = ("impressions", "clicks", "spend_cents", "delivered", "opens")
COLUMNS = ["day", "source", "channel", "object_id", *METRICS]
TOTAL = "all channels"


def empty_performance() -> pd.DataFrame:
    """No delivery yet, with the columns every function here reads."""
    return pd.DataFrame({c: pd.Series(dtype="int64" if c in METRICS else object) for c in COLUMNS})


# ---- helpers -----------------------------------------------------------------
def to_cents(amount: float | Decimal | str) -> int:
    """Currency units to whole cents, exactly for the plan's two decimals."""
    return round(Decimal(str(amount)) * 100)


def money(cents: float, currency: str) -> str:
    """``123456`` -> ``1,234.56 USD``."""
    return f"{cents / 100:,.2f} {currency}"


def as_date(value: dt.date | str | pd.Timestamp) -> dt.date:
    if isinstance(value, pd.Timestamp):
        return value.date()
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def split_evenly(cents: int, days: int) -> list[int]:
    """``cents`` over ``days`` days to the cent, the odd cents on the first days."""
    base, odd = divmod(cents, days)
    return [base + 1] * odd + [base] * (days - odd)


def paid(performance: pd.DataFrame) -> pd.DataFrame:
    """The rows of sources that spend (DSPs), not email or organic social."""
    return performance[~performance["source"].isin(ORGANIC_SOURCES)]


def _until(performance: pd.DataFrame, day: dt.date | None) -> pd.DataFrame:
    if day is None or performance.empty:
        return performance
    return performance[[as_date(d) <= day for d in performance["day"]]]


def _channels(plan: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(plan["channel"]))


# ---- the plan ----------------------------------------------------------------
def daily_plan(plan: pd.DataFrame) -> pd.DataFrame:
    """One row per channel and flight day: ``channel``, ``day`` (a date),
    ``planned_cents``. Each week's cents are spread evenly over its days."""
    rows = []
    for row in plan.itertuples():
        start, end = as_date(row.week_start), as_date(row.week_end)
        days = (end - start).days + 1
        for offset, cents in enumerate(split_evenly(to_cents(row.budget), days)):
            rows.append((row.channel, start + dt.timedelta(days=offset), cents))
    frame = pd.DataFrame(rows, columns=["channel", "day", "planned_cents"])
    return frame.groupby(["channel", "day"], sort=False, as_index=False)["planned_cents"].sum()


def plan_to_date(plan: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    """Per channel (plan order): ``plan_total_cents`` and
    ``planned_to_date_cents`` (the plan's cents through ``day``, inclusive)."""
    daily = daily_plan(plan)
    through = daily[[d <= day for d in daily["day"]]]
    totals = daily.groupby("channel", sort=False)["planned_cents"].sum()
    to_date = through.groupby("channel", sort=False)["planned_cents"].sum()
    channels = _channels(plan)
    return pd.DataFrame(
        {
            "channel": channels,
            "plan_total_cents": [int(totals.get(c, 0)) for c in channels],
            "planned_to_date_cents": [int(to_date.get(c, 0)) for c in channels],
        }
    )


def spent_to_date(performance: pd.DataFrame, day: dt.date | None = None) -> dict[str, int]:
    """Paid spend per channel through ``day`` (all of it without a day)."""
    rows = paid(_until(performance, day))
    return {str(k): int(v) for k, v in rows.groupby("channel", sort=False)["spend_cents"].sum().items()}


def email_totals(performance: pd.DataFrame, day: dt.date | None = None) -> dict[str, int]:
    """The email funnel through ``day``: ``delivered``, ``opens``, ``clicks``."""
    rows = _until(performance, day)
    rows = rows[rows["source"] == "email"]
    return {k: int(rows[k].sum()) for k in ("delivered", "opens", "clicks")}


# ---- pacing and overspend ----------------------------------------------------
PACING_COLUMNS = [
    "channel", "measured", "plan_total_cents", "planned_to_date_cents", "spent_to_date_cents", "pacing", "within",
]


def pacing(
    plan: pd.DataFrame,
    performance: pd.DataFrame,
    day: dt.date,
    *,
    tolerance: float = PACING_TOLERANCE,
    measured: Iterable[str] | None = None,
) -> pd.DataFrame:
    """The pacing table through ``day``: one row per plan channel, then any
    channel that spent without a plan line (never within).

    ``measured``: the channels that report spend; by default those the plan
    gives a DSP plus any that reported spend. The others are listed with
    ``measured`` False, ``pacing`` NaN and ``within`` True (not judged).
    ``pacing`` is NaN when nothing was planned yet; ``within`` then means
    nothing was spent either."""
    base = plan_to_date(plan, day)
    spent = spent_to_date(performance, day)
    if measured is None:
        with_dsp = plan.loc[plan.get("dsp", pd.Series("", index=plan.index)).fillna("") != "", "channel"]
        measured_set = set(with_dsp) | {c for c, v in spent.items() if v}
    else:
        measured_set = set(measured)
    unplanned = [c for c in spent if c not in set(base["channel"]) and spent[c]]
    rows = []
    for channel, total, planned in zip(base["channel"], base["plan_total_cents"], base["planned_to_date_cents"], strict=False):
        rows.append((channel, int(total), int(planned), spent.get(channel, 0)))
    rows += [(c, 0, 0, spent[c]) for c in unplanned]
    out = []
    for channel, total, planned, spend in rows:
        is_measured = channel in measured_set
        ratio = spend / planned if planned and is_measured else math.nan
        if not is_measured:
            within = True
        elif planned:
            within = abs(ratio - 1.0) <= tolerance + 1e-12
        else:
            within = spend == 0
        out.append((channel, is_measured, total, planned, spend, ratio, within))
    return pd.DataFrame(out, columns=PACING_COLUMNS)


def pacing_problems(table: pd.DataFrame, currency: str, tolerance: float = PACING_TOLERANCE) -> list[str]:
    """One line with the numbers per measured channel outside tolerance."""
    problems = []
    for row in table[table["measured"] & ~table["within"]].itertuples():
        spent, planned = money(row.spent_to_date_cents, currency), money(row.planned_to_date_cents, currency)
        if row.planned_to_date_cents:
            problems.append(
                f"{row.channel}: spent {spent} of {planned} planned to date "
                f"({row.pacing:.1%}, outside ±{tolerance:.0%})"
            )
        else:
            problems.append(f"{row.channel}: spent {spent} with nothing planned to date")
    return problems


@dataclass(frozen=True)
class Overspend:
    channel: str  # a channel, or ``TOTAL`` for the whole plan
    plan_total_cents: int
    spent_cents: int

    @property
    def over_cents(self) -> int:
        return self.spent_cents - self.plan_total_cents

    def describe(self, currency: str) -> str:
        return (
            f"{self.channel}: spent {money(self.spent_cents, currency)}, "
            f"{money(self.over_cents, currency)} above its plan total of {money(self.plan_total_cents, currency)}"
        )


def overspend(plan: pd.DataFrame, performance: pd.DataFrame, day: dt.date | None = None) -> list[Overspend]:
    """Every channel whose spend (through ``day``, or all) is above its plan
    total, then the whole plan if all spend is above the plan's total."""
    totals = plan_to_date(plan, dt.date.max)
    plan_totals = dict(zip(totals["channel"], totals["plan_total_cents"], strict=False))
    spent = spent_to_date(performance, day)
    found = [
        Overspend(channel, int(plan_totals.get(channel, 0)), cents)
        for channel, cents in spent.items()
        if cents > plan_totals.get(channel, 0)
    ]
    whole = Overspend(TOTAL, int(sum(plan_totals.values())), sum(spent.values()))
    return found + ([whole] if whole.over_cents > 0 else [])


# ---- cost per click and budget shifts ----------------------------------------
def cost_per_click(performance: pd.DataFrame, day: dt.date | None = None) -> pd.DataFrame:
    """Paid delivery per channel through ``day``: ``spend_cents``,
    ``impressions``, ``clicks``, ``ctr`` (clicks / impressions) and
    ``cpc_cents`` (spend / clicks; NaN without clicks)."""
    rows = paid(_until(performance, day))
    sums = rows.groupby("channel", sort=False)[["spend_cents", "impressions", "clicks"]].sum().reset_index()
    sums = sums.astype({"spend_cents": "int64", "impressions": "int64", "clicks": "int64"})
    sums["ctr"] = [c / i if i else math.nan for c, i in zip(sums["clicks"], sums["impressions"], strict=False)]
    sums["cpc_cents"] = [s / c if c else math.nan for s, c in zip(sums["spend_cents"], sums["clicks"], strict=False)]
    return sums[["channel", "spend_cents", "impressions", "clicks", "ctr", "cpc_cents"]]


@dataclass(frozen=True)
class Shift:
    """A suggestion: move ``amount_cents`` of ``from_channel``'s budget still
    to come to ``to_channel``. It changes nothing by itself."""

    from_channel: str
    to_channel: str
    amount_cents: int
    from_cpc_cents: float
    to_cpc_cents: float
    from_remaining_cents: int

    @property
    def extra_clicks(self) -> int:
        """Clicks the amount would buy at the cheaper channel's CPC beyond what
        it buys at the dearer one's, if both CPCs held."""
        return round(self.amount_cents / self.to_cpc_cents - self.amount_cents / self.from_cpc_cents)

    def explain(self, currency: str) -> str:
        ratio = self.from_cpc_cents / self.to_cpc_cents
        return (
            f"Consider moving {money(self.amount_cents, currency)} of {self.from_channel}'s remaining "
            f"{money(self.from_remaining_cents, currency)} to {self.to_channel}: a click has cost "
            f"{money(self.from_cpc_cents, currency)} on {self.from_channel} and "
            f"{money(self.to_cpc_cents, currency)} on {self.to_channel} ({ratio:.1f}x); at those costs the "
            f"amount buys about {self.extra_clicks:,} more clicks."
        )


def recommend_shifts(
    plan: pd.DataFrame,
    performance: pd.DataFrame,
    day: dt.date,
    *,
    max_fraction: float = 0.2,
    min_ratio: float = 1.25,
    min_clicks: int = 50,
) -> list[Shift]:
    """At most one suggestion: from the highest-CPC channel to the lowest,
    among paid channels with at least ``min_clicks`` clicks through ``day``,
    when the highest is at least ``min_ratio`` times the lowest. The amount
    is ``max_fraction`` of the dearer channel's budget still to come (plan
    total less the larger of planned and spent to date), rounded down to a
    whole currency unit; none when that is zero (e.g. after the flight)."""
    cpc = cost_per_click(performance, day)
    cpc = cpc[(cpc["clicks"] >= max(1, min_clicks)) & (cpc["spend_cents"] > 0)]
    if len(cpc) < 2:
        return []
    ranked = cpc.sort_values(["cpc_cents", "channel"], kind="stable")
    low, high = ranked.iloc[0], ranked.iloc[-1]
    if high["cpc_cents"] < min_ratio * low["cpc_cents"]:
        return []
    base = plan_to_date(plan, day).set_index("channel")
    if high["channel"] not in base.index:
        return []
    spent = spent_to_date(performance, day).get(high["channel"], 0)
    line = base.loc[high["channel"]]
    remaining = max(0, int(line["plan_total_cents"]) - max(int(line["planned_to_date_cents"]), spent))
    amount = int(remaining * max_fraction) // 100 * 100
    if amount <= 0:
        return []
    return [
        Shift(
            from_channel=str(high["channel"]),
            to_channel=str(low["channel"]),
            amount_cents=amount,
            from_cpc_cents=float(high["cpc_cents"]),
            to_cpc_cents=float(low["cpc_cents"]),
            from_remaining_cents=remaining,
        )
    ]


# ---- the report --------------------------------------------------------------
def _pct(value: float) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:.1%}"


def report_section(
    plan: pd.DataFrame,
    performance: pd.DataFrame,
    day: dt.date,
    currency: str,
    charts: Mapping[str, str] | None = None,
    *,
    tolerance: float = PACING_TOLERANCE,
) -> str:
    """The summary report's performance section (markdown): the pacing table
    with clicks and CPC, spend above plan, the chart images (``charts``: alt
    text -> path or URI) and the budget-shift suggestion with its numbers."""
    table = pacing(plan, performance, day, tolerance=tolerance)
    cpc = cost_per_click(performance, day).set_index("channel")
    lines = [
        f"## Performance through {day.isoformat()}",
        "",
        f"| channel | planned to date ({currency}) | spent to date ({currency}) | pacing | clicks | CPC ({currency}) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in table.itertuples():
        clicks = int(cpc.loc[row.channel, "clicks"]) if row.channel in cpc.index else 0
        cost = cpc.loc[row.channel, "cpc_cents"] if row.channel in cpc.index else math.nan
        if not row.measured:
            verdict = "not measured"
        else:
            verdict = _pct(row.pacing) + ("" if row.within else " ⚠")
        lines.append(
            f"| {row.channel} | {row.planned_to_date_cents / 100:,.2f} | {row.spent_to_date_cents / 100:,.2f} "
            f"| {verdict} | {clicks:,} | {'—' if math.isnan(cost) else f'{cost / 100:,.2f}'} |"
        )
    problems = pacing_problems(table, currency, tolerance)
    if problems:
        lines += ["", f"**Pacing outside ±{tolerance:.0%} of plan:**", ""] + [f"- {p}" for p in problems]
    over = overspend(plan, performance, day)
    if over:
        lines += ["", "**Spend above plan:**", ""] + [f"- {o.describe(currency)}" for o in over]
    if charts:
        lines += ["", "### Charts", ""] + [f"![{alt}]({ref})" for alt, ref in charts.items()]
    shifts = recommend_shifts(plan, performance, day)
    lines += ["", "### Budget suggestion", ""]
    if shifts:
        lines += [s.explain(currency) for s in shifts]
        lines += ["", "_A suggestion only: nothing changes until someone edits the plan._"]
    else:
        lines.append(
            "No shift suggested: that takes two paid channels with enough clicks to judge, costs per click "
            "far enough apart, and budget still to come."
        )
    return "\n".join(lines) + "\n"
