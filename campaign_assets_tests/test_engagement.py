"""Stand-in engagement numbers: stable per object and day, and consistent with one another."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from campaign_assets.logic.engagement import EMAIL_FIELDS, SOCIAL_FIELDS, email_stats, social_stats

ids = st.text(min_size=1, max_size=40)
days = st.dates().map(lambda d: d.isoformat())


@given(ids, days)
def test_email_stats_are_stable_and_consistent(object_id: str, day: str) -> None:
    stats = email_stats(object_id, day)
    assert stats == email_stats(object_id, day) and set(stats) == set(EMAIL_FIELDS)
    assert stats["delivered"] + stats["bounces"] == stats["requests"] > 0
    assert 0 <= stats["unique_opens"] <= stats["opens"] and stats["unique_opens"] <= stats["delivered"]
    assert 0 <= stats["unique_clicks"] <= stats["clicks"] and stats["unique_clicks"] <= stats["unique_opens"]


@given(ids, days)
def test_social_stats_are_stable_and_consistent(object_id: str, day: str) -> None:
    stats = social_stats(object_id, day)
    assert stats == social_stats(object_id, day) and set(stats) == set(SOCIAL_FIELDS)
    assert stats["reach"] > 0 and all(0 <= stats[k] <= stats["reach"] for k in SOCIAL_FIELDS)


def test_another_day_or_object_reads_differently() -> None:
    assert email_stats("a", "2031-01-04") != email_stats("a", "2031-01-05")
    assert social_stats("a", "2031-01-04") != social_stats("b", "2031-01-04")
