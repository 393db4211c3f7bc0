"""market_research (DESIGN.md §2's lifecycle): what competitors say, before the brief."""

import dagster as dg

from campaign_assets import workflows as wf
from campaign_assets.defs.campaign.common import materialize_result, service_asset
from campaign_assets.progress import run_with_progress
from campaign_assets.resources import LedgerResource, WorkspaceResource
from campaign_assets.services.llm import LLMResource
from campaign_assets.services.web import WebResource
from campaign_assets.spec import CampaignSpec


@dg.asset(
    **service_asset(
        "llm",
        group_name="planning",
        kinds={"openai", "html"},
        description="What competitors say, before the brief: each page in the spec's optional `research` section "
        "fetched (bounded, SSRF-safe, robots.txt honoured), its title, description, headings and claims extracted, "
        "its positioning summarized by the LLM and filed in the vault under Campaigns/{PATTERN}/Research. "
        "Without a `research` section: an empty summary at once, no calls. A page that cannot be fetched is a "
        "flagged `fallback` item; the brief goes on without it.",
    )
)
def market_research(
    research_inputs: CampaignSpec,
    web: WebResource,
    llm: LLMResource,
    ledger: LedgerResource,
    workspace: WorkspaceResource,
):
    spec = research_inputs
    if spec.research is None or not spec.research.competitors:
        value = wf.research.empty_research()
        return dg.MaterializeResult(value=value, metadata={"competitors": 0, "summary": dg.MetadataValue.md("(no research section)")})
    out = workspace.campaign_dir(spec.organization, spec.id)
    outcome = run_with_progress(spec, wf.make_research(spec, web.fetcher(), llm, ledger.open(), out))
    value = outcome.value
    flags = {}
    if value["unavailable"]:
        flags["unavailable"] = dg.MetadataValue.md(
            "\n".join(f"- {u['url']}: {u['reason']}" for u in value["unavailable"])
        )
    return materialize_result(
        outcome,
        competitors=len(spec.research.competitors),
        summarized=sum(1 for c in value["competitors"] if c.get("summary")),
        summary=dg.MetadataValue.md(value["summary"] or "(no page could be read)"),
        **flags,
    )
