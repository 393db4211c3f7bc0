"""Distribution, behind the approval gate: email, social, web (issue #13) and DSP spend (issue #14).

Each asset reads the gate's release and sends its part of it, exactly once,
only when a person approved exactly that content (the workflow checks the
approval again itself: a gate value alone never sends anything). Without a
valid approval it sends nothing, writes no ledger row, and says so in its
metadata ("not sent: awaiting approval ..."). A part the spec does not name
(no ``distribution.email``...) is "not configured".
"""


from collections.abc import Callable
from typing import Any

import dagster as dg
import pandas as pd

from campaign_assets.defs.campaign.common import materialize_result, service_asset
from campaign_assets.logic.budgets import budget_mismatches
from campaign_assets.logic.review import Release
from campaign_assets.progress import run_with_progress
from campaign_assets.resources import LedgerResource, WorkspaceResource
from campaign_assets.services.amazon_dsp import AmazonDSPResource
from campaign_assets.services.buffer import SocialResource
from campaign_assets.services.dv360 import DV360Resource
from campaign_assets.services.github_pages import PagesResource
from campaign_assets.services.sendgrid import EmailResource
from campaign_assets.services.trade_desk import TradeDeskResource
from campaign_assets.settings import DISTRIBUTION_GROUP
from campaign_assets.spec import CampaignSpec
from campaign_assets.workflows import distribution as wf
from campaign_assets.workflows import dsp as wf_dsp


def _held(reason: str) -> dg.MaterializeResult:
    return dg.MaterializeResult(value=[], metadata={"sent": False, "status": reason})


def _distribute(
    spec: CampaignSpec,
    gate: dict[str, Any],
    part: str,
    ledger: LedgerResource,
    workspace: WorkspaceResource,
    send: Callable[..., Any],
    resource: Any,
) -> dg.MaterializeResult:
    dist = spec.distribution
    if dist is None or getattr(dist, part) is None or gate.get("release") is None:
        return _held(f"not configured: the spec has no distribution.{part}")
    release = Release.from_dict(gate["release"])
    refused = wf.refusal(ledger.approvals(), spec, release)
    if refused:
        return _held(refused)
    out = workspace.campaign_dir(spec.organization, spec.id)
    outcome = run_with_progress(spec, send(spec, release, release.fingerprint, resource, ledger.open(), out))
    return materialize_result(
        outcome, sent=True, status=f"approved content {release.fingerprint[:12]}", **{"dagster/row_count": len(outcome.value)}
    )


@dg.asset(
    **service_asset(
        "email",
        group_name=DISTRIBUTION_GROUP,
        kinds={"sendgrid"},
        description="After approval: one SendGrid single send per email piece to the spec's list, scheduled at the "
        "send time and cancellable until then (local: the .eml it would send).",
    )
)
def email_send(
    review_inputs: CampaignSpec, approval_gate: dict[str, Any], email: EmailResource, ledger: LedgerResource,
    workspace: WorkspaceResource,
):
    return _distribute(review_inputs, approval_gate, "email", ledger, workspace, wf.send_emails, email)


@dg.asset(
    **service_asset(
        "social",
        group_name=DISTRIBUTION_GROUP,
        kinds={"buffer"},
        description="After approval: one scheduled Buffer post per social piece and profile (local: post records).",
    )
)
def social_posts(
    review_inputs: CampaignSpec, approval_gate: dict[str, Any], social: SocialResource, ledger: LedgerResource,
    workspace: WorkspaceResource,
):
    return _distribute(review_inputs, approval_gate, "social", ledger, workspace, wf.schedule_posts, social)


@dg.asset(
    **service_asset(
        "pages",
        group_name=DISTRIBUTION_GROUP,
        kinds={"github", "html"},
        description="After approval: the landing page and its creatives published to GitHub Pages through the "
        "contents API (local: the site folder).",
    )
)
def published_site(
    review_inputs: CampaignSpec, approval_gate: dict[str, Any], pages: PagesResource, ledger: LedgerResource,
    workspace: WorkspaceResource,
):
    return _distribute(review_inputs, approval_gate, "web", ledger, workspace, wf.publish_site, pages)


_live = service_asset("dsp")


