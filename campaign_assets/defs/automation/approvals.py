"""A person's decision, from the Dagster UI, and what follows it.

- ``approve_campaign``: a job a reviewer launches from the launchpad with a
  small typed config (campaign, approve or reject, reviewer, note). It records
  the decision on the campaign's latest review round (exactly what the packet
  showed) and logs an observation on ``approval_gate``, so the decision shows
  on the asset's page next to its materializations.
- ``approvals_sensor``: each new decision requests a run of the gate and
  everything behind it for that campaign (run key ``decision:<id>``, so a
  decision is acted on once): distribution and DSP go-live after an approval,
  the gate alone after a rejection (its page then says rejected, and why).
"""


from typing import Literal

import dagster as dg
from pydantic import Field

from campaign_assets.approvals import DecisionRecord, NoReview
from campaign_assets.defs.campaign.common import campaigns_partitions
from campaign_assets.resources import LedgerResource, WorkspaceResource
from campaign_assets.settings import APPROVAL_JOB, CAMPAIGN_JOB, DISTRIBUTION_GROUP, OWNER, SENSOR_INTERVAL_S
from campaign_assets.spec import SpecError, find_spec_path, load_spec

GATE = dg.AssetKey("approval_gate")


class DecisionConfig(dg.Config):
    """What a reviewer fills in on the launchpad."""

    campaign: str = Field(description="The campaign id (its spec file's name).")
    decision: Literal["approve", "reject"] = Field(description="approve: it may go out; reject: it may not.")
    reviewer: str = Field(min_length=1, description="Who decides (recorded with the decision).")
    note: str = Field(default="", description="Why (required to reject).")


@dg.op(tags={"kind": "approval"})
def record_decision(
    context: dg.OpExecutionContext, config: DecisionConfig, ledger: LedgerResource, workspace: WorkspaceResource
) -> None:
    try:
        spec = load_spec(find_spec_path(workspace.specs_folder(), config.campaign))
    except (SpecError, FileNotFoundError) as exc:
        raise dg.Failure(description=f"no usable spec for campaign {config.campaign!r}: {exc}") from None
    decision = "approved" if config.decision == "approve" else "rejected"
    try:
        record = ledger.approvals().decide(
            spec.organization, spec.id, decision, by=config.reviewer, note=config.note, via=f"dagster:{context.run_id}"
        )
    except (NoReview, ValueError) as exc:
        raise dg.Failure(description=str(exc)) from None
    context.log.info(f"{spec.organization}/{spec.id}: {decision} by {record.decided_by} (content {record.fingerprint[:12]})")
    context.log_event(
        dg.AssetObservation(
            asset_key=GATE,
            partition=spec.id,
            metadata={
                "decision": decision,
                "decided_by": record.decided_by,
                "note": record.note or "—",
                "fingerprint": record.fingerprint,
                "decision_id": record.id,
            },
        )
    )


@dg.job(
    name=APPROVAL_JOB,
    description="Approve or reject what a campaign would send: fill in campaign, decision, reviewer and note.",
    tags={"campaign_assets/kind": "approval", "dagster/owner": OWNER},
)
def approve_campaign():
    record_decision()


def decision_run_request(record: DecisionRecord, behind_gate: list[dg.AssetKey]) -> dg.RunRequest:
    """After an approval: the gate and everything behind it; after a rejection: the gate alone."""
    selection = [GATE, *behind_gate] if record.decision == "approved" else [GATE]
    return dg.RunRequest(
        run_key=f"decision:{record.id}",
        partition_key=record.campaign,
        asset_selection=selection,
        tags={"campaign_assets/decision": str(record.id), "campaign_assets/trigger": f"{record.decision} by {record.decided_by}"},
    )


@dg.sensor(
    job_name=CAMPAIGN_JOB,
    minimum_interval_seconds=SENSOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Runs the approval gate and everything behind it when a person approves or rejects a campaign.",
)
def approvals_sensor(context: dg.SensorEvaluationContext, ledger: LedgerResource):
    last = int(context.cursor or 0)
    records = ledger.approvals().decisions_after(last)
    if not records:
        return dg.SkipReason("no new approval decisions")
    behind_gate = sorted(distribution_keys(context), key=lambda k: k.to_user_string())
    partitions = set(context.instance.get_dynamic_partitions(campaigns_partitions.name))
    requests = [decision_run_request(r, behind_gate) for r in records if r.campaign in partitions]
    context.update_cursor(str(records[-1].id))
    return requests


def distribution_keys(context: dg.SensorEvaluationContext) -> list[dg.AssetKey]:
    """Every asset behind the gate (the distribution group), from the code location's own graph."""
    graph = context.repository_def.asset_graph if context.repository_def else None
    if graph is None:
        return []
    return [key for key in graph.get_all_asset_keys() if graph.get(key).group_name == DISTRIBUTION_GROUP]
