"""campaign_performance: one campaign's delivery on one past day, from every source it uses
(issue #16), and what the summary report shows of it.

Sources, each read through its vendor's reporting API (``services/dsp_reporting.py``,
``services/sendgrid.py``, ``services/buffer.py``), the objects taken from the ledger's rows of the
assets that made them (so this module depends on no other asset's value):

- each **DSP**'s line items (``dsp_activation`` rows: vendor id = line item id, payload ``dsp`` and
  ``channel``): impressions, clicks, spend; one report job per DSP and day;
- the **email** sends (``email_send`` rows: the single send ids): delivered, opens, clicks that day;
- the **social** posts (``social_posts`` rows: the Buffer update ids): Buffer reports lifetime
  statistics only, so the day's impressions (reach) and clicks are the day's share of the lifetime
  totals by the post's decay weights (``logic/delivery.social_day_share``), an estimate, labelled so.

Exactly once per (source, object, day): the rows are upserted into ``performance_daily``
(``Ledger.write_performance``), so fetching a day again replaces that day's rows and never adds
any. Nothing is created at a vendor that a person would see, so there are no ledger items and no
teardown stages (``STAGES`` is empty); a report job's own exactly-once is the client's.

A source that fails does not stop the others: its rows are missing for the day, the failure is
named (``PerformanceDay.failures``) and the next materialization of the day fetches it again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from campaign_assets.ledger import Ledger, LedgerRow
from campaign_assets.logic import charts as chart_logic
from campaign_assets.logic import performance as perf
from campaign_assets.logic.delivery import social_day_share
from campaign_assets.services.dsp_reporting import (
    REPORTING_KEYS,
    LineItemQuery,
    report_name,
)
from campaign_assets.spec import CampaignSpec
from campaign_assets.workflows.common import Stage, scope_of

ASSET = "campaign_performance"
LINE_ITEMS, EMAILS, POSTS = "dsp_activation", "email_send", "social_posts"
LINE_ITEM_PREFIX = "line-item:"  # dsp_activation's line item keys (its orders are ``order:<channel>``)
DONE = ("created", "fallback")
STAGES: tuple[Stage, ...] = ()  # reads only: nothing at any vendor to tear down (the rows go with the ledger)


@dataclass
class PerformanceDay:
    """What one day's fetch hands back to the asset."""

    day: dt.date
    rows: pd.DataFrame  # the day's performance_daily rows (every source that answered)
    clients: list[Any]
    failures: list[tuple[str, str]] = field(default_factory=list)  # (source, reason)
    sources: dict[str, int] = field(default_factory=dict)  # source -> objects reported


def _done(ledger: Ledger, spec: CampaignSpec, asset: str) -> list[LedgerRow]:
    return [r for r in ledger.rows(scope_of(spec, asset)).values() if r.status in DONE and r.vendor_id]


def _when(value: Any) -> dt.datetime | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _row(spec: CampaignSpec, day: dt.date, source: str, channel: str, object_id: str, **counts: int) -> dict[str, Any]:
    return {
        "organization": spec.organization, "campaign": spec.id, "day": day, "source": source, "channel": channel,
        "object_id": object_id, "currency": spec.budget.currency, **{k: int(counts.get(k, 0)) for k in perf.METRICS},
    }


def planned_cents(plan: pd.DataFrame, channel: str, day: dt.date) -> int:
    """The plan's budget for ``channel`` on ``day``, in cents (0 outside the flight)."""
    daily = perf.daily_plan(plan)
    match = daily[(daily["channel"] == channel) & (daily["day"] == day)]
    return int(match["planned_cents"].sum())


async def _dsp_rows(spec: CampaignSpec, plan: pd.DataFrame, day: dt.date, dsp: str, rows: list[LedgerRow],
                    resource: Any, out: Path, clients: list[Any]) -> list[dict[str, Any]]:
    queries = [
        LineItemQuery(str(r.vendor_id), str(r.payload.get("channel")), planned_cents(plan, str(r.payload.get("channel")), day))
        for r in rows
    ]
    channel_of = {q.line_item_id: q.channel for q in queries}
    async with resource.session(out) as client:
        clients.append(client)
        name = report_name(f"{spec.organization}/{spec.id}", dsp, day)
        delivered = await client.line_item_delivery(queries, day, name=name)
    return [
        _row(spec, day, dsp, channel_of[d.line_item_id], d.line_item_id,
             impressions=d.impressions, clicks=d.clicks, spend_cents=d.spend_cents)
        for d in delivered
    ]


async def _email_rows(spec: CampaignSpec, day: dt.date, rows: list[LedgerRow], email: Any, out: Path,
                      clients: list[Any]) -> list[dict[str, Any]]:
    found = []
    async with email.session(out) as client:
        clients.append(client)
        for r in rows:
            send_at = _when(r.payload.get("send_at"))
            if send_at is not None and send_at.date() > day:
                continue  # not sent yet on that day
            stats = await client.send_stats(str(r.vendor_id), day)
            found.append(_row(spec, day, "email", "email", str(r.vendor_id),
                              delivered=stats["delivered"], opens=stats["opens"], clicks=stats["clicks"]))
    return found