@dg.multi_asset(
    outs={
        "dsp_go_live": dg.AssetOut(
            group_name=DISTRIBUTION_GROUP,
            kinds={"dsp"},
            owners=_live["owners"],
            code_version=_live["code_version"],
            is_required=False,
            description="After approval of exactly this content (spend included): each paused DSP line item set live, "
            "exactly once, once its budget read back from the DSP equals the media plan's to the cent.",
        )
    },
    check_specs=[
        dg.AssetCheckSpec(
            "budgets_at_vendor_match_plan",
            asset="dsp_go_live",
            blocking=True,
            description="ERROR, blocking, evaluated before any line item goes live: each line item's budget read back "
            "from its DSP equals the media plan's for its channel, to the cent; any difference stops go-live, with "
            "the numbers.",
        )
    ],
    can_subset=True,  # no check result when nothing would go live (not approved, no DSP channel)
    partitions_def=_live["partitions_def"],
    retry_policy=_live["retry_policy"],
    pool=_live["pool"],
    op_tags=_live["op_tags"],
)
def dsp_go_live(
    review_inputs: CampaignSpec,
    approval_gate: dict[str, Any],
    dsp_activation: list[dict[str, Any]],
    media_plan: pd.DataFrame,
    amazon_dsp: AmazonDSPResource,
    trade_desk: TradeDeskResource,
    dv360: DV360Resource,
    ledger: LedgerResource,
    workspace: WorkspaceResource,
):
    spec = review_inputs
    if not dsp_activation or gate_release(approval_gate) is None:
        yield _live_held("not live: " + ("no line items to set live" if not dsp_activation else "the campaign is not reviewed"))
        return
    release = Release.from_dict(approval_gate["release"])
    refused = wf.refusal(ledger.approvals(), spec, release)
    if refused:
        yield _live_held(refused.replace("not sent", "not live: every line item stays paused"))
        return
    out = workspace.campaign_dir(spec.organization, spec.id)
    dsps = {"amazon": amazon_dsp, "trade_desk": trade_desk, "dv360": dv360}
    rows = run_with_progress(spec, wf_dsp.read_back(spec, media_plan, dsp_activation, dsps, out))
    problems = budget_mismatches(rows)
    check = dg.AssetCheckResult(
        check_name="budgets_at_vendor_match_plan",
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(problems) if problems else f"{len(rows)} line item(s) match the plan to the cent",
        metadata={"read_back": dg.MetadataValue.md(read_back_table(rows, spec.budget.currency))},
    )
    if problems:  # nothing goes live: the numbers are in the check
        yield dg.MaterializeResult(
            asset_key="dsp_go_live",
            value=[],
            metadata={"live": False, "status": "not live: budgets at the DSP differ from the plan"},
            check_results=[check],
        )
        return
    outcome = run_with_progress(
        spec, wf_dsp.go_live(spec, dsp_activation, release.fingerprint, dsps, ledger.open(), out)
    )
    yield materialize_result(
        outcome,
        asset_key="dsp_go_live",
        checks=[check],
        live=True,
        status=f"live for approved content {release.fingerprint[:12]}",
        **{"dagster/row_count": len(outcome.value)},
    )


def gate_release(gate: dict[str, Any]) -> dict[str, Any] | None:
    return gate.get("release")


def _live_held(reason: str) -> dg.MaterializeResult:
    return dg.MaterializeResult(asset_key="dsp_go_live", value=[], metadata={"live": False, "status": reason})


def read_back_table(rows: list[dict[str, Any]], currency: str) -> str:
    lines = [f"| channel | DSP | line item | plan ({currency}) | at the DSP ({currency}) | difference | status |",
             "| --- | --- | --- | ---: | ---: | ---: | --- |"]
    for r in rows:
        vendor = "—" if r["vendor_cents"] is None else f"{r['vendor_cents'] / 100:,.2f}"
        diff = "—" if r["difference_cents"] is None else f"{r['difference_cents'] / 100:+,.2f}"
        lines.append(f"| {r['channel']} | {r['dsp']} | {r['line_item_id']} | {r['plan_cents'] / 100:,.2f} | {vendor} | {diff} | {r['vendor_status']} |")
    return "\n".join(lines)
