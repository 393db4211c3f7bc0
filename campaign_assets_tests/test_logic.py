"""Pure logic: the media plan's arithmetic, prompts, creatives and the brief parser."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pytest
import yaml
from PIL import Image

from campaign_assets.logic.media_plan import allocate, build_media_plan, flight_weeks, plan_total_cents
from campaign_assets.logic.prompts import BRIEF_SECTIONS, brief_request, content_request
from campaign_assets.services.llm import render_locally
from campaign_assets.logic.render import background_art, compose_creative
from campaign_assets.spec import load_spec, parse_spec
from campaign_assets.logic.markdown import key_messages, missing_sections

from .conftest import EXAMPLES, SEED


@pytest.mark.parametrize("total", ["0.01", "1", "99.99", "120000.50", "250000", "1000000.03", "33333.33"])
@pytest.mark.parametrize("weights", [[1], [1, 1, 1], [0.35, 0.25, 0.25, 0.15], [7, 7, 7, 3]])
def test_allocation_sums_to_the_cent(total: str, weights: list[float]) -> None:
    parts = allocate(Decimal(total), [Decimal(str(w)) for w in weights])
    assert sum(parts) == Decimal(total)
    assert max(parts) - min(parts) <= Decimal(total) or len(parts) == 1


def test_weeks_cover_the_flight_exactly() -> None:
    weeks = flight_weeks(dt.date(2027, 1, 4), dt.date(2027, 3, 28))
    assert weeks[0][0] == dt.date(2027, 1, 4) and weeks[-1][1] == dt.date(2027, 3, 28)
    assert sum((e - s).days + 1 for s, e in weeks) == 84
    assert flight_weeks(dt.date(2027, 1, 1), dt.date(2027, 1, 1)) == [(dt.date(2027, 1, 1), dt.date(2027, 1, 1))]


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_example_plan_sums_to_its_budget(path) -> None:
    spec = load_spec(path)
    plan = build_media_plan(spec)
    assert plan_total_cents(plan) == round(spec.budget.total * 100)
    assert set(plan["channel"]) == {c.name for c in spec.channels}


def test_local_prose_is_specific_and_has_the_brief_sections() -> None:
    spec = load_spec(EXAMPLES / f"{SEED}.yaml")
    brief = render_locally(brief_request(spec))
    assert not missing_sections(brief)
    assert spec.audience in brief and "250,000.00 USD" in brief
    assert set(key_messages(brief)) == {v.stakeholder_group for v in spec.vectors}
    texts = {ct: render_locally(content_request(spec, spec.vectors[0], ct, brief)) for ct in spec.vectors[0].content_types}
    assert len(set(texts.values())) == len(texts)  # each type reads differently
    assert all(spec.brand.name in t and "{{" not in t for t in texts.values())


def test_missing_sections_are_named() -> None:
    assert missing_sections("# T\n\n## Objective\nx\n") == [s for s in BRIEF_SECTIONS if s != "Objective"]


@pytest.mark.parametrize("size", [(300, 250), (728, 90), (160, 600), (320, 50), (1080, 1080), (10, 10)])
def test_creatives_have_the_exact_pixel_size(size: tuple[int, int]) -> None:
    background = background_art("prompt", (256, 256), "#C8102E")
    png = compose_creative(background, size, "#C8102E", "Holiday Retail Push: a faster path", "Northwind")
    assert Image.open(io.BytesIO(png)).size == size
