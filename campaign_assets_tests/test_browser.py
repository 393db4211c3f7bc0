"""The landing page and the creatives as customers see them: built through
the real asset path (local backends), opened in headless Chromium (Debian's
package, driven by Playwright), measured in the browser and on the pixels.

Where Chromium or Playwright is missing the browser tests skip with the
reason; with CI set they fail instead (.ci/run installs Chromium).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from PIL import Image, ImageFilter

from campaign_assets.logic.contrast import BODY, contrast_ratio, palette

from .browser import (
    DESKTOP,
    MOBILE,
    WIDE,
    PageReport,
    build_landing_pages,
    chromium,
    pixel_contrast,
    unavailable,
    visit,
    write_campaign,
)
from .conftest import EXAMPLES, SEED

HOSTILE = '<script>alert(1)</script> IT buyers "quoted" & <img src=x onerror=alert(2)>'
# A light, a dark and a mid brand colour (the mid one: white fails on it,
# near-black passes), and a grey on which neither reaches 4.5 (+ margin): a shade.
BRANDS = {"light": "#FFE45C", "dark": "#1A1A40", "mid": "#E4572E", "shaded": "#777777"}
LANGUAGE = {"light": "en", "dark": "en-GB", "mid": "de", "shaded": "pt-BR"}
WIDTHS = {"375": MOBILE, "1280": DESKTOP, "1440": WIDE}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """One landing page per brand colour, by name, with hostile audience text."""
    root = tmp_path_factory.mktemp("browser")
    campaigns = root / "campaigns"
    shutil.copytree(EXAMPLES, campaigns)
    env = {"CAMPAIGNS_DIR": str(campaigns), "WORKSPACE_DIR": str(root / "workspace")}
    ids = {
        name: write_campaign(
            campaigns, SEED, f"contrast-{name}", brand={"primary_color": color}, audience=HOSTILE, language=LANGUAGE[name]
        )
        for name, color in BRANDS.items()
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        pages = build_landing_pages(env, list(ids.values()))
    yield {name: pages[campaign_id] for name, campaign_id in ids.items()}


@pytest.fixture(scope="module")
def browser_available() -> None:
    """Skip (or, with CI set, fail) before building anything when there is no browser."""
    reason = unavailable()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser tests: {reason}")
        pytest.skip(f"browser tests need headless Chromium: {reason}")


@pytest.fixture(scope="module")
def browser(browser_available: None, built: dict[str, Path]) -> Iterator[Any]:
    # Started after the pages are built: sync Playwright keeps an event loop
    # running on this thread, and the assets' asyncio.run() refuses to nest.
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def seen(browser_available: None, built: dict[str, Path], browser: Any) -> dict[tuple[str, str], PageReport]:
    """Every page at every width, visited once."""
    return {(name, width): visit(browser, built[name], vp) for name in built for width, vp in WIDTHS.items()}


@pytest.mark.parametrize("width", sorted(WIDTHS))
@pytest.mark.parametrize("name", sorted(BRANDS))
def test_page_is_clean_in_the_browser(seen: dict[tuple[str, str], PageReport], name: str, width: str) -> None:
    report = seen[(name, width)]
    facts = report.facts
    assert report.console_errors == [] and report.page_errors == [] and report.failed_requests == []
    assert len(facts["images"]) == 4
    for image in facts["images"]:
        assert image["complete"] and image["naturalWidth"] > 0, image
        assert image["alt"] and image["alt"].strip(), image
        assert image["right"] <= facts["innerWidth"], image
    assert facts["scrollWidth"] <= facts["innerWidth"], "horizontal scrolling"
    assert facts["lang"] == LANGUAGE[name]


@pytest.mark.parametrize("name", sorted(BRANDS))
def test_hostile_audience_is_text_and_fires_nothing(seen: dict[tuple[str, str], PageReport], name: str) -> None:
    for width in WIDTHS:
        report = seen[(name, width)]
        assert report.dialogs == []
        assert report.facts["audienceText"] == HOSTILE
        assert report.facts["scripts"] == 0  # the page has no script of its own, and none got in
        assert len(report.facts["images"]) == 4  # nor an injected <img>


@pytest.mark.parametrize("width", ["375", "1280"])
@pytest.mark.parametrize("name", sorted(BRANDS))
def test_hero_and_button_contrast_measured_in_the_browser(
    seen: dict[tuple[str, str], PageReport], name: str, width: str
) -> None:
    report = seen[(name, width)]
    measured = {m["selector"]: m for m in report.facts["contrast"]}
    assert {".hero h1", ".hero .summary", ".hero .cta", ".closing .cta"} <= set(measured)
    for m in measured.values():  # getComputedStyle: colour vs the effective background
        assert m["ratio"] >= BODY, m
    for selector, png in report.shots.items():  # and on the screenshot's pixels
        ratio, text, background = pixel_contrast(png)
        assert ratio >= BODY, (selector, ratio, text, background)


def test_a_dark_brand_still_gets_light_text(seen: dict[tuple[str, str], PageReport]) -> None:
    hero = {m["selector"]: m for m in seen[("dark", "1280")].facts["contrast"]}
    assert hero[".hero h1"]["color"] == "rgb(255, 255, 255)"
    assert hero[".hero h1"]["background"] == "rgb(26, 26, 64)"  # the brand colour itself
    light = {m["selector"]: m for m in seen[("light", "1280")].facts["contrast"]}
    assert light[".hero h1"]["background"] == "rgb(255, 228, 92)"  # the yellow stays, the text turns dark


def test_share_tags_canonical_and_utm(seen: dict[tuple[str, str], PageReport]) -> None:
    facts = seen[("mid", "1280")].facts
    meta, campaign = facts["meta"], "contrast-mid"
    assert facts["canonical"] == f"https://acme.example/{campaign}/"
    assert meta["og:url"] == facts["canonical"] and meta["og:type"] == "website"
    assert meta["og:title"] and meta["og:description"] and meta["twitter:title"] and meta["twitter:description"]
    assert meta["og:image"] == f"https://acme.example/{campaign}/creatives/300x250.png"
    assert meta["twitter:image"] == meta["og:image"] and meta["twitter:card"] == "summary_large_image"
    assert meta["og:image:alt"] and meta["og:locale"] == "de"
    assert len(facts["ctas"]) == 2
    for href in facts["ctas"]:
        query = parse_qs(urlsplit(href).query)
        assert query["utm_source"] == ["landing_page"] and query["utm_medium"] == ["web"]
        assert query["utm_campaign"] == [campaign]


# ---- the creatives, on their pixels (no browser needed) ----------------------
def _mask(image: Image.Image, color: tuple[int, int, int], tolerance: int = 6) -> Image.Image:
    """White where ``image`` is ``color`` (within ``tolerance`` per channel)."""
    pixels = np.asarray(image).astype(int)
    close = (np.abs(pixels - np.array(color)) <= tolerance).all(axis=2)
    return Image.fromarray((close * 255).astype(np.uint8), "L")


def creative_contrast(png_path: Path, brand: str) -> dict[str, float]:
    """Headline and button contrast of a creative, on its pixels: the text
    pixels (the palette's text colour, glyph cores) against every background
    pixel of the headline region (the region minus the glyphs, dilated so
    anti-aliased edges do not count); the label against the button."""
    colors = palette(brand)
    image = Image.open(png_path).convert("RGB")
    width, height = image.size
    pad = max(4, min(width, height) // 12)
    button_h = height // 7
    headline = image.crop((pad, pad, width - pad, height - 3 * pad - 2 * button_h))
    glyphs = _mask(headline, colors.text)
    assert np.asarray(glyphs).astype(bool).sum() > 100, "no headline text found in the creative"
    near_glyphs = np.asarray(glyphs.filter(ImageFilter.MaxFilter(5))).astype(bool)
    background = np.asarray(headline)[~near_glyphs]
    text = np.asarray(headline)[np.asarray(glyphs).astype(bool)].mean(axis=0)
    worst = min(contrast_ratio(tuple(int(v) for v in text), tuple(int(v) for v in px)) for px in np.unique(background, axis=0))

    button = image.crop((pad, height - pad - button_h, width - pad, height - pad))
    label = np.asarray(_mask(button, colors.button_text)).astype(bool)
    fill = np.asarray(_mask(button, colors.button)).astype(bool)
    assert label.sum() > 20 and fill.sum() > label.sum(), "no button found in the creative"
    b = np.asarray(button)
    button_ratio = contrast_ratio(tuple(int(v) for v in b[label].mean(axis=0)), tuple(int(v) for v in b[fill].mean(axis=0)))
    return {"headline": worst, "button": button_ratio}


@pytest.mark.parametrize("name", sorted(BRANDS))
def test_creative_300x250_contrast_on_its_pixels(built: dict[str, Path], name: str) -> None:
    png = built[name].parent / "creatives" / "300x250.png"
    measured = creative_contrast(png, BRANDS[name])
    assert measured["headline"] >= BODY, measured
    assert measured["button"] >= BODY, measured
