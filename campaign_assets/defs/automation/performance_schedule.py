"""The daily performance refresh (issue #16).

``performance_schedule`` (05:00 UTC daily) asks, in one tick, for one ``performance_job`` run per
campaign that was live yesterday: the (campaign, yesterday) partition of ``campaign_performance``
(run keys ``perf:<id>:<day>``, so a repeated tick is harmless). Which campaigns is decided by
``performance_run_requests``, a plain function the tests call directly.

"Then refresh the report": a run cannot hold both assets (campaign x day against campaign
partitions), and a schedule cannot wait for the runs it asked for. So the refresh is a
``run_status_sensor`` on ``performance_job``: each successful day run requests
``report_refresh_job`` for its campaign (run key ``report-after:<run id>``). The report is
refreshed after the numbers it shows are stored, never before, and a backfill's runs refresh the
report as they land (the report always shows the latest day stored).
"""

import datetime as dt
from collections.abc import Collection, Mapping, Sequence

import dagster as dg

from campaign_assets.core.teardown import is_torn_down
from campaign_assets.defs.automation.report_schedule import live_on, report_refresh_job
from campaign_assets.defs.automation.spec_sensor import scan_folder
from campaign_assets.defs.campaign.performance import (
    CAMPAIGN_DIM,
    DAY_DIM,
    partition_key,
    performance_job,
)
from campaign_assets.resources import LedgerResource, WorkspaceResource
from campaign_assets.settings import PARTITIONS, REPORT_DATE_TAG
from campaign_assets.spec import CampaignSpec

PERFORMANCE_CRON = "0 5 * * *"  # 05:00 UTC: yesterday is complete at every vendor's UTC day
CAMPAIGN_TAG = f"dagster/partition/{CAMPAIGN_DIM}"
DAY_TAG = f"dagster/partition/{DAY_DIM}"


def performance_run_key(campaign: str, day: dt.date) -> str:
    return f"perf:{campaign}:{day.isoformat()}"


def performance_run_requests(
    specs: Mapping[str, CampaignSpec], day: dt.date, registered: Collection[str], torn_down: Collection[str] = ()
) -> list[dg.RunRequest]:
    """One run request per campaign live on ``day`` (its flight includes it), registered as a
    partition and not torn down: the (campaign, ``day``) partition."""
    return [
        dg.RunRequest(run_key=performance_run_key(cid, day), partition_key=partition_key(cid, day))
        for cid in sorted(specs)
        if live_on(specs[cid], day) and cid in registered and cid not in torn_down
    ]


@dg.schedule(
    name="performance_schedule",
    cron_schedule=PERFORMANCE_CRON,
    execution_timezone="UTC",
    job=performance_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every day, fetch yesterday's delivery of every live campaign (campaign_performance); "
    "each run's success then refreshes that campaign's summary report.",
)
def performance_schedule(
    context: dg.ScheduleEvaluationContext, workspace: WorkspaceResource, ledger: LedgerResource
) -> Sequence[dg.RunRequest] | dg.SkipReason:
    when = context.scheduled_execution_time or dt.datetime.now(dt.timezone.utc)
    day = when.date() - dt.timedelta(days=1)
    live = {cid: spec for cid, spec in scan_folder(workspace.specs_folder()).specs.items() if live_on(spec, day)}
    if not live:
        return dg.SkipReason(f"no campaign was live on {day}")
    store = ledger.open()
    try:
        torn_down = [cid for cid, spec in live.items() if is_torn_down(store, spec.organization, cid)]
    finally:
        store.dispose()
    registered = set(context.instance.get_dynamic_partitions(PARTITIONS))
    requests = performance_run_requests(live, day, registered, torn_down)
    return requests or dg.SkipReason(f"no live campaign on {day} is registered and standing")


PERFORMANCE_ASSET = dg.AssetKey("campaign_performance")


def is_performance_run(run: dg.DagsterRun) -> bool:
    """A run of ``performance_job``, or of the asset itself: a backfill from the UI or over
    GraphQL runs it as the implicit asset job, with the asset as its selection."""
    return run.job_name == performance_job.name or PERFORMANCE_ASSET in (run.asset_selection or ())


def report_after(run: dg.DagsterRun) -> dg.RunRequest | None:
    """The report refresh a finished performance run asks for (None: not a campaign day run)."""
    campaign, day = run.tags.get(CAMPAIGN_TAG), run.tags.get(DAY_TAG)
    if not campaign or not is_performance_run(run):
        return None
    return dg.RunRequest(
        run_key=f"report-after:{run.run_id}", partition_key=campaign, tags={REPORT_DATE_TAG: day or ""}
    )


# Every run of this code location is seen (no ``monitored_jobs``): a backfill's runs are not
# ``performance_job`` runs; ``report_after`` picks the campaign day runs out.
@dg.run_status_sensor(
    name="performance_report_sensor",
    run_status=dg.DagsterRunStatus.SUCCESS,
    request_job=report_refresh_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="After each successful campaign_performance run (the schedule's, the command's or a "
    "backfill's), refresh that campaign's summary report.",
)
def performance_report_sensor(context: dg.RunStatusSensorContext):
    return report_after(context.dagster_run) or dg.SkipReason("not a campaign_performance day run")
