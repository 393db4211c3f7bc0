"""The campaign graph (DESIGN.md §2) and its checks: one partition per campaign.

Each asset reads like a row of the design table: what it needs, which
services it calls, what it hands on. The work itself lives in
``campaign_assets.workflows``; what every asset shares, in ``common``.
"""

from typing import Any

import dagster as dg
import pandas as pd

from campaign_assets import workflows as wf
from campaign_assets.defs.campaign.common import (
    campaigns_partitions,
    creatives_preview,
    failed_check,
    materialize_result,
    service_asset,
    url,
)
from campaign_assets.logic.media_plan import build_media_plan, plan_markdown, plan_outside_flight, plan_total_cents
from campaign_assets.progress import run_with_progress
from campaign_assets.resources import LedgerResource, WorkspaceResource
from campaign_assets.services.asana import AsanaResource
from campaign_assets.services.canva import CanvaResource
from campaign_assets.services.docs import DocsResource
from campaign_assets.services.amazon_dsp import AmazonDSPResource
from campaign_assets.services.dv360 import DV360Resource
from campaign_assets.services.trade_desk import TradeDeskResource
from campaign_assets.services.images import ImagesResource
from campaign_assets.services.llm import LLMResource
from campaign_assets.services.sheets import SheetsResource
from campaign_assets.services.slack import SlackResource
from campaign_assets.settings import OWNER, scope
from campaign_assets.spec import SPEC_SECTIONS, CampaignSpec, find_spec_path, load_spec, spec_hash
from campaign_assets.workflows.performance import latest_section


_SECTION_USE = {
    "brief_inputs": "the brief, content pieces, the content library and the landing page",
    "plan_inputs": "the media plan and DSP activation",
    "task_inputs": "the project tasks",
    "creative_inputs": "the creatives",
    "research_inputs": "market research",
    "review_inputs": "the review, the approval gate and distribution",
}


@dg.multi_asset(
    name="campaign_spec",
    partitions_def=campaigns_partitions,
    outs={
        "campaign_spec": dg.AssetOut(
            group_name="campaign_inputs",
            kinds={"yaml"},
            owners=[OWNER],
            code_version="1",
            description="The validated campaign spec file (CAMPAIGNS_DIR/<id>.yaml). Its data version is the spec hash.",
        ),
        **{
            name: dg.AssetOut(
                group_name="campaign_inputs",
                kinds={"yaml"},
                owners=[OWNER],
                code_version="1",
                description=f"The spec fields read by {use}: {', '.join(SPEC_SECTIONS[name])}. Its data version "
                "hashes only those fields, so a change elsewhere in the spec leaves its consumers fresh.",
            )
            for name, use in _SECTION_USE.items()
        },
    },
    internal_asset_deps={name: {dg.AssetKey("campaign_spec")} for name in SPEC_SECTIONS},
)
def campaign_spec(context: dg.AssetExecutionContext, workspace: WorkspaceResource):
    path = find_spec_path(workspace.specs_folder(), context.partition_key)
    spec = load_spec(path)
    digest = spec_hash(spec)
    yield dg.MaterializeResult(
        asset_key="campaign_spec",
        value=spec,
        data_version=dg.DataVersion(digest),
        metadata={
            "path": dg.MetadataValue.path(workspace.shown(path)),
            "spec_hash": digest,
            "organization": spec.organization,
            "flight": f"{spec.flight.start} → {spec.flight.end}",
            "budget": f"{spec.budget.total:,.2f} {spec.budget.currency}",
        },
    )
    for name, fields in SPEC_SECTIONS.items():
        section = spec_hash(spec, fields)
        yield dg.MaterializeResult(
            asset_key=name, value=spec, data_version=dg.DataVersion(section), metadata={"section_hash": section}
        )


@dg.asset(
    **service_asset(
        "llm",
        group_name="planning",
        kinds={"openai", "googledocs"},
        description="The campaign brief, written by the LLM and published as a Google Doc (local: brief.md).",
        check_specs=[dg.AssetCheckSpec("brief_has_required_sections", asset="campaign_brief")],
    )
)
def campaign_brief(
    brief_inputs: CampaignSpec,
    market_research: dict[str, Any],
    llm: LLMResource,
    docs: DocsResource,
    ledger: LedgerResource,
    workspace: WorkspaceResource,
):
    spec = brief_inputs
    out = workspace.campaign_dir(spec.organization, spec.id)
    research = (market_research or {}).get("summary", "")
    outcome = run_with_progress(spec, wf.make_brief(spec, llm, docs, ledger.open(), out, research))
    brief = outcome.value
    missing = wf.missing_sections(brief["markdown"])
    check = dg.AssetCheckResult(
        check_name="brief_has_required_sections",
        passed=not missing,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"missing": dg.MetadataValue.json(missing)},
    )
    flags = {"brief_source": brief["source"], "market_research": bool(research)}
    unavailable = (market_research or {}).get("unavailable") or []
    if unavailable:  # the brief went on without these pages: flagged
        flags["research_unavailable"] = dg.MetadataValue.md(
            "Written without these competitor pages:\n" + "\n".join(f"- {u['url']}: {u['reason']}" for u in unavailable)
        )
    if brief["source"] == "spec":
        flags["brief_error"] = dg.MetadataValue.text(brief["error"])
    return materialize_result(outcome, checks=[check], preview=dg.MetadataValue.md(brief["markdown"]), **flags)