async def _social_rows(spec: CampaignSpec, day: dt.date, rows: list[LedgerRow], social: Any, out: Path,
                       clients: list[Any]) -> list[dict[str, Any]]:
    found = []
    async with social.session(out) as client:
        clients.append(client)
        for r in rows:
            posted = _when(r.payload.get("scheduled_at"))
            if posted is None or posted.date() > day:
                continue
            post_id = str(r.vendor_id)
            lifetime = await client.post_stats(post_id)
            found.append(_row(
                spec, day, "social", str(r.payload.get("network") or "social"), post_id,
                impressions=social_day_share(post_id, lifetime["reach"], posted.date(), day),
                clicks=social_day_share(post_id, lifetime["clicks"], posted.date(), day),
            ))
    return found


async def fetch_day(
    spec: CampaignSpec,
    plan: pd.DataFrame,
    day: dt.date,
    ledger: Ledger,
    out: Path,
    *,
    reporting: Mapping[str, Any],
    email: Any,
    social: Any,
) -> PerformanceDay:
    """Every source's delivery on ``day``, side by side; the rows are written to
    ``performance_daily`` (one transaction) and returned."""
    clients: list[Any] = []
    jobs: dict[str, Any] = {}
    by_dsp: dict[str, list[LedgerRow]] = {}
    for row in _done(ledger, spec, LINE_ITEMS):
        if row.item_key.startswith(LINE_ITEM_PREFIX):  # not the orders the line items sit in
            by_dsp.setdefault(str(row.payload.get("dsp")), []).append(row)
    for dsp, rows in sorted(by_dsp.items()):
        resource = reporting.get(REPORTING_KEYS.get(dsp, ""))
        if resource is None:
            jobs[dsp] = _refuse(f"no reporting client for DSP {dsp!r}")
            continue
        jobs[dsp] = _dsp_rows(spec, plan, day, dsp, rows, resource, out, clients)
    sends, posts = _done(ledger, spec, EMAILS), _done(ledger, spec, POSTS)
    if sends:
        jobs["email"] = _email_rows(spec, day, sends, email, out, clients)
    if posts:
        jobs["social"] = _social_rows(spec, day, posts, social, out, clients)
    results = await asyncio.gather(*jobs.values(), return_exceptions=True)
    found: list[dict[str, Any]] = []
    failures: list[tuple[str, str]] = []
    sources: dict[str, int] = {}
    for source, result in zip(jobs, results, strict=True):
        if isinstance(result, BaseException):
            if not isinstance(result, Exception):
                raise result
            failures.append((source, f"{type(result).__name__}: {result}"))
        else:
            found += result
            sources[source] = len(result)
    ledger.write_performance(found)
    table = ledger.performance(spec.organization, spec.id, until=day)
    table = table[[perf.as_date(d) == day for d in table["day"]]].reset_index(drop=True)
    return PerformanceDay(day, table, clients, failures, sources)


async def _refuse(reason: str) -> list[dict[str, Any]]:
    raise LookupError(reason)


# ---- what the asset and the report show ----------------------------------------------------------------------
@dataclass(frozen=True)
class Analysis:
    day: dt.date
    pacing: pd.DataFrame
    problems: list[str]
    overspend: list[perf.Overspend]
    charts: dict[str, Path]  # file name -> written file
    section: str  # the report's markdown section
    days_reported: int  # flight days through ``day`` with paid delivery stored
    days_to_date: int  # flight days through ``day``


def reported_days(rows: pd.DataFrame, day: dt.date) -> list[dt.date]:
    """The days through ``day`` with paid delivery stored (a DSP answers every line item, zeros included)."""
    paid = perf.paid(rows)
    return sorted({d for d in (perf.as_date(x) for x in paid["day"]) if d <= day})


def plan_on_days(plan: pd.DataFrame, days: list[dt.date]) -> pd.DataFrame:
    """The plan cut to ``days``: one one-day "week" per channel and day, its planned budget.
    Pacing against it compares spend with the plan of the days actually reported, so a single
    fetched day (a manual run, the first day of a backfill) is judged on that day, not on days
    nobody asked for yet."""
    daily = perf.daily_plan(plan)
    daily = daily[daily["day"].isin(days)]
    dsp = dict(zip(plan["channel"], plan["dsp"] if "dsp" in plan else [""] * len(plan), strict=True))
    rows = [
        {"channel": c, "dsp": dsp.get(c, ""), "week_start": d, "week_end": d, "budget": cents / 100}
        for c, d, cents in zip(daily["channel"], daily["day"], daily["planned_cents"], strict=True)
    ]
    if not rows:  # nothing reported yet: every channel, nothing planned to date
        rows = [{"channel": c, "dsp": dsp.get(c, ""), "week_start": dt.date.min, "week_end": dt.date.min, "budget": 0}
                for c in dict.fromkeys(plan["channel"])]
    return pd.DataFrame(rows)


