"""The performance charts (logic/charts.py): real PNGs of the fixed size, with
something drawn on them, decoded with Pillow."""

from __future__ import annotations

import datetime as dt
import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from campaign_assets.logic import charts
from campaign_assets.logic.delivery import email_day, media_delivery, social_day
from campaign_assets.logic.media_plan import build_media_plan
from campaign_assets.logic.performance import daily_plan, empty_performance
from campaign_assets.logic.render import thumbnail_uri

from .test_performance import START, make_spec

DAY = START + dt.timedelta(days=20)


@pytest.fixture(scope="module")
def plan() -> pd.DataFrame:
    return build_media_plan(make_spec())


@pytest.fixture(scope="module")
def performance(plan: pd.DataFrame) -> pd.DataFrame:
    dsps = {"display": "amazon", "video": "trade_desk"}
    out = []
    for r in daily_plan(plan).itertuples():
        if r.channel in dsps and r.day <= DAY:
            d = media_delivery(f"li-{r.channel}", r.day, r.planned_cents, r.channel)
            out.append(dict(day=r.day, source=dsps[r.channel], channel=r.channel, object_id=f"li-{r.channel}",
                            impressions=d.impressions, clicks=d.clicks, spend_cents=d.spend_cents, delivered=0, opens=0))
    for n in range(10):
        day = START + dt.timedelta(days=n)
        e = email_day("send-1", 20_000, START, day)
        out.append(dict(day=day, source="email", channel="email", object_id="send-1", impressions=0,
                        clicks=e.clicks, spend_cents=0, delivered=e.delivered, opens=e.opens))
        s = social_day("post-1", "linkedin", START, day)
        out.append(dict(day=day, source="social", channel="social", object_id="post-1", impressions=s.impressions,
                        clicks=s.clicks, spend_cents=0, delivered=0, opens=0))
    return pd.DataFrame(out)


def decode(png: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    assert image.size == charts.SIZE_PX
    return np.asarray(image.convert("RGB"))


def drawn(pixels: np.ndarray) -> tuple[int, float]:
    """Distinct colours, and the share of pixels that are not white."""
    flat = pixels.reshape(-1, 3)
    colours = len(np.unique(flat, axis=0))
    not_white = float((flat.min(axis=1) < 250).mean())
    return colours, not_white


def colour_present(pixels: np.ndarray, hex_colour: str, tolerance: int = 12) -> int:
    rgb = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(pixels.astype(int) - rgb).max(axis=-1) <= tolerance).sum())


def test_every_chart_is_a_png_of_the_fixed_size_with_content(plan: pd.DataFrame, performance: pd.DataFrame) -> None:
    rendered = charts.render_charts(plan, performance, DAY, "USD")
    assert list(rendered) == list(charts.CHARTS)
    for name, png in rendered.items():
        colours, not_white = drawn(decode(png))
        assert colours > 50, name  # anti-aliased lines, text, bars
        assert 0.02 < not_white < 0.9, name
        assert thumbnail_uri(png).startswith("data:image/png;base64,")


def test_spend_chart_draws_each_measured_channel_in_its_colour(plan: pd.DataFrame, performance: pd.DataFrame) -> None:
    pixels = decode(charts.spend_chart(plan, performance, DAY, "USD"))
    palette = charts.colours(list(plan["channel"].unique()))
    assert colour_present(pixels, palette["display"]) > 200
    assert colour_present(pixels, palette["video"]) > 200
    assert colour_present(pixels, palette["search"]) == 0  # no DSP, no spend: no line


def test_spend_chart_without_delivery_still_shows_the_plan(plan: pd.DataFrame) -> None:
    pixels = decode(charts.spend_chart(plan, empty_performance(), START, "EUR"))
    palette = charts.colours(list(plan["channel"].unique()))
    # Nothing spent yet: the plan lines of the channels a DSP runs are drawn.
    assert colour_present(pixels, palette["display"]) > 100 and colour_present(pixels, palette["video"]) > 100
    assert colour_present(pixels, palette["search"]) == 0
    # A plan no DSP runs: every channel's plan line.
    unrun = build_media_plan(make_spec(shares=[0.4, 0.3, 0.2, 0.1], dsps=[None] * 4))  # lines apart
    pixels = decode(charts.spend_chart(unrun, empty_performance(), START, "EUR"))
    assert all(colour_present(pixels, palette[c]) > 100 for c in unrun["channel"].unique())


def test_charts_differ_with_their_data(plan: pd.DataFrame, performance: pd.DataFrame) -> None:
    full = charts.clicks_chart(performance, DAY)
    early = charts.clicks_chart(performance, START + dt.timedelta(days=3))
    assert full != early
    assert charts.funnel_chart(1000, 250, 30) != charts.funnel_chart(1000, 400, 30)


def test_empty_charts_are_valid_images() -> None:
    for png in (charts.clicks_chart(empty_performance()), charts.funnel_chart(0, 0, 0)):
        colours, not_white = drawn(decode(png))
        assert colours > 10 and not_white > 0.005  # axes and the "no delivery" text


def test_no_funnel_chart_without_email(plan: pd.DataFrame, performance: pd.DataFrame) -> None:
    paid_only = performance[performance["source"] != "email"]
    assert "performance_email_funnel.png" not in charts.render_charts(plan, paid_only, DAY, "USD")