@dg.asset(
    **service_asset(
        "sheets",
        group_name="planning",
        kinds={"pandas", "googlesheets"},
        description="Channel x week budget (a pandas DataFrame), published to a Google Sheet (local: media_plan.csv).",
        check_specs=[
            dg.AssetCheckSpec(
                "media_plan_sums_to_budget",
                asset="media_plan",
                blocking=True,
                description="ERROR, blocking: the plan's cents add up to the budget, so DSP activation never "
                "spends on a plan that does not add up.",
            ),
            dg.AssetCheckSpec(
                "media_plan_within_flight",
                asset="media_plan",
                blocking=True,
                description="ERROR, blocking: every week lies inside the flight and no budget is negative.",
            ),
        ],
    )
)
def media_plan(
    plan_inputs: CampaignSpec, sheets: SheetsResource, ledger: LedgerResource, workspace: WorkspaceResource
):
    spec = plan_inputs
    plan = build_media_plan(spec)
    out = workspace.campaign_dir(spec.organization, spec.id)
    outcome = run_with_progress(spec, wf.publish_media_plan(spec, plan, sheets, ledger.open(), out))
    expected = round(spec.budget.total * 100)
    actual = plan_total_cents(plan)
    sums = dg.AssetCheckResult(
        check_name="media_plan_sums_to_budget",
        passed=actual == expected,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"plan_cents": actual, "budget_cents": expected, "difference_cents": actual - expected},
    )
    outside = plan_outside_flight(plan, spec)
    within = dg.AssetCheckResult(
        check_name="media_plan_within_flight",
        passed=not outside,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"problems": dg.MetadataValue.json(outside)},
    )
    return materialize_result(
        outcome,
        checks=[sums, within],
        preview=dg.MetadataValue.md(plan_markdown(plan, spec.budget.currency)),
        **{"dagster/row_count": len(plan)},
    )


@dg.asset(
    **service_asset(
        "asana",
        group_name="planning",
        kinds={"asana"},
        description="The launch plan as an Asana project with one task per milestone, due dates from the flight.",
        check_specs=[dg.AssetCheckSpec("all_tasks_created", asset="project_tasks")],
    )
)
def project_tasks(
    task_inputs: CampaignSpec, asana: AsanaResource, ledger: LedgerResource, workspace: WorkspaceResource
):
    spec = task_inputs
    out = workspace.campaign_dir(spec.organization, spec.id)
    outcome = run_with_progress(spec, wf.make_project(spec, asana, ledger.open(), out))
    tasks = outcome.reports[-1]
    return materialize_result(outcome, checks=[failed_check("all_tasks_created", tasks, "tasks")], **{"dagster/row_count": len(tasks.succeeded)})


@dg.asset(
    **service_asset(
        "images",
        critical=True,
        group_name="creative",
        kinds={"openai", "canva", "pillow"},
        description="One display creative per ad size: generated background, composed with Pillow at the exact "
        "pixel size, uploaded to Canva as a design (local: creatives/<size>.png).",
        check_specs=[dg.AssetCheckSpec("all_creatives_produced", asset="creatives")],
    )
)
def creatives(
    creative_inputs: CampaignSpec,
    images: ImagesResource,
    canva: CanvaResource,
    ledger: LedgerResource,
    workspace: WorkspaceResource,
):
    spec = creative_inputs
    out = workspace.campaign_dir(spec.organization, spec.id)
    outcome = run_with_progress(spec, wf.make_creatives(spec, images, canva, ledger.open(), out))
    check = failed_check("all_creatives_produced", outcome.reports[0], "creatives")
    links = {f"design {c['size']}": url(c["edit_url"]) for c in outcome.value}
    return materialize_result(
        outcome,
        checks=[check],
        preview=dg.MetadataValue.md(creatives_preview(outcome.value)),
        **links,
        **{"dagster/row_count": len(outcome.value)},
    )


@dg.asset(
    **service_asset(
        "llm",
        group_name="content",
        kinds={"openai"},
        description="One content piece per stakeholder vector x content type, written by the LLM from the brief.",
        check_specs=[dg.AssetCheckSpec("all_pieces_written", asset="content_pieces")],
    )
)
def content_pieces(
    brief_inputs: CampaignSpec,
    campaign_brief: dict[str, Any],
    llm: LLMResource,
    ledger: LedgerResource,
    workspace: WorkspaceResource,
):
    spec = brief_inputs
    out = workspace.campaign_dir(spec.organization, spec.id)
    outcome = run_with_progress(spec, wf.write_content(spec, campaign_brief, llm, ledger.open(), out))
    check = failed_check("all_pieces_written", outcome.reports[0], "pieces")
    flags = {"brief_source": campaign_brief.get("source", "llm")}
    if flags["brief_source"] == "spec":
        flags["flag"] = dg.MetadataValue.md(
            "Written from the spec's own key messages: no brief could be written "
            f"({campaign_brief.get('error', '')})."
        )
    return materialize_result(outcome, checks=[check], **flags, **{"dagster/row_count": len(outcome.value)})


