"""landing_page: a local HTML page from the brief and the creatives.

Made: ``landing_page.html`` in the campaign folder (no ledger item). Torn
down: that file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from campaign_assets.logic.landing import landing_context
from campaign_assets.logic.markdown import key_messages, section
from campaign_assets.logic.render import render_landing_page
from campaign_assets.services.local import write_text
from campaign_assets.spec import CampaignSpec
from campaign_assets.workflows.common import Stage

ASSET = "landing_page"
PAGE = "landing_page.html"


def build_landing_page(spec: CampaignSpec, brief: dict[str, Any], creatives: list[dict[str, Any]], out: Path) -> Path:
    messages = key_messages(brief["markdown"])
    objective = section(brief["markdown"], "Objective").split(". ")[0].rstrip(".") + "."
    context = landing_context(spec, objective, messages, creatives)
    return write_text(out / PAGE, render_landing_page(context))


STAGES = (Stage(ASSET, ASSET, files=(PAGE,)),)