def pacing_table(plan: pd.DataFrame, rows: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    """``logic/performance.pacing`` over the reported days, with each channel's whole plan total."""
    table = perf.pacing(plan_on_days(plan, reported_days(rows, day)), rows, day)
    totals = perf.plan_to_date(plan, dt.date.max).set_index("channel")["plan_total_cents"]
    table["plan_total_cents"] = [int(totals.get(c, 0)) for c in table["channel"]]
    return table


def pacing_markdown(table: pd.DataFrame, currency: str) -> str:
    """The pacing table as markdown: planned (on the reported days) and spent, pacing, verdict."""
    lines = [
        f"| channel | plan total ({currency}) | planned to date ({currency}) | spent to date ({currency}) | pacing | within ±15% |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in table.itertuples():
        ratio = "—" if pd.isna(r.pacing) else f"{r.pacing:.1%}"
        verdict = "not measured" if not r.measured else ("yes" if r.within else "**no**")
        lines.append(
            f"| {r.channel} | {r.plan_total_cents / 100:,.2f} | {r.planned_to_date_cents / 100:,.2f} "
            f"| {r.spent_to_date_cents / 100:,.2f} | {ratio} | {verdict} |"
        )
    return "\n".join(lines)


def _section(spec: CampaignSpec, plan: pd.DataFrame, rows: pd.DataFrame, analysis: dict[str, Any]) -> str:
    day, currency, table = analysis["day"], spec.budget.currency, analysis["pacing"]
    cpc = perf.cost_per_click(rows, day).set_index("channel")
    lines = [
        f"## Performance through {day.isoformat()}",
        "",
        (f"Delivery reported for {analysis['days_reported']} of {analysis['days_to_date']} flight days to date; "
         "planned to date counts those days."),
        "",
        pacing_markdown(table, currency),
    ]
    if not cpc.empty:
        lines += ["", f"| channel | clicks | CTR | CPC ({currency}) |", "| --- | ---: | ---: | ---: |"]
        for channel, r in cpc.iterrows():
            ctr = "—" if pd.isna(r["ctr"]) else f"{r['ctr']:.2%}"
            cost = "—" if pd.isna(r["cpc_cents"]) else f"{r['cpc_cents'] / 100:,.2f}"
            lines.append(f"| {channel} | {int(r['clicks']):,} | {ctr} | {cost} |")
    email = perf.email_totals(rows, day)
    if email["delivered"]:
        lines += ["", f"Email: {email['delivered']:,} delivered, {email['opens']:,} opens, {email['clicks']:,} clicks."]
    if analysis["problems"]:
        lines += ["", "**Pacing outside ±15% of plan:**", ""] + [f"- {p}" for p in analysis["problems"]]
    if analysis["overspend"]:
        lines += ["", "**Spend above plan:**", ""] + [f"- {o.describe(currency)}" for o in analysis["overspend"]]
    if analysis["refs"]:
        lines += ["", "### Charts", ""] + [f"![{alt}]({ref})" for alt, ref in analysis["refs"].items()]
    shifts = perf.recommend_shifts(plan, rows, day)
    lines += ["", "### Budget suggestion", ""]
    if shifts:
        lines += [s.explain(currency) for s in shifts] + ["", "_A suggestion only: nothing changes until someone edits the plan._"]
    else:
        lines.append("No shift suggested: that takes two paid channels with enough clicks to judge, costs per click "
                     "far enough apart, and budget still to come.")
    return "\n".join(lines) + "\n"


def analyse(spec: CampaignSpec, plan: pd.DataFrame, ledger: Ledger, day: dt.date, out: Path) -> Analysis:
    """Pacing (over the reported days), overspend (against the whole plan) and charts through
    ``day`` from the stored rows; the charts are written to ``performance/<day>/`` under the
    campaign folder, which the report links by that relative path."""
    rows = ledger.performance(spec.organization, spec.id, until=day)
    currency = spec.budget.currency
    table = pacing_table(plan, rows, day)
    folder = out / "performance" / day.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, png in chart_logic.render_charts(plan, rows, day, currency).items():
        path = folder / name
        path.write_bytes(png)
        written[name] = path
    flight_days = perf.daily_plan(plan)["day"]
    parts = {
        "day": day, "pacing": table, "problems": perf.pacing_problems(table, currency),
        "overspend": perf.overspend(plan, rows, day),
        "refs": {chart_logic.CHARTS[name]: f"performance/{day.isoformat()}/{name}" for name in written},
        "days_reported": len(reported_days(rows, day)),
        "days_to_date": len({d for d in flight_days if d <= day}),
    }
    return Analysis(day, table, parts["problems"], parts["overspend"], written, _section(spec, plan, rows, parts),
                    parts["days_reported"], parts["days_to_date"])


def latest_section(spec: CampaignSpec, plan: pd.DataFrame, ledger: Ledger, out: Path) -> str:
    """The summary report's performance section through the latest day fetched ("" before any)."""
    rows = ledger.performance(spec.organization, spec.id)
    if rows.empty:
        return ""
    day = max(perf.as_date(d) for d in rows["day"])
    return analyse(spec, plan, ledger, day, out).section