@dg.asset(
    **service_asset(
        None,
        group_name="content",
        kinds={"sql"},
        description="The content vault: one row per content piece in the content library table, "
        "written in one transaction with its ledger and audit rows.",
        check_specs=[dg.AssetCheckSpec("every_piece_in_vault", asset="content_library")],
    )
)
def content_library(
    brief_inputs: CampaignSpec, content_pieces: list[dict[str, Any]], ledger: LedgerResource
):
    spec = brief_inputs
    outcome = run_with_progress(spec, wf.store_library(spec, content_pieces, ledger.open()))
    stored, expected = len(outcome.value["pieces"]), outcome.value["expected"]
    check = dg.AssetCheckResult(
        check_name="every_piece_in_vault",
        passed=stored == expected,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"in_vault": stored, "expected": expected},
    )
    return materialize_result(outcome, checks=[check], **{"dagster/row_count": stored})


@dg.asset(
    **service_asset(
        None,
        group_name="creative",
        kinds={"html"},
        description="The campaign landing page: HTML from a Jinja2 template (autoescaped) with the brief's "
        "key messages and every creative.",
    )
)
def landing_page(
    brief_inputs: CampaignSpec,
    campaign_brief: dict[str, Any],
    creatives: list[dict[str, Any]],
    workspace: WorkspaceResource,
):
    spec = brief_inputs
    out = workspace.campaign_dir(spec.organization, spec.id)
    path = wf.build_landing_page(spec, campaign_brief, creatives, out)
    return dg.MaterializeResult(
        value={"path": str(path), "url": path.as_uri()},
        metadata={"page": dg.MetadataValue.path(workspace.shown(path)), "creatives": len(creatives)},
    )


@dg.asset(
    **service_asset(
        "dsp",
        group_name="activation",
        kinds={"dsp"},
        description="Per programmatic channel an order and one paused (draft) line item at its DSP (Amazon DSP, "
        "The Trade Desk, DV360), with the channel's plan budget to the cent and the plan's flight; nothing spends "
        "until dsp_go_live.",
        check_specs=[dg.AssetCheckSpec("all_line_items_created", asset="dsp_activation")],
    )
)
def dsp_activation(
    plan_inputs: CampaignSpec,
    media_plan: pd.DataFrame,
    amazon_dsp: AmazonDSPResource,
    trade_desk: TradeDeskResource,
    dv360: DV360Resource,
    ledger: LedgerResource,
    workspace: WorkspaceResource,
):
    spec = plan_inputs
    out = workspace.campaign_dir(spec.organization, spec.id)
    dsps = {"amazon": amazon_dsp, "trade_desk": trade_desk, "dv360": dv360}
    outcome = run_with_progress(spec, wf.activate_dsps(spec, media_plan, dsps, ledger.open(), out))
    check = failed_check("all_line_items_created", outcome.reports[0], "line_items")
    return materialize_result(outcome, checks=[check], **{"dagster/row_count": len(outcome.value)})


@dg.asset(
    **service_asset(
        "llm",
        group_name="reporting",
        kinds={"openai", "googledocs", "slack"},
        description="The summary report: every artifact, item counts and every failure from the ledger, with an "
        "LLM-written summary; published as a Google Doc and announced in Slack (local: summary_report.md).",
    )
)
def summary_report(
    campaign_spec: CampaignSpec,
    campaign_brief: dict[str, Any],
    media_plan: pd.DataFrame,
    project_tasks: dict[str, Any] | None,
    creatives: list[dict[str, Any]],
    content_library: dict[str, Any],
    landing_page: dict[str, Any],
    dsp_activation: list[dict[str, Any]],
    llm: LLMResource,
    docs: DocsResource,
    slack: SlackResource,
    ledger: LedgerResource,
    workspace: WorkspaceResource,
):
    spec = campaign_spec
    out = workspace.campaign_dir(spec.organization, spec.id)
    store = ledger.open()
    sheet = store.rows(scope(spec, "media_plan")).get("spreadsheet")
    links = {
        "Brief": campaign_brief["url"],
        "Media plan": sheet and sheet.url,
        "Project": project_tasks and project_tasks["project"]["url"],
        "Landing page": landing_page["url"],
        **{f"Creative {c['size']}": c["edit_url"] for c in creatives},
        **{f"Line item {d['channel']} ({d['dsp']})": d["url"] for d in dsp_activation},
    }
    performance = latest_section(spec, media_plan, store, out)  # "" before any delivery was fetched
    outcome = run_with_progress(spec, wf.make_report(spec, links, llm, docs, slack, store, out, performance))
    facts = outcome.value["facts"]
    return materialize_result(
        outcome,
        upstream_failures=facts["failure_count"],
        upstream_fallbacks=len(facts["fallbacks"]),
        content_pieces_in_vault=len(content_library["pieces"]),
        media_plan_rows=len(media_plan),
        performance_included=bool(performance),
        preview=dg.MetadataValue.md(outcome.value["markdown"]),
    )
