"""The landing page's context and HTML, without a browser: language, share
tags, canonical URL, UTM links, alt text, the palette."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from campaign_assets.logic.contrast import BODY, contrast_ratio
from campaign_assets.logic.landing import canonical_url, landing_context, share_image, utm_url
from campaign_assets.logic.render import render_landing_page
from campaign_assets.spec import SPEC_SECTIONS, SpecError, parse_spec

from .conftest import EXAMPLES, SEED

CREATIVES = [
    {"size": s, "width": int(s.split("x")[0]), "height": int(s.split("x")[1])}
    for s in ["300x250", "728x90", "160x600", "320x50"]
]


def _spec(**changes):
    data = yaml.safe_load((EXAMPLES / f"{SEED}.yaml").read_text())
    brand = dict(data["brand"], **changes.pop("brand", {}))
    data.update(changes, brand=brand)
    return parse_spec(yaml.safe_dump(data))


@pytest.mark.parametrize("tag", ["en", "en-US", "pt-BR", "zh-Hant-TW", "es-419", "de"])
def test_language_accepts_bcp47_tags(tag: str) -> None:
    assert _spec(language=tag).language == tag


@pytest.mark.parametrize("tag", ["", "e", "english language", "en_US", "en-", "<script>", "en-US-toolongsubtag"])
def test_language_refuses_what_is_not_a_tag(tag: str) -> None:
    with pytest.raises(SpecError) as info:
        _spec(language=tag)
    assert info.value.errors[0][0] == "language"


def test_language_defaults_to_english_and_is_read_by_the_landing_page_section() -> None:
    assert _spec().language == "en"
    assert "language" in SPEC_SECTIONS["brief_inputs"]


def test_canonical_and_utm_urls() -> None:
    assert canonical_url("https://acme.example", "q4") == "https://acme.example/q4/"
    assert canonical_url("https://acme.example/products/?x=1", "q4") == "https://acme.example/products/q4/"
    assert canonical_url(None, "q4") is None
    url = utm_url("https://acme.example/p?ref=a&utm_source=old#top", "q4", "hero")
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert query == {
        "ref": ["a"], "utm_source": ["landing_page"], "utm_medium": ["web"], "utm_campaign": ["q4"], "utm_content": ["hero"]
    }
    assert parts.fragment == "top" and parts.path == "/p"


def test_share_image_prefers_the_link_card_shape() -> None:
    assert share_image(CREATIVES)["size"] == "300x250"
    assert share_image([c for c in CREATIVES if c["size"] != "300x250"])["size"] == "320x50"
    assert share_image([]) is None


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


@pytest.mark.parametrize("color", ["#FFE45C", "#1A1A40", "#E4572E", "#777777"])
def test_rendered_page(color: str) -> None:
    spec = _spec(brand={"primary_color": color}, language="fr-CA")
    context = landing_context(spec, "Why it matters.", {}, CREATIVES)
    html = render_landing_page(context)
    parser = _Tags()
    parser.feed(html)
    tags = parser.tags
    assert ("html", {"lang": "fr-CA"}) in tags
    images = [a for t, a in tags if t == "img"]
    assert len(images) == 4 and all(a["alt"] and "Acme" in a["alt"] for a in images)
    meta = {a.get("property") or a.get("name"): a.get("content") for t, a in tags if t == "meta"}
    assert meta["og:image"] == f"https://acme.example/{spec.id}/creatives/300x250.png"
    assert meta["twitter:card"] == "summary_large_image" and meta["og:locale"] == "fr_CA"
    assert ("link", {"rel": "canonical", "href": f"https://acme.example/{spec.id}/"}) in tags
    colors = context["colors"]
    assert contrast_ratio(colors["text"], colors["surface"]) >= BODY
    assert contrast_ratio(colors["button_text"], colors["button"]) >= BODY
    assert f"--surface: {colors['surface']}" in html


def test_a_brand_without_website_has_no_canonical_or_cta() -> None:
    data = yaml.safe_load((EXAMPLES / f"{SEED}.yaml").read_text())
    data["brand"].pop("website", None)
    spec = parse_spec(yaml.safe_dump(data))
    html = render_landing_page(landing_context(spec, "x.", {}, CREATIVES))
    assert 'rel="canonical"' not in html and 'class="cta"' not in html
    assert 'content="creatives/300x250.png"' in html  # a relative share image still
