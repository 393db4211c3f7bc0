"""A deterministic model of what a campaign delivers, day by day (issue #16).

The vendor sandbox (DSP, email and social reporting endpoints) and the local
backends both call these functions, so offline runs, sandbox runs and tests
see the same numbers for the same inputs. Pure: no clock, no I/O, no global
random state. Every bit of "noise" is a stable hash of its inputs
(``unit``): the same line item on the same day always delivers the same.

The rules:

- **Paid media** (``media_delivery``): a line item spends its day's planned
  budget times a factor within ``1 ± SPEND_NOISE``, so delivery follows the
  budget and cumulative pacing stays well inside the ±15% check. Impressions
  are spend over a CPM, clicks impressions times a CTR; both rates come from
  the channel kind's ``MediaProfile`` and vary within their own bounds.
  Clicks never exceed impressions; a day without budget delivers nothing.
- **Email** (``email_funnel``, ``email_day``): one send to a list of N
  addresses: delivered <= N, opens <= delivered, clicks <= opens, each a
  bounded rate. ``email_day`` spreads those totals over the days after the
  send (most on the send day, decaying), exactly: the days sum to the totals.
- **Social** (``social_post``, ``social_day``): an organic post's
  impressions (a network's typical reach, varied) and clicks, spread over the
  days after it went out the same way. No spend.

Rates are round, plausible industry figures (display CTR about 0.1%, search
a few percent, email opens about a quarter of deliveries), not measurements
of any vendor.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from dataclasses import dataclass

SPEND_NOISE = 0.10  # a day's spend is within ±10% of its planned budget
SPREAD_DAYS = 7  # email opens and social engagement arrive over a week


def unit(*parts: object) -> float:
    """A stable number in [0, 1) from ``parts`` (SHA-256 of their text)."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def jitter(spread: float, *parts: object) -> float:
    """A stable factor in [1 - spread, 1 + spread)."""
    return 1.0 + spread * (2.0 * unit(*parts) - 1.0)


@dataclass(frozen=True)
class MediaProfile:
    """Typical rates of a channel kind: cost per thousand impressions (in
    cents) and click-through rate, each varied by ± its spread per day."""

    cpm_cents: float
    ctr: float
    cpm_spread: float = 0.2
    ctr_spread: float = 0.3


MEDIA_PROFILES: dict[str, MediaProfile] = {
    "display": MediaProfile(cpm_cents=300, ctr=0.0010),
    "video": MediaProfile(cpm_cents=1500, ctr=0.0040),
    "ctv": MediaProfile(cpm_cents=3000, ctr=0.0020),
    "audio": MediaProfile(cpm_cents=1200, ctr=0.0008),
    "native": MediaProfile(cpm_cents=500, ctr=0.0030),
    "social": MediaProfile(cpm_cents=800, ctr=0.0090),
    "search": MediaProfile(cpm_cents=4000, ctr=0.0300),
}
DEFAULT_KIND = "display"


def media_profile(kind: str) -> MediaProfile:
    """The profile of a channel kind (its name, e.g. ``display``); an
    unknown kind is treated as display."""
    return MEDIA_PROFILES.get(kind.lower(), MEDIA_PROFILES[DEFAULT_KIND])


@dataclass(frozen=True)
class Delivery:
    impressions: int
    clicks: int
    spend_cents: int


def media_delivery(key: str, day: dt.date, planned_cents: int, kind: str) -> Delivery:
    """One line item's delivery on ``day`` given that day's planned budget.

    ``key`` identifies the line item (its vendor id or item key): two line
    items with the same budget deliver differently, one line item the same
    every time it is asked."""
    if planned_cents <= 0:
        return Delivery(0, 0, 0)
    profile = media_profile(kind)
    spend = round(planned_cents * jitter(SPEND_NOISE, key, day, "spend"))
    cpm = profile.cpm_cents * jitter(profile.cpm_spread, key, day, "cpm")
    impressions = math.floor(spend * 1000 / cpm)
    ctr = profile.ctr * jitter(profile.ctr_spread, key, day, "ctr")
    clicks = min(impressions, round(impressions * ctr))
    return Delivery(impressions=impressions, clicks=clicks, spend_cents=spend)


@dataclass(frozen=True)
class EmailFunnel:
    sent: int
    delivered: int
    opens: int
    clicks: int


# (rate, spread): delivered of sent, opens of delivered, clicks of opens
EMAIL_RATES = {"delivered": (0.97, 0.02), "opens": (0.25, 0.3), "clicks": (0.12, 0.3)}


def email_funnel(key: str, list_size: int) -> EmailFunnel:
    """The whole funnel of one send (``key``: the send or single send id) to
    ``list_size`` addresses. Each stage is at most the one before it."""
    sent = max(0, list_size)
    counts = {"sent": sent}
    previous = sent
    for stage, (rate, spread) in EMAIL_RATES.items():
        previous = min(previous, round(previous * min(1.0, rate * jitter(spread, key, stage))))
        counts[stage] = previous
    return EmailFunnel(**counts)


def decay_weights(key: str, days: int = SPREAD_DAYS) -> list[float]:
    """How a total arrives over ``days`` days from its start: roughly halving
    each day, the rate varied per key. Positive, summing to 1."""
    half_life = 0.8 * jitter(0.25, key, "half-life")
    raw = [0.5 ** (d / half_life) for d in range(days)]
    total = sum(raw)
    return [r / total for r in raw]


