"""Run monitoring: every failed run is posted to Slack once
(``campaign_run_failure_sensor``), and runs whose ``campaign-assets launch``
process is gone are marked failed (``dead_cli_runs_sensor``, over
``campaign_assets.runs.sweep_dead_runs``).
"""

import asyncio

import dagster as dg

from campaign_assets.defs.automation.spec_sensor import scan_folder
from campaign_assets.core.items import Attempt, Item, ItemReport, VendorRef, run_items
from campaign_assets.ledger import Ledger, Scope
from campaign_assets.resources import LedgerResource, WorkspaceResource
from campaign_assets.runs import sweep_dead_runs
from campaign_assets.services.slack import SlackResource, escape_text
from campaign_assets.settings import PARTITION_TAG, SENSOR_INTERVAL_S


def first_error(context: dg.RunFailureSensorContext) -> str:
    """The first step error of the run, else the run's own failure message."""
    for event in context.get_step_failure_events():
        error = event.event_specific_data and event.event_specific_data.error
        while error is not None and error.cause is not None:  # Dagster's wrapper -> what the code raised
            error = error.cause
        if error is not None:
            return f"{event.step_key}: {error.message.strip().splitlines()[0]}"[:500]
    return (context.failure_event.message or "run failed")[:500]


def failure_message(run_id: str, job: str, campaign: str | None, error: str) -> str:
    where = f"campaign {campaign}" if campaign else "no campaign"
    return f":rotating_light: Run {run_id[:8]} of {job} ({where}) failed: {escape_text(error)}"


def notify_run_failure(
    slack: SlackResource,
    workspace: WorkspaceResource,
    store: Ledger,
    *,
    run_id: str,
    job: str,
    campaign: str | None,
    error: str,
) -> ItemReport:
    """Post one Slack message per failed run, exactly once (a ledger item keyed
    by the run id under the campaign's tenant; the local backend writes a file)."""
    spec = scan_folder(workspace.specs_folder()).specs.get(campaign or "")
    organization = spec.organization if spec else "_unknown"
    scope = Scope(organization, campaign or "_none", "run_failures")
    text = failure_message(run_id, job, campaign, error)
    out = workspace.campaign_dir(organization, campaign or "_none")

    async def post() -> ItemReport:
        async with slack.session(out) as client:

            async def create(item: Item, attempt: Attempt) -> VendorRef:
                found = await client.find_message(marker=attempt.marker) if attempt.recovering else None
                message = found or await client.post_message(f"{text} {attempt.marker}", marker=attempt.marker)
                return VendorRef(message.ts, None, {"channel": message.channel, "text": text})

            return await run_items(store, scope, "slack", [Item(run_id, {"text": text})], create=create)

    return asyncio.run(post())


@dg.run_failure_sensor(
    name="campaign_run_failure_sensor",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=SENSOR_INTERVAL_S,
    description="Posts every failed run of this code location to Slack (local backend: a file): the run, its "
    "campaign and the first error, once per run.",
)
def campaign_run_failure_sensor(
    context: dg.RunFailureSensorContext, slack: SlackResource, workspace: WorkspaceResource, ledger: LedgerResource
) -> None:
    run = context.dagster_run
    campaign = run.tags.get(PARTITION_TAG)
    report = notify_run_failure(
        slack, workspace, ledger.open(), run_id=run.run_id, job=run.job_name, campaign=campaign, error=first_error(context)
    )
    context.log.info(f"run {run.run_id[:8]} ({campaign}): {report.results[0].action}")


@dg.sensor(
    name="dead_cli_runs_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks failed the runs executed by a `campaign-assets launch` whose process is gone (killed, "
    "crashed), and frees their pool slots; the run-failure sensor then reports them.",
)
def dead_cli_runs_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    swept = sweep_dead_runs(context.instance)
    for dead in swept:
        context.log.warning(f"run {dead.run_id} of {dead.campaign}: its launch {dead.launcher} is gone; marked failed")
    return dg.SkipReason(f"{len(swept)} dead launch run(s) marked failed" if swept else "no dead launch runs")
