"""The daily report refresh (DESIGN.md §7): ``report_refresh_schedule`` runs
``report_refresh_job`` for every campaign whose flight is live on the scheduled
date, in one tick. Which campaigns is decided by ``report_run_requests``, a
plain function the tests call directly.
"""

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import dagster as dg

from campaign_assets.defs.automation.spec_sensor import scan_folder
from campaign_assets.resources import LedgerResource, WorkspaceResource
from campaign_assets.settings import REPORT_DATE_TAG, REPORT_REFRESH_JOB
from campaign_assets.spec import CampaignSpec
from campaign_assets.core.teardown import is_torn_down

REPORT_ASSET = dg.AssetKey("summary_report")
REPORT_CRON = "0 6 * * *"  # every day at 06:00 UTC


def live_on(spec: CampaignSpec, day: dt.date) -> bool:
    return spec.flight.start <= day <= spec.flight.end


def report_run_key(campaign: str, day: dt.date) -> str:
    return f"report:{campaign}:{day.isoformat()}"


@dataclass(frozen=True)
class ReportPlan:
    requests: tuple[dg.RunRequest, ...]
    not_ready: tuple[str, ...]  # live, but no summary report materialized yet (the sensor's run makes it)


def report_run_requests(
    specs: Mapping[str, CampaignSpec], day: dt.date, reported: Collection[str], torn_down: Collection[str] = ()
) -> ReportPlan:
    """One run request per campaign live on ``day`` that has a report to refresh
    (``reported``) and was not torn down."""
    live = sorted(cid for cid, spec in specs.items() if live_on(spec, day) and cid not in torn_down)
    requests = tuple(
        dg.RunRequest(
            run_key=report_run_key(cid, day), partition_key=cid, tags={REPORT_DATE_TAG: day.isoformat()}
        )
        for cid in live
        if cid in reported
    )
    return ReportPlan(requests, tuple(cid for cid in live if cid not in reported))


report_refresh_job = dg.define_asset_job(
    REPORT_REFRESH_JOB,
    selection=dg.AssetSelection.assets(REPORT_ASSET),
    description="Refresh the summary report of one campaign from its latest upstream materializations.",
)


@dg.schedule(
    name="report_refresh_schedule",
    cron_schedule=REPORT_CRON,
    execution_timezone="UTC",
    job=report_refresh_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every day, refresh summary_report for every campaign whose flight is live that day.",
)
def report_refresh_schedule(
    context: dg.ScheduleEvaluationContext, workspace: WorkspaceResource, ledger: LedgerResource
) -> Sequence[dg.RunRequest] | dg.SkipReason:
    when = context.scheduled_execution_time or dt.datetime.now(dt.timezone.utc)
    day = when.date()
    scan = scan_folder(workspace.specs_folder())
    live = {cid: spec for cid, spec in scan.specs.items() if live_on(spec, day)}
    if not live:
        return dg.SkipReason(f"no campaign is live on {day}")
    reported = context.instance.get_materialized_partitions(REPORT_ASSET)
    store = ledger.open()
    try:
        torn_down = [cid for cid, spec in live.items() if is_torn_down(store, spec.organization, cid)]
    finally:
        store.dispose()
    plan = report_run_requests(live, day, reported, torn_down)
    if plan.not_ready:
        context.log.info(f"live but not materialized yet (no report to refresh): {', '.join(plan.not_ready)}")
    if torn_down:
        context.log.info(f"live but torn down: {', '.join(sorted(torn_down))}")
    return list(plan.requests) or dg.SkipReason(f"no live campaign on {day} has a report to refresh")
