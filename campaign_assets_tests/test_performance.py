"""Performance against the plan (logic/performance.py): plan to date, pacing,
overspend, cost per click, budget shifts and the report section."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaign_assets.logic.delivery import media_delivery
from campaign_assets.logic.media_plan import build_media_plan, plan_total_cents
from campaign_assets.logic.performance import (
    TOTAL,
    daily_plan,
    email_totals,
    empty_performance,
    overspend,
    pacing,
    pacing_problems,
    plan_to_date,
    recommend_shifts,
    report_section,
    split_evenly,
)
from campaign_assets.spec import CampaignSpec

PROPS = settings(max_examples=60, deadline=None, database=None)
START = dt.date(2027, 1, 4)


def make_spec(start: dt.date = START, days: int = 84, total: float = 250000, shares: list[float] | None = None,
              dsps: list[str | None] | None = None) -> CampaignSpec:
    shares = shares or [0.35, 0.25, 0.25, 0.15]
    dsps = dsps or ["amazon", None, None, "trade_desk"]
    names = ["display", "search", "social", "video", "native", "audio"]
    channels = [
        {"name": names[i], "share": s, **({"dsp": dsps[i]} if dsps[i] else {})} for i, s in enumerate(shares)
    ]
    return CampaignSpec.model_validate(
        dict(
            id="perf-test", name="Perf", organization="acme", objective="awareness", audience="people",
            brand={"name": "Acme"}, budget={"total": total, "currency": "USD"},
            flight={"start": start, "end": start + dt.timedelta(days=days - 1)},
            channels=channels, vectors=[{"stakeholder_group": "G", "content_types": ["email"]}],
            creative_sizes=["300x250"],
        )
    )


def rows(channel: str, source: str, spends: dict[dt.date, int], clicks: int = 0, impressions: int = 0) -> list[dict[str, Any]]:
    return [
        dict(day=d, source=source, channel=channel, object_id=f"li-{channel}", impressions=impressions,
             clicks=clicks, spend_cents=s, delivered=0, opens=0)
        for d, s in spends.items()
    ]


def spend_exactly_the_plan(plan: pd.DataFrame, until: dt.date, factor: float = 1.0, channels=("display", "video")) -> pd.DataFrame:
    daily = daily_plan(plan)
    out = []
    for channel in channels:
        part = daily[(daily["channel"] == channel) & (daily["day"] <= until)]
        out += rows(channel, "amazon", {d: round(c * factor) for d, c in zip(part["day"], part["planned_cents"], strict=False)})
    return pd.DataFrame(out) if out else empty_performance()


# ---- plan to date ------------------------------------------------------------
flights = st.tuples(
    st.dates(min_value=dt.date(2026, 1, 1), max_value=dt.date(2030, 12, 31)),
    st.integers(min_value=1, max_value=120),
    st.integers(min_value=1, max_value=10**8).map(lambda c: c / 100),
    st.lists(st.integers(min_value=1, max_value=100), min_size=1, max_size=5),
)


def spec_of(flight: tuple[dt.date, int, float, list[int]]) -> CampaignSpec:
    start, days, total, weights = flight
    shares = [w / sum(weights) for w in weights]
    shares[-1] = 1 - sum(shares[:-1])
    return make_spec(start, days, total, shares, [None] * len(shares))


@PROPS
@given(flights, st.integers(min_value=-10, max_value=140))
def test_plan_to_date_never_exceeds_total_and_is_the_total_after_the_flight(flight, offset: int) -> None:
    spec = spec_of(flight)
    plan = build_media_plan(spec)
    day = spec.flight.start + dt.timedelta(days=offset)
    table = plan_to_date(plan, day)
    assert (table["planned_to_date_cents"] <= table["plan_total_cents"]).all()
    assert (table["planned_to_date_cents"] >= 0).all()
    assert int(table["plan_total_cents"].sum()) == plan_total_cents(plan)
    if day >= spec.flight.end:
        assert (table["planned_to_date_cents"] == table["plan_total_cents"]).all()
    if day < spec.flight.start:
        assert (table["planned_to_date_cents"] == 0).all()


@PROPS
@given(flights)
def test_plan_to_date_grows_by_each_days_plan(flight) -> None:
    spec = spec_of(flight)
    plan = build_media_plan(spec)
    daily = daily_plan(plan)
    # Each week's cents are spread over exactly its days, to the cent.
    assert int(daily["planned_cents"].sum()) == plan_total_cents(plan)
    assert set(daily["day"]) == {spec.flight.start + dt.timedelta(days=n) for n in range(spec.flight.days)}
    previous = plan_to_date(plan, spec.flight.start - dt.timedelta(days=1))["planned_to_date_cents"]
    for n in range(0, spec.flight.days, max(1, spec.flight.days // 7)):
        day = spec.flight.start + dt.timedelta(days=n)
        now = plan_to_date(plan, day)["planned_to_date_cents"]
        assert (now >= previous).all()
        previous = now


def test_plan_to_date_prorates_a_week_by_day() -> None:
    plan = build_media_plan(make_spec(total=7000, days=14, shares=[1.0], dsps=["amazon"]))
    # 7000.00 over two weeks of 7 days: 500.00 a day
    assert plan_to_date(plan, START)["planned_to_date_cents"].tolist() == [50000]
    assert plan_to_date(plan, START + dt.timedelta(days=9))["planned_to_date_cents"].tolist() == [500000]
    assert split_evenly(100, 3) == [34, 33, 33]


# ---- pacing -------------------------------------------------------------------
def test_pacing_on_plan_is_within_and_unmeasured_channels_are_not_judged() -> None:
    plan = build_media_plan(make_spec())
    day = START + dt.timedelta(days=20)
    table = pacing(plan, spend_exactly_the_plan(plan, day), day).set_index("channel")
    assert table.loc["display", "pacing"] == pytest.approx(1.0)
    assert table.loc["display", "within"] and table.loc["video", "within"]
    assert not table.loc["search", "measured"] and math.isnan(table.loc["search", "pacing"])
    assert table.loc["search", "within"]
    assert pacing_problems(table.reset_index(), "USD") == []


@pytest.mark.parametrize("factor, within", [(0.80, False), (0.86, True), (1.14, True), (1.20, False)])
def test_pacing_tolerance_is_fifteen_percent_either_way(factor: float, within: bool) -> None:
    plan = build_media_plan(make_spec())
    day = START + dt.timedelta(days=30)
    table = pacing(plan, spend_exactly_the_plan(plan, day, factor), day)
    display = table.set_index("channel").loc["display"]
    assert display["pacing"] == pytest.approx(factor, abs=1e-4)
    assert bool(display["within"]) is within
    problems = pacing_problems(table, "USD")
    if within:
        assert problems == []
    else:
        assert any(p.startswith("display: spent ") and f"{factor:.1%}" in p for p in problems)


def test_delivery_model_paces_within_tolerance() -> None:
    plan = build_media_plan(make_spec())
    day = START + dt.timedelta(days=40)
    daily = daily_plan(plan)
    out = []
    for r in daily.itertuples():
        if r.channel in ("display", "video") and r.day <= day:
            d = media_delivery(f"li-{r.channel}", r.day, r.planned_cents, r.channel)
            out += rows(r.channel, "amazon", {r.day: d.spend_cents}, d.clicks, d.impressions)
    table = pacing(plan, pd.DataFrame(out), day)
    assert table["within"].all()


def test_unplanned_spend_and_spend_before_the_flight_are_flagged() -> None:
    plan = build_media_plan(make_spec())
    early = pd.DataFrame(rows("display", "amazon", {START - dt.timedelta(days=1): 700}))
    table = pacing(plan, early, START - dt.timedelta(days=1))
    assert not table.set_index("channel").loc["display", "within"]
    assert "display: spent 7.00 USD with nothing planned to date" in pacing_problems(table, "USD")

    unplanned = pd.DataFrame(rows("native", "dv360", {START: 500}))
    table = pacing(plan, unplanned, START).set_index("channel")
    assert list(table.index)[-1] == "native"  # after the plan's channels
    native = table.loc["native"]
    assert native["measured"] and not native["within"] and native["plan_total_cents"] == 0


def test_organic_sources_spend_nothing_in_pacing() -> None:
    plan = build_media_plan(make_spec())
    perf = pd.DataFrame(rows("social", "social", {START: 999_999}, clicks=10))
    table = pacing(plan, perf, START).set_index("channel")
    assert table.loc["social", "spent_to_date_cents"] == 0


# ---- overspend ----------------------------------------------------------------
def test_overspend_per_channel_and_in_total() -> None:
    plan = build_media_plan(make_spec(total=1000, days=7, shares=[0.5, 0.5], dsps=["amazon", "dv360"]))
    assert overspend(plan, spend_exactly_the_plan(plan, START + dt.timedelta(days=6), channels=("display", "search"))) == []
    perf = pd.DataFrame(rows("display", "amazon", {START: 50_001}) + rows("search", "dv360", {START: 50_000}))
    over = overspend(plan, perf)
    assert [(o.channel, o.over_cents) for o in over] == [("display", 1), (TOTAL, 1)]
    assert over[0].describe("EUR") == "display: spent 500.01 EUR, 0.01 EUR above its plan total of 500.00 EUR"
    # Spread between channels: no channel over, the whole plan over.
    perf = pd.DataFrame(rows("display", "amazon", {START: 60_000}) + rows("search", "dv360", {START: 40_001}))
    assert [o.channel for o in overspend(plan, perf)] == ["display", TOTAL]


# ---- budget shifts -------------------------------------------------------------
def cpc_perf(display_cpc_cents: int, video_cpc_cents: int, clicks: int = 1000) -> pd.DataFrame:
    return pd.DataFrame(
        rows("display", "amazon", {START: display_cpc_cents * clicks}, clicks=clicks, impressions=clicks * 100)
        + rows("video", "trade_desk", {START: video_cpc_cents * clicks}, clicks=clicks, impressions=clicks * 100)
    )


def test_shift_moves_from_the_dearest_to_the_cheapest_click_bounded() -> None:
    plan = build_media_plan(make_spec())
    [shift] = recommend_shifts(plan, cpc_perf(300, 100), START)
    assert (shift.from_channel, shift.to_channel) == ("display", "video")
    totals = plan_to_date(plan, START).set_index("channel")
    remaining = int(totals.loc["display", "plan_total_cents"]) - 300 * 1000
    assert shift.from_remaining_cents == remaining
    assert 0 < shift.amount_cents <= remaining * 0.2 and shift.amount_cents % 100 == 0
    assert shift.extra_clicks == round(shift.amount_cents / 100 - shift.amount_cents / 300)
    text = shift.explain("USD")
    assert "display" in text and "video" in text and "3.00 USD" in text and "1.00 USD" in text and "3.0x" in text


@pytest.mark.parametrize(
    "perf",
    [
        cpc_perf(120, 100),  # within 25% of each other
        cpc_perf(300, 100, clicks=10),  # too few clicks to judge
        empty_performance(),
    ],
)
def test_no_shift_without_a_clear_difference(perf: pd.DataFrame) -> None:
    assert recommend_shifts(build_media_plan(make_spec()), perf, START) == []


def test_no_shift_after_the_flight() -> None:
    spec = make_spec()
    assert recommend_shifts(build_media_plan(spec), cpc_perf(300, 100), spec.flight.end) == []


@PROPS
@given(st.integers(min_value=1, max_value=10_000), st.integers(min_value=1, max_value=10_000), st.integers(min_value=0, max_value=90))
def test_shift_never_exceeds_its_bound(a: int, b: int, offset: int) -> None:
    plan = build_media_plan(make_spec())
    day = START + dt.timedelta(days=offset)
    for shift in recommend_shifts(plan, cpc_perf(a, b), day, max_fraction=0.2):
        assert shift.from_cpc_cents >= 1.25 * shift.to_cpc_cents
        assert 0 < shift.amount_cents <= 0.2 * shift.from_remaining_cents


# ---- the report ----------------------------------------------------------------
def test_report_section_has_the_table_charts_and_suggestion() -> None:
    plan = build_media_plan(make_spec())
    day = START + dt.timedelta(days=6)
    perf = pd.concat([spend_exactly_the_plan(plan, day, 0.5), cpc_perf(300, 100)], ignore_index=True)
    perf = pd.concat(
        [perf, pd.DataFrame([dict(day=START, source="email", channel="email", object_id="s1", impressions=0,
                                  clicks=40, spend_cents=0, delivered=1000, opens=250)])],
        ignore_index=True,
    )
    md = report_section(plan, perf, day, "USD", {"Cumulative spend against plan": "charts/performance_spend.png"})
    assert md.startswith(f"## Performance through {day.isoformat()}")
    assert "| display |" in md and "| search |" in md and "not measured" in md
    assert "**Pacing outside ±15% of plan:**" in md  # display at half the plan (plus the CPC rows)
    assert "![Cumulative spend against plan](charts/performance_spend.png)" in md
    assert "Consider moving" in md and "A suggestion only" in md
    assert email_totals(perf, day) == {"delivered": 1000, "opens": 250, "clicks": 40}


def test_report_section_without_delivery() -> None:
    md = report_section(build_media_plan(make_spec()), empty_performance(), START, "USD")
    assert "No shift suggested" in md and "Spend above plan" not in md and "### Charts" not in md
