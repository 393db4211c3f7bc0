"""Review and the approval gate (issue #13): nothing goes out before a person approves.

Only campaigns whose spec has ``reviewers`` or ``distribution`` (``spec.reviewed``)
go through here: ``campaign-assets launch`` and the spec sensor leave these
assets out of the other campaigns' runs. Materialized for such a campaign
anyway (a backfill of every asset from the UI), the review and the gate say
"not reviewed" (no check results: both are subsettable multi_assets, so
their checks are optional) and distribution sends nothing, so the backfill
stays green.

- ``campaign_review`` builds what would go out (``logic/review.py``), checks
  it, writes the review packet and asks the reviewers in Slack, once per
  content fingerprint;
- ``approval_gate`` reads the decision for that fingerprint: approved,
  rejected, or awaiting approval (its metadata and its check say which, so
  pending campaigns are found from the asset's page);
- the distribution assets (``defs/campaign/distribution.py``) and DSP go-live
  sit behind the gate and check the approval again themselves.
"""


from typing import Any

import dagster as dg
import pandas as pd

from campaign_assets.approvals import GateState
from campaign_assets.defs.campaign.common import materialize_result, service_asset, url
from campaign_assets.logic.media_plan import plan_markdown
from campaign_assets.logic.review import Release
from campaign_assets.progress import run_with_progress
from campaign_assets.resources import LedgerResource, WorkspaceResource
from campaign_assets.services.github_pages import PagesResource
from campaign_assets.services.llm import LLMResource
from campaign_assets.services.slack import SlackResource
from campaign_assets.settings import APPROVAL_GROUP
from campaign_assets.spec import CampaignSpec, spec_hash
from campaign_assets.workflows import review as wf_review

NOT_REVIEWED = "not reviewed: the spec has no reviewers or distribution section, so nothing goes out"

REVIEW_CHECKS = [
    dg.AssetCheckSpec(
        name,
        asset="campaign_review",
        description=f"ERROR (informs the reviewers, does not block the gate): {label.lower()}; one reason per item.",
    )
    for name, label, _ in wf_review.CHECKS
] + [
    dg.AssetCheckSpec(
        "brand_voice",
        asset="campaign_review",
        description="WARN: the LLM's brand-voice review of everything that goes out, against the brief (score >= 7 of 10).",
    )
]


_review = service_asset("llm")


# A multi_asset of one output, so a campaign without review sections gets no
# check results: Dagster treats check results as optional only in a
# subsettable multi_asset.
@dg.multi_asset(
    outs={
        "campaign_review": dg.AssetOut(
            group_name=APPROVAL_GROUP,
            kinds={"openai", "slack", "html"},
            owners=_review["owners"],
            code_version=_review["code_version"],
            is_required=False,
            description="The review packet of everything that would go out (pieces, creatives, landing page, media "
            "plan), checked, and sent to the reviewers in Slack once per content fingerprint. Only for specs with "
            "`reviewers` or `distribution`.",
        )
    },
    check_specs=REVIEW_CHECKS,
    can_subset=True,
    partitions_def=_review["partitions_def"],
    retry_policy=_review["retry_policy"],
    pool=_review["pool"],
    op_tags=_review["op_tags"],
)
def campaign_review(
    context: dg.AssetExecutionContext,
    review_inputs: CampaignSpec,
    campaign_brief: dict[str, Any],
    content_pieces: list[dict[str, Any]],
    creatives: list[dict[str, Any]],
    landing_page: dict[str, Any],
    media_plan: pd.DataFrame,
    llm: LLMResource,
    slack: SlackResource,
    pages: PagesResource,
    ledger: LedgerResource,
    workspace: WorkspaceResource,
):
    spec = review_inputs
    if not spec.reviewed:  # materialized, so a backfill over every campaign stays green; nothing to check
        yield dg.MaterializeResult(
            asset_key="campaign_review",
            value={"fingerprint": None, "release": None},
            metadata={"status": NOT_REVIEWED},
        )
        return
    out = workspace.campaign_dir(spec.organization, spec.id)
    release, landing_text = run_with_progress(
        spec, wf_review.prepare_release(spec, content_pieces, landing_page, creatives, media_plan, pages, out)
    )
    outcome = run_with_progress(
        spec,
        wf_review.review_campaign(
            spec, release, landing_text, campaign_brief["markdown"], content_pieces, creatives, media_plan,
            landing_page.get("url"), spec_hash(spec), llm, slack, ledger.open(), ledger.approvals(), out,
        ),
    )
    result: wf_review.ReviewResult = outcome.value
    checks = []
    for name, label, check in wf_review.CHECKS:
        found = [f for f in result.findings if f.check == check]
        checks.append(
            dg.AssetCheckResult(
                check_name=name,
                passed=not found,
                severity=dg.AssetCheckSeverity.ERROR,
                description=f"{len(found)} finding(s)" if found else "no findings",
                metadata={"findings": dg.MetadataValue.json([{"item": f.item, "reason": f.reason} for f in found])},
            )
        )
    voice = result.voice
    checks.append(
        dg.AssetCheckResult(
            check_name="brand_voice",
            passed=voice.passed,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"score {voice.score}/10" if voice.score is not None else "no score",
            metadata={"score": voice.score if voice.score is not None else -1, "notes": dg.MetadataValue.json(voice.notes)},
        )
    )
    outcome.value = result.value()
    goes_out = release.summary()
    yield materialize_result(
        outcome,
        asset_key="campaign_review",
        checks=checks,
        fingerprint=release.fingerprint,
        review_packet=dg.MetadataValue.path(workspace.shown(result.packet)),
        landing_url=url(release.landing_url),
        reviewers=", ".join(result.round.reviewers) or "—",
        requested_at=result.round.requested_at.isoformat(),
        preview=dg.MetadataValue.md(review_preview(spec, release, result, media_plan)),
        **{f"goes_out/{k}": v for k, v in goes_out.items()},
    )


