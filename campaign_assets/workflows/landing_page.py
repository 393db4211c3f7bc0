"""landing_page: a local HTML page from the brief and the creatives.

Made: ``landing_page.html`` in the campaign folder (no ledger item). Torn
down: that file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from campaign_assets.logic.markdown import key_messages, section
from campaign_assets.logic.prompts import headline
from campaign_assets.logic.render import render_landing_page
from campaign_assets.services.local import write_text
from campaign_assets.spec import CampaignSpec
from campaign_assets.workflows.common import Stage

ASSET = "landing_page"
PAGE = "landing_page.html"


def build_landing_page(spec: CampaignSpec, brief: dict[str, Any], creatives: list[dict[str, Any]], out: Path) -> Path:
    messages = key_messages(brief["markdown"])
    objective = section(brief["markdown"], "Objective").split(". ")[0].rstrip(".") + "."
    context = dict(
        name=spec.name,
        brand=spec.brand.name,
        color=spec.brand.primary_color,
        website=spec.brand.website,
        campaign_id=spec.id,
        headline=headline(spec),
        summary=objective,
        cta="Learn more",
        groups=[
            {"name": v.stakeholder_group, "message": messages.get(v.stakeholder_group, objective)} for v in spec.vectors
        ],
        creatives=[
            {"src": f"creatives/{c['size']}.png", "size": c["size"], "width": c["width"], "height": c["height"]}
            for c in creatives
        ],
        flight_start=spec.flight.start.isoformat(),
        flight_end=spec.flight.end.isoformat(),
    )
    return write_text(out / PAGE, render_landing_page(context))


STAGES = (Stage(ASSET, ASSET, files=(PAGE,)),)
