"""What the landing page template is given: pure, from the spec, the brief's
messages and the creatives. Colours come from logic/contrast.py, the same
palette the creatives are drawn with."""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from campaign_assets.logic.contrast import palette
from campaign_assets.logic.prompts import headline
from campaign_assets.spec import CampaignSpec

UTM_SOURCE = "landing_page"
UTM_MEDIUM = "web"
OG_ASPECT = 1200 / 630  # the shape link previews crop to


def canonical_url(website: str | None, campaign_id: str) -> str | None:
    """``https://brand.example/<campaign id>/``: where the page is published.
    The trailing slash makes the page's relative image paths resolve under it."""
    if not website:
        return None
    parts = urlsplit(website)
    path = parts.path.rstrip("/") + f"/{campaign_id}/"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def tracked_url(url: str, campaign_id: str, source: str, medium: str, content: str) -> str:
    """``url`` with UTM parameters; any query it already has is kept, and
    existing utm_* keys are replaced rather than repeated."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not k.startswith("utm_")]
    query += [
        ("utm_source", source),
        ("utm_medium", medium),
        ("utm_campaign", campaign_id),
        ("utm_content", content),
    ]
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", urlencode(query), parts.fragment))


def utm_url(url: str, campaign_id: str, content: str) -> str:
    """The landing page's own links (to the brand site), tagged as coming from it."""
    return tracked_url(url, campaign_id, UTM_SOURCE, UTM_MEDIUM, content)


def share_image(creatives: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The creative that previews best in a link card: the shape closest to
    1.91:1, the larger on a tie."""
    if not creatives:
        return None
    return min(creatives, key=lambda c: (abs(math.log(c["width"] / c["height"] / OG_ASPECT)), -c["width"] * c["height"]))


def is_banner(creative: dict[str, Any]) -> bool:
    return creative["width"] >= 3 * creative["height"]


def creative_alt(brand: str, line: str, size: str) -> str:
    return f"{brand} display ad ({size}): {line}"


def landing_context(
    spec: CampaignSpec, summary: str, messages: dict[str, str], creatives: list[dict[str, Any]]
) -> dict[str, Any]:
    line = headline(spec)
    colors = palette(spec.brand.primary_color)
    website = spec.brand.website
    canonical = canonical_url(website, spec.id)
    gallery = [
        {
            "src": f"creatives/{c['size']}.png",
            "size": c["size"],
            "width": c["width"],
            "height": c["height"],
            "alt": creative_alt(spec.brand.name, line, c["size"]),
        }
        for c in creatives
    ]
    # Boxes and towers side by side, top-aligned; banners (leaderboards,
    # mobile banners) each on their own row below, so no tall ad leaves a hole
    # beside a wide one.
    shelves = [
        [c for c in gallery if not is_banner(c)],
        [c for c in gallery if is_banner(c)],
    ]
    shared = share_image(gallery)
    og_image = None
    if shared:
        og_image = dict(shared, url=urljoin(canonical, shared["src"]) if canonical else shared["src"])
    return dict(
        lang=spec.language,
        name=spec.name,
        brand=spec.brand.name,
        colors=colors.css(),
        website=website,
        canonical=canonical,
        cta_url=utm_url(website, spec.id, "hero") if website else None,
        cta_footer_url=utm_url(website, spec.id, "footer") if website else None,
        campaign_id=spec.id,
        headline=line,
        summary=summary,
        audience=spec.audience,
        cta="Learn more",
        groups=[
            {"name": v.stakeholder_group, "message": messages.get(v.stakeholder_group, summary)} for v in spec.vectors
        ],
        creatives=gallery,
        shelves=[shelf for shelf in shelves if shelf],
        og_image=og_image,
        flight_start=spec.flight.start.isoformat(),
        flight_end=spec.flight.end.isoformat(),
    )