def review_preview(spec: CampaignSpec, release: Release, result: wf_review.ReviewResult, plan: pd.DataFrame) -> str:
    lines = [f"**{len(result.findings)} finding(s)**, brand voice {result.voice.score or '—'}/10", ""]
    lines += [f"- `{f.item}`: {f.reason}" for f in result.findings[:20]]
    for e in release.emails:
        lines += ["", f"**Email** to `{e.list_id}` at {e.send_at}: {e.subject}"]
    for p in release.posts:
        lines += ["", f"**{p.network}** `{p.profile_id}` at {p.scheduled_at}: {p.text}"]
    lines += ["", plan_markdown(plan, spec.budget.currency)]
    return "\n".join(lines)


def gate_metadata(state: GateState) -> dict[str, Any]:
    meta: dict[str, Any] = {"status": state.phase, "detail": state.describe(), "fingerprint": state.fingerprint}
    if state.decision is not None:
        meta |= {
            "decided_by": state.decision.decided_by,
            "decided_at": state.decision.decided_at.isoformat(),
            "note": state.decision.note or "—",
            "via": state.decision.via,
        }
    if state.round is not None:
        meta["awaiting_since"] = state.round.requested_at.isoformat()
        meta["asked"] = ", ".join(state.round.reviewers) or "—"
    return meta


_gate = service_asset(None)


@dg.multi_asset(
    outs={
        "approval_gate": dg.AssetOut(
            group_name=APPROVAL_GROUP,
            kinds={"sql"},
            owners=_gate["owners"],
            code_version=_gate["code_version"],
            is_required=False,
            description="The human approval of exactly what goes out: approved, rejected, or awaiting approval, for "
            "the review's content fingerprint. Decide with `campaign-assets approve|reject` or the approve_campaign job.",
        )
    },
    check_specs=[
        dg.AssetCheckSpec(
            "approved_for_current_content",
            asset="approval_gate",
            description="WARN while awaiting approval (or rejected): nothing goes out until a person approves "
            "this exact content. Filter on this check to find pending campaigns.",
        )
    ],
    can_subset=True,  # a campaign that is not reviewed gets no check result
    partitions_def=_gate["partitions_def"],
    retry_policy=_gate["retry_policy"],
)
def approval_gate(review_inputs: CampaignSpec, campaign_review: dict[str, Any], ledger: LedgerResource):
    spec = review_inputs
    fingerprint = campaign_review["fingerprint"]
    if fingerprint is None:
        yield dg.MaterializeResult(
            asset_key="approval_gate",
            value={"phase": "not reviewed", "fingerprint": None, "release": None, "decided_by": None},
            metadata={"status": NOT_REVIEWED},
        )
        return
    state = ledger.approvals().state(spec.organization, spec.id, fingerprint)
    assert state is not None  # campaign_review recorded this round
    check = dg.AssetCheckResult(
        check_name="approved_for_current_content",
        passed=state.approved,
        severity=dg.AssetCheckSeverity.WARN,
        description=state.describe(),
        metadata={"status": state.phase},
    )
    value = {
        "phase": state.phase,
        "fingerprint": fingerprint,
        "release": campaign_review["release"],
        "decided_by": state.decision.decided_by if state.decision else None,
    }
    yield dg.MaterializeResult(asset_key="approval_gate", value=value, metadata=gate_metadata(state), check_results=[check])
