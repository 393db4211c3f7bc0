"""The deterministic delivery model (logic/delivery.py): stable, bounded, ordered funnels."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from campaign_assets.logic.delivery import (
    MEDIA_PROFILES,
    SPEND_NOISE,
    SPREAD_DAYS,
    Delivery,
    email_day,
    email_funnel,
    media_delivery,
    social_day,
    social_post,
    spread_total,
    unit,
)

PROPS = settings(max_examples=200, deadline=None, database=None)
keys = st.text(min_size=1, max_size=30)
days = st.dates(min_value=dt.date(2020, 1, 1), max_value=dt.date(2035, 12, 31))
kinds = st.sampled_from([*MEDIA_PROFILES, "unknown-kind"])


@PROPS
@given(keys, days, st.integers(min_value=1, max_value=10**9), kinds)
def test_media_spend_follows_the_budget_within_the_noise(key: str, day: dt.date, planned: int, kind: str) -> None:
    d = media_delivery(key, day, planned, kind)
    assert abs(d.spend_cents - planned) <= planned * SPEND_NOISE + 1
    assert 0 <= d.clicks <= d.impressions
    assert d == media_delivery(key, day, planned, kind)  # the same question, the same answer


@PROPS
@given(keys, days, st.integers(max_value=0), kinds)
def test_no_budget_no_delivery(key: str, day: dt.date, planned: int, kind: str) -> None:
    assert media_delivery(key, day, planned, kind) == Delivery(0, 0, 0)


def test_delivery_varies_by_key_and_day_and_kind_sets_the_rates() -> None:
    day = dt.date(2027, 1, 4)
    spends = {media_delivery(f"li-{n}", day, 100_000, "display").spend_cents for n in range(20)}
    assert len(spends) > 10  # noise, not a constant
    week = {media_delivery("li-1", day + dt.timedelta(days=n), 100_000, "display").spend_cents for n in range(7)}
    assert len(week) > 3
    # Over many days the kinds keep their order of click-through rates.
    totals = {}
    for kind in ("display", "search"):
        ds = [media_delivery("li", day + dt.timedelta(days=n), 1_000_000, kind) for n in range(30)]
        totals[kind] = sum(d.clicks for d in ds) / sum(d.impressions for d in ds)
    assert totals["search"] > 10 * totals["display"]


def test_unit_is_stable_and_in_range() -> None:
    assert unit("a", 1) == unit("a", 1) != unit("a", 2)
    assert all(0 <= unit(n) < 1 for n in range(1000))


@PROPS
@given(keys, st.integers(min_value=-5, max_value=10**8))
def test_email_funnel_narrows(key: str, size: int) -> None:
    f = email_funnel(key, size)
    assert f.sent == max(0, size)
    assert 0 <= f.clicks <= f.opens <= f.delivered <= f.sent


@PROPS
@given(keys, st.integers(min_value=0, max_value=10**7), days)
def test_email_days_add_up_to_the_funnel(key: str, size: int, send_day: dt.date) -> None:
    per_day = [email_day(key, size, send_day, send_day + dt.timedelta(days=n)) for n in range(-2, SPREAD_DAYS + 3)]
    funnel = email_funnel(key, size)
    assert sum(d.delivered for d in per_day) == funnel.delivered
    assert sum(d.opens for d in per_day) == funnel.opens
    assert sum(d.clicks for d in per_day) == funnel.clicks
    before = email_day(key, size, send_day, send_day - dt.timedelta(days=1))
    assert (before.opens, before.delivered) == (0, 0)


@PROPS
@given(keys, st.sampled_from(["linkedin", "twitter", "mastodon", "myspace"]), days)
def test_social_days_add_up_and_stay_ordered(key: str, network: str, posted: dt.date) -> None:
    total = social_post(key, network)
    assert 0 <= total.clicks <= total.engagements <= total.impressions
    per_day = [social_day(key, network, posted, posted + dt.timedelta(days=n)) for n in range(SPREAD_DAYS + 2)]
    assert sum(d.impressions for d in per_day) == total.impressions
    assert sum(d.clicks for d in per_day) == total.clicks
    assert per_day[0].impressions >= per_day[-3].impressions  # most arrives first


@PROPS
@given(st.integers(min_value=0, max_value=10**9), st.lists(st.floats(min_value=0.01, max_value=1), min_size=1, max_size=10))
def test_spread_total_is_exact(total: int, raw: list[float]) -> None:
    weights = [w / sum(raw) for w in raw]
    parts = spread_total(total, weights)
    assert sum(parts) == total and all(p >= 0 for p in parts)