def spread_total(total: int, weights: list[float]) -> list[int]:
    """Split a whole ``total`` by ``weights`` into whole parts that add up
    exactly (largest remainder, ties to the earliest day)."""
    raw = [total * w for w in weights]
    floors = [math.floor(r) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - floors[i]), i))
    for i in order[: total - sum(floors)]:
        floors[i] += 1
    return floors


def _day_share(total: int, key: str, start: dt.date, day: dt.date) -> int:
    offset = (day - start).days
    if total <= 0 or not 0 <= offset < SPREAD_DAYS:
        return 0
    return spread_total(total, decay_weights(key))[offset]


def email_day(key: str, list_size: int, send_day: dt.date, day: dt.date) -> EmailFunnel:
    """What the send reported for ``day``: everything is sent and delivered on
    the send day; opens and clicks arrive over ``SPREAD_DAYS`` days. Summed
    over the days from ``send_day`` this is ``email_funnel`` exactly."""
    funnel = email_funnel(key, list_size)
    on_send_day = day == send_day
    return EmailFunnel(
        sent=funnel.sent if on_send_day else 0,
        delivered=funnel.delivered if on_send_day else 0,
        opens=_day_share(funnel.opens, key, send_day, day),
        clicks=_day_share(funnel.clicks, key, send_day, day),
    )


@dataclass(frozen=True)
class SocialPost:
    impressions: int
    clicks: int
    engagements: int  # likes, shares, comments and clicks


# Typical organic impressions of one post, by network.
SOCIAL_REACH = {
    "twitter": 1500,
    "linkedin": 2500,
    "facebook": 2000,
    "instagram": 3000,
    "threads": 1200,
    "mastodon": 600,
}
DEFAULT_REACH = 1500
SOCIAL_CTR = (0.012, 0.4)  # clicks of impressions, (rate, spread)
SOCIAL_ENGAGEMENT = (0.035, 0.4)  # engagements of impressions (at least the clicks)


def social_post(key: str, network: str) -> SocialPost:
    """A post's lifetime totals (``key``: the post or update id)."""
    impressions = round(SOCIAL_REACH.get(network.lower(), DEFAULT_REACH) * jitter(0.5, key, "reach"))
    clicks = min(impressions, round(impressions * SOCIAL_CTR[0] * jitter(SOCIAL_CTR[1], key, "ctr")))
    engaged = round(impressions * SOCIAL_ENGAGEMENT[0] * jitter(SOCIAL_ENGAGEMENT[1], key, "engagement"))
    return SocialPost(impressions=impressions, clicks=clicks, engagements=min(impressions, max(clicks, engaged)))


def social_day(key: str, network: str, posted_day: dt.date, day: dt.date) -> SocialPost:
    """What the post gathered on ``day``; summed over the days from
    ``posted_day`` this is ``social_post`` exactly."""
    total = social_post(key, network)
    return SocialPost(
        impressions=_day_share(total.impressions, key, posted_day, day),
        clicks=_day_share(total.clicks, key, posted_day, day),
        engagements=_day_share(total.engagements, key, posted_day, day),
    )


def email_list_size(list_id: str) -> int:
    """How many addresses a contact list holds in the model: 2,000 to 20,000, stable per list."""
    return 2000 + math.floor(18000 * unit(list_id, "list-size"))


EMAIL_STAT_KEYS = ("delivered", "opens", "unique_opens", "clicks", "unique_clicks", "bounces")


def email_day_stats(key: str, list_size: int, send_day: dt.date, day: dt.date) -> dict[str, int]:
    """``email_day`` in SendGrid's stats fields. The model counts each address once, so the
    totals equal the uniques; bounces are what was sent and not delivered (on the send day)."""
    d = email_day(key, list_size, send_day, day)
    return {
        "delivered": d.delivered, "opens": d.opens, "unique_opens": d.opens, "clicks": d.clicks,
        "unique_clicks": d.clicks, "bounces": d.sent - d.delivered,
    }


def social_so_far(key: str, network: str, posted_day: dt.date, today: dt.date) -> SocialPost:
    """A post's totals through ``today`` (what a vendor's lifetime statistics read that day)."""
    days = [posted_day + dt.timedelta(days=i) for i in range(SPREAD_DAYS) if posted_day + dt.timedelta(days=i) <= today]
    parts = [social_day(key, network, posted_day, d) for d in days]
    return SocialPost(
        impressions=sum(p.impressions for p in parts),
        clicks=sum(p.clicks for p in parts),
        engagements=sum(p.engagements for p in parts),
    )


def social_day_share(key: str, lifetime: int, posted_day: dt.date, day: dt.date) -> int:
    """``day``'s part of a lifetime total, by the post's decay weights (an estimate: the vendor
    reports lifetime totals only). Exactly ``social_day`` once the post is ``SPREAD_DAYS`` old."""
    return _day_share(lifetime, key, posted_day, day)


BUFFER_STAT_KEYS = ("reach", "clicks", "retweets", "favorites", "mentions")


def buffer_statistics(key: str, network: str, posted_day: dt.date, today: dt.date) -> dict[str, int]:
    """``social_so_far`` in Buffer's ``statistics`` fields: reach = impressions; the engagements
    beyond clicks split into shares (a quarter) and likes; no mentions."""
    so_far = social_so_far(key, network, posted_day, today)
    other = so_far.engagements - so_far.clicks
    return {"reach": so_far.impressions, "clicks": so_far.clicks, "retweets": other // 4,
            "favorites": other - other // 4, "mentions": 0}
