"""WCAG 2.x contrast: known values, the palette rule, and a property over random colours."""

from __future__ import annotations

import colorsys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaign_assets.logic.contrast import (
    BODY,
    LARGE,
    MARGIN,
    NEAR_BLACK,
    WHITE,
    best_text,
    contrast_ratio,
    palette,
    parse_hex,
    relative_luminance,
    to_hex,
)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("#FFFFFF", "#000000", 21.0),
        ("#000000", "#FFFFFF", 21.0),  # symmetric
        ("#777777", "#FFFFFF", 4.48),
        ("#777777", "#111111", 4.22),  # and near-black fails on it too: a grey needing a shade  # the famous just-fails grey
        ("#767676", "#FFFFFF", 4.54),  # the lightest grey that passes on white
        ("#595959", "#FFFFFF", 7.00),
        ("#0000FF", "#FFFFFF", 8.59),
        ("#FF0000", "#FFFFFF", 4.00),
        ("#00FF00", "#000000", 15.30),
        ("#FFE45C", "#FFFFFF", 1.27),  # the sunny yellow under white text
        ("#123456", "#123456", 1.0),
    ],
)
def test_known_wcag_ratios(a: str, b: str, expected: float) -> None:
    assert contrast_ratio(a, b) == pytest.approx(expected, abs=0.01)


def test_relative_luminance_endpoints_and_channels() -> None:
    assert relative_luminance("#000") == 0
    assert relative_luminance("#FFF") == pytest.approx(1)
    assert relative_luminance("#FF0000") == pytest.approx(0.2126)
    assert relative_luminance("#00FF00") == pytest.approx(0.7152)
    assert relative_luminance("#0000FF") == pytest.approx(0.0722)
    assert relative_luminance((128, 128, 128)) == pytest.approx(0.2158, abs=1e-4)


def test_hex_round_trip_and_errors() -> None:
    assert parse_hex("#0b5fff") == (11, 95, 255)
    assert parse_hex("abc") == (170, 187, 204)
    assert to_hex((11, 95, 255)) == "#0B5FFF"
    with pytest.raises(ValueError):
        parse_hex("#12345")


def test_best_text_picks_the_stronger_of_white_and_near_black() -> None:
    assert best_text(parse_hex("#1A1A40")) == WHITE
    assert best_text(parse_hex("#FFE45C")) == NEAR_BLACK


@pytest.mark.parametrize(
    ("brand", "text", "adjusted"),
    [
        ("#FFE45C", NEAR_BLACK, "none"),  # light: dark text on the yellow itself
        ("#1A1A40", WHITE, "none"),  # dark: light text
        ("#3B82F6", NEAR_BLACK, "none"),  # mid blue: near-black reaches 4.5 (white only 3.7)
        ("#E4572E", NEAR_BLACK, "none"),  # mid orange: likewise
        ("#0B5FFF", WHITE, "none"),
    ],
)
def test_palette_for_typical_brands(brand: str, text: tuple[int, int, int], adjusted: str) -> None:
    p = palette(brand)
    assert p.text == text and p.adjusted == adjusted
    assert p.surface == parse_hex(brand)
    assert p.text_ratio >= BODY and p.button_ratio >= BODY and p.headline_ratio >= LARGE


def test_a_colour_neither_text_reaches_gets_the_closest_tint_or_shade() -> None:
    # #DD3C3C: white 4.4:1, near-black 4.3:1: neither quite reaches 4.5 on it.
    brand = parse_hex("#DD3C3C")
    assert contrast_ratio(brand, WHITE) < BODY and contrast_ratio(brand, NEAR_BLACK) < BODY
    p = palette(brand)
    assert p.adjusted in ("tint", "shade")
    assert p.text_ratio >= BODY and p.button_ratio >= BODY
    # Still the brand: the same hue, only a little lighter or darker.
    h0, l0, s0 = colorsys.rgb_to_hls(*(c / 255 for c in brand))
    h1, l1, s1 = colorsys.rgb_to_hls(*(c / 255 for c in p.surface))
    assert abs(h0 - h1) < 0.02 and abs(l0 - l1) < 0.15


def test_a_brand_that_passes_only_on_paper_gets_the_margin() -> None:
    # #767676 under white is 4.54:1: WCAG-legal, but a screenshot can read 4.49.
    p = palette("#767676")
    assert p.adjusted == "shade" and p.text == WHITE and BODY + MARGIN <= p.text_ratio < BODY + MARGIN + 0.1
    assert palette("#767676", margin=0).adjusted == "none"


def test_large_threshold_needs_less() -> None:
    # #777 on white fails body text but passes for a large headline.
    assert LARGE <= contrast_ratio("#777777", "#FFFFFF") < BODY
    assert palette("#DD3C3C", minimum=LARGE).adjusted == "none"


colours = st.tuples(*(st.integers(0, 255) for _ in range(3)))


@settings(max_examples=400, deadline=None)
@given(colours)
def test_every_palette_meets_its_thresholds(brand: tuple[int, int, int]) -> None:
    p = palette(brand)
    assert p.text_ratio >= BODY + MARGIN
    assert p.button_ratio >= BODY + MARGIN
    assert p.headline_ratio >= LARGE
    assert p.text in (WHITE, NEAR_BLACK) and p.button == p.text
    if p.adjusted == "none":
        assert p.surface == brand
    else:  # the brand colour moved straight toward white or black, so its hue is kept
        toward = 255 if p.adjusted == "tint" else 0
        assert all(abs(s - toward) <= abs(b - toward) for s, b in zip(p.surface, brand))


@settings(max_examples=200, deadline=None)
@given(colours, st.sampled_from([LARGE, BODY, 7.0]))
def test_any_threshold_is_met(brand: tuple[int, int, int], minimum: float) -> None:
    p = palette(brand, minimum=minimum)
    assert p.text_ratio >= minimum and p.button_ratio >= minimum


@settings(max_examples=60, deadline=None)
@given(colours, st.integers(0, 2**32 - 1))
def test_the_creative_scrim_makes_every_pixel_legible(brand: tuple[int, int, int], seed: int) -> None:
    """Whatever the art (here: noise), every pixel under the copy contrasts
    with the text once the scrim is applied."""
    import numpy as np
    from PIL import Image

    from campaign_assets.logic.render import legible_scrim

    art = Image.fromarray(np.random.default_rng(seed).integers(0, 256, (24, 32, 3), dtype=np.uint8), "RGB")
    p = palette(brand)
    out = legible_scrim(art, p.surface, p.text)
    assert min(contrast_ratio(c, p.text) for _, c in out.getcolors(24 * 32)) >= BODY
