"""Distribution, behind the approval gate (issue #13): email, social, web.

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

from campaign_assets.defs.campaign.common import materialize_result, service_asset
from campaign_assets.logic.review import Release
from campaign_assets.progress import run_with_progress
from campaign_assets.resources import LedgerResource, WorkspaceResource
from campaign_assets.services.buffer import SocialResource
from campaign_assets.services.github_pages import PagesResource
from campaign_assets.services.sendgrid import EmailResource
from campaign_assets.settings import DISTRIBUTION_GROUP
from campaign_assets.spec import CampaignSpec
from campaign_assets.workflows import distribution as wf


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
