"""One module per asset: how its artifact is made AND how it is torn down.

``WORKFLOWS`` lists the modules in the order the graph makes them (every
asset after what it reads); the teardown driver (``core/teardown.py``) walks
their ``STAGES`` in reverse. The names assets call are re-exported here.
"""

from campaign_assets.workflows import (
    brief, content, creatives, distribution, dsp, landing_page, media_plan, report, research, review, tasks,
)
from campaign_assets.workflows.brief import BRIEF_SECTIONS, brief_title, make_brief, missing_sections, spec_brief
from campaign_assets.workflows.common import Outcome
from campaign_assets.workflows.content import piece_key, store_library, write_content
from campaign_assets.workflows.creatives import image_prompt, make_creatives
from campaign_assets.workflows.dsp import activate_dsps
from campaign_assets.workflows.landing_page import build_landing_page
from campaign_assets.workflows.media_plan import publish_media_plan
from campaign_assets.workflows.report import campaign_facts, make_report
from campaign_assets.workflows.research import make_research
from campaign_assets.workflows.tasks import make_project

WORKFLOWS = (research, brief, media_plan, tasks, creatives, landing_page, content, dsp, review, distribution, report)

__all__ = [
    "BRIEF_SECTIONS",
    "WORKFLOWS",
    "Outcome",
    "activate_dsps",
    "brief_title",
    "build_landing_page",
    "campaign_facts",
    "image_prompt",
    "make_brief",
    "make_creatives",
    "make_project",
    "make_report",
    "make_research",
    "missing_sections",
    "piece_key",
    "publish_media_plan",
    "spec_brief",
    "store_library",
    "write_content",
]
