"""Headless Chromium (Debian's package) driven by Playwright: the landing page
built through the real asset path, opened, measured and photographed.

Shared by test_browser.py and the README screenshots (screenshots.py), so the
screenshots are taken by exactly the code the tests trust.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import yaml

from campaign_assets.definitions import build_defs
from campaign_assets_tests.support.dagster import campaign_graph

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "/usr/lib/chromium/chromium", "google-chrome")
MOBILE = {"width": 375, "height": 812}
DESKTOP = {"width": 1280, "height": 900}
WIDE = {"width": 1440, "height": 900}


def find_chromium() -> str | None:
    """The Chromium binary: $CHROMIUM_PATH, then the usual names on PATH."""
    explicit = os.environ.get("CHROMIUM_PATH")
    if explicit and Path(explicit).exists():
        return explicit
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name) or (name if Path(name).is_file() and os.access(name, os.X_OK) else None)
        if found:
            return found
    return None


def unavailable() -> str | None:
    """Why a browser test cannot run here, or None when it can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    if not find_chromium():
        return "no Chromium binary (apt-get install chromium, or set CHROMIUM_PATH)"
    return None


def write_campaign(campaigns: Path, template: str, campaign_id: str, **changes: Any) -> str:
    """A new spec file: an example campaign with a new id and ``changes``
    (``brand`` is merged, everything else replaced)."""
    data = yaml.safe_load((campaigns / f"{template}.yaml").read_text())
    brand = dict(data["brand"], **changes.pop("brand", {}))
    data.update(changes, id=campaign_id, brand=brand)
    (campaigns / f"{campaign_id}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return campaign_id


def build_landing_pages(env: dict[str, str], campaign_ids: list[str]) -> dict[str, Path]:
    """Materialize ``landing_page`` and everything upstream of it with the
    local backends, one run per campaign; the page paths, by campaign."""
    defs = build_defs(env)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("campaigns", campaign_ids)
    pages = {}
    for campaign_id in campaign_ids:
        result = dg.materialize(
            campaign_graph(defs),
            partition_key=campaign_id,
            resources=dict(defs.resources),
            instance=instance,
            selection=dg.AssetSelection.assets("landing_page").upstream().required_multi_asset_neighbors(),
            raise_on_error=True,
        )
        pages[campaign_id] = Path(result.output_for_node("landing_page")["path"])
    return pages


@dataclass
class PageReport:
    """What the browser saw on one page at one width."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    shots: dict[str, bytes] = field(default_factory=dict)  # element screenshots (PNG), by selector


def pixel_contrast(png: bytes) -> tuple[float, tuple[int, int, int], tuple[int, int, int]]:
    """Contrast measured on pixels: the background is the most common colour,
    the text the colour (seen on at least 0.5% of pixels, so glyph cores and
    not anti-aliased edges) that contrasts most with it."""
    import io

    from PIL import Image

    from campaign_assets.logic.contrast import contrast_ratio

    image = Image.open(io.BytesIO(png)).convert("RGB")
    counts = image.getcolors(maxcolors=image.width * image.height) or []
    counts.sort(reverse=True)
    background = counts[0][1]
    floor = max(4, image.width * image.height // 200)
    text = max((c for n, c in counts[1:] if n >= floor), key=lambda c: contrast_ratio(c, background), default=background)
    return contrast_ratio(text, background), text, background


# Runs in the page: WCAG contrast from getComputedStyle, the effective
# background found by walking up to the first ancestor with an opaque one.
MEASURE_JS = """
() => {
  const parse = (s) => {
    const m = s.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
    return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1};
  };
  const lum = ({r, g, b}) => {
    const ch = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4); };
    return 0.2126 * ch(r) + 0.7152 * ch(g) + 0.0722 * ch(b);
  };
  const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)]; return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05); };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c.a > 0) {
        if (c.a < 1) throw new Error('translucent background on ' + e.tagName);
        return c;
      }
    }
    return {r: 255, g: 255, b: 255, a: 1};  // the canvas
  };
  const measure = (selector) => {
    const el = document.querySelector(selector);
    if (!el) return null;
    const fg = parse(getComputedStyle(el).color), bg = background(el);
    return {selector, color: getComputedStyle(el).color, background: `rgb(${bg.r}, ${bg.g}, ${bg.b})`, ratio: ratio(fg, bg)};
  };
  const imgs = [...document.images].map((i) => ({
    src: i.getAttribute('src'), alt: i.getAttribute('alt'), complete: i.complete, naturalWidth: i.naturalWidth,
    right: i.getBoundingClientRect().right,
  }));
  const contrast = ['.hero h1', '.hero .brand', '.hero .summary', '.hero .cta', '.closing p', '.closing .cta']
    .map(measure).filter(Boolean);
  return {
    lang: document.documentElement.lang,
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
    images: imgs,
    contrast,
    audienceText: document.querySelector('.audience') && document.querySelector('.audience').textContent,
    scripts: document.scripts.length,
    meta: Object.fromEntries([...document.querySelectorAll('meta[property], meta[name]')].map(
      (m) => [m.getAttribute('property') || m.getAttribute('name'), m.getAttribute('content')])),
    canonical: document.querySelector('link[rel=canonical]') && document.querySelector('link[rel=canonical]').href,
    ctas: [...document.querySelectorAll('a.cta')].map((a) => a.href),
  };
}
"""


PHOTOGRAPHED = (".hero h1", ".hero .cta")


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium browser (Debian's binary, not Playwright's download)."""
    from playwright.sync_api import sync_playwright

    executable = find_chromium()
    if not executable:
        raise RuntimeError(unavailable() or "no Chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


def visit(browser: Any, page_path: Path, viewport: dict[str, int], screenshot: Path | None = None) -> PageReport:
    """Open the page at ``viewport``, wait for every image, measure it (and
    photograph it, full page, when ``screenshot`` is given)."""
    report = PageReport()
    context = browser.new_context(viewport=viewport, device_scale_factor=1)
    page = context.new_page()
    page.on("console", lambda m: report.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: report.page_errors.append(str(e)))
    page.on("requestfailed", lambda r: report.failed_requests.append(r.url))

    def on_dialog(dialog: Any) -> None:
        report.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)
    try:
        page.goto(page_path.resolve().as_uri(), wait_until="load")
        page.wait_for_function("[...document.images].every((i) => i.complete)", timeout=10_000)
        report.facts = page.evaluate(MEASURE_JS)
        for selector in PHOTOGRAPHED:
            if page.locator(selector).count():
                report.shots[selector] = page.locator(selector).first.screenshot()
        if screenshot:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
    finally:
        context.close()
    return report
