"""Stand-in engagement numbers for objects that never really went out (issue #16).

The vendor sandbox and the local backends report statistics for sends and posts no reader
ever saw. The rule: the numbers are a stable hash of (object id, day, field), so one object
reads the same all day, the next day reads differently, and every process agrees; and they
are consistent with one another (unique ≤ total, clicks ≤ opens, delivered + bounces =
requests). No randomness, no clock: the caller passes the day.
"""

from __future__ import annotations

import hashlib

EMAIL_FIELDS = (
    "bounce_drops", "bounces", "clicks", "delivered", "invalid_emails", "opens", "requests",
    "spam_report_drops", "spam_reports", "unique_clicks", "unique_opens", "unsubscribes",
)
SOCIAL_FIELDS = ("reach", "clicks", "retweets", "favorites", "mentions")


def _draw(object_id: str, day: str, field: str, high: int) -> int:
    """A stable integer in ``[0, high]`` for (object, day, field)."""
    digest = hashlib.sha256(f"{object_id}:{day}:{field}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % (max(high, 0) + 1)


def email_stats(object_id: str, day: str) -> dict[str, int]:
    """A single send's totals (SendGrid's stats fields) for ``day`` (ISO date)."""
    requests = 500 + _draw(object_id, day, "requests", 4500)
    bounces = _draw(object_id, day, "bounces", requests // 50)
    delivered = requests - bounces
    unique_opens = _draw(object_id, day, "unique_opens", delivered // 2)
    unique_clicks = _draw(object_id, day, "unique_clicks", unique_opens // 4)
    counts = dict.fromkeys(EMAIL_FIELDS, 0)
    counts.update(
        requests=requests,
        bounces=bounces,
        delivered=delivered,
        unique_opens=unique_opens,
        opens=unique_opens + _draw(object_id, day, "opens", unique_opens),
        unique_clicks=unique_clicks,
        clicks=unique_clicks + _draw(object_id, day, "clicks", unique_clicks),
        unsubscribes=_draw(object_id, day, "unsubscribes", 5),
    )
    return counts


def social_stats(object_id: str, day: str) -> dict[str, int]:
    """A post's ``statistics`` (Buffer's fields) for ``day`` (ISO date)."""
    reach = 200 + _draw(object_id, day, "reach", 9800)
    return {
        "reach": reach,
        "clicks": _draw(object_id, day, "clicks", reach // 20),
        "retweets": _draw(object_id, day, "retweets", reach // 100),
        "favorites": _draw(object_id, day, "favorites", reach // 25),
        "mentions": _draw(object_id, day, "mentions", reach // 200),
    }
