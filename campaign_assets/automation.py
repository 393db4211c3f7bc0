"""Automation (DESIGN.md §7): the spec-folder sensor, the report schedule, the
report-refresh and teardown jobs.

The Dagster definitions are thin; what they decide lives in plain functions
(``plan_sensor_tick``, ``report_run_requests``, ``campaign_assets.teardown``) that
the tests call directly.

- ``campaign_specs_sensor`` watches ``CAMPAIGNS_DIR``. Its cursor maps each
  campaign id to the hash of its last seen spec (and a revision counter), so
  "new", "changed" and "unchanged" need no run history. A new spec adds its
  ``campaigns`` partition and requests a ``campaign_job`` run; a changed spec
  requests a run; an unchanged one nothing. Invalid files are logged, kept in
  the cursor and named in the tick, and never stop the others.
- ``report_refresh_schedule`` refreshes ``summary_report`` daily for every
  campaign whose flight is live on the scheduled date, in one tick.
- ``teardown_job`` deletes what the ledger says a campaign created.
"""


import datetime as dt
import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import dagster as dg
from pydantic import Field

from campaign_assets.assets.common import SERVICE_TAG, campaigns_partitions
from campaign_assets.resources import LedgerResource, WorkspaceResource
from campaign_assets.services.asana import AsanaResource
from campaign_assets.services.canva import CanvaResource
from campaign_assets.services.docs import DocsResource
from campaign_assets.services.dsp import DSPResource
from campaign_assets.services.sheets import SheetsResource
from campaign_assets.services.slack import SlackResource, escape_text
from campaign_assets.spec import CampaignSpec, scan_campaigns, spec_hash

if TYPE_CHECKING:
    from campaign_assets.core.items import ItemReport
    from campaign_assets.ledger import Ledger
from campaign_assets.core.teardown import (
    TeardownReport,
    TeardownServices,
    is_torn_down,
    summarize,
    teardown_campaign,
)

CAMPAIGN_JOB = "campaign_job"
PARTITIONS = "campaigns"
SPEC_ASSET = dg.AssetKey("campaign_spec")
REPORT_ASSET = dg.AssetKey("summary_report")
SPEC_HASH_TAG = "campaign_assets/spec_hash"
DATA_VERSION_TAG = "dagster/data_version"
SENSOR_INTERVAL_S = 30
REPORT_CRON = "0 6 * * *"  # every day at 06:00 UTC
CURSOR_VERSION = 1
# libyaml when present: 1,000 specs parse in ~0.25 s instead of ~1.7 s (benchmarks/sensor_tick.py).
# ---- reading the folder --------------------------------------------------------
@dataclass(frozen=True)
class FolderScan:
    """The valid specs by campaign id (with their hash) and the invalid files."""

    specs: Mapping[str, CampaignSpec]
    hashes: Mapping[str, str]
    invalid: Mapping[str, str]  # file name -> error


def scan_folder(folder: str | Path) -> FolderScan:
    specs: dict[str, CampaignSpec] = {}
    files: dict[str, str] = {}
    invalid: dict[str, str] = {}
    for found in scan_campaigns(folder):  # sorted: x.yaml wins over x.yml, as in find_spec_path
        name = found.path.name
        if found.spec is None:
            invalid[name] = str(found.error)
        elif found.spec.id in specs:
            invalid[name] = f"{found.path}: campaign {found.spec.id!r} is already defined by {files[found.spec.id]}"
        else:
            specs[found.spec.id], files[found.spec.id] = found.spec, name
    return FolderScan(specs, {cid: spec_hash(s) for cid, s in specs.items()}, invalid)


# ---- the sensor's decision ------------------------------------------------------
@dataclass(frozen=True)
class Seen:
    hash: str
    rev: int  # how many times the spec changed since the sensor first saw it


@dataclass(frozen=True)
class SensorCursor:
    """JSON ``{"v": 1, "specs": {id: [hash, rev]}, "invalid": {file: error}}``."""

    specs: Mapping[str, Seen] = field(default_factory=dict)
    invalid: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        specs = {cid: [s.hash, s.rev] for cid, s in sorted(self.specs.items())}
        return json.dumps({"v": CURSOR_VERSION, "specs": specs, "invalid": dict(sorted(self.invalid.items()))})

    @classmethod
    def from_json(cls, text: str | None) -> "SensorCursor":
        """An empty cursor for None or anything unreadable (the sensor then
        starts over; run keys and the data-version check keep that safe)."""
        try:
            data = json.loads(text or "")
            specs = {str(cid): Seen(str(h), int(r)) for cid, (h, r) in data["specs"].items()}
            return cls(specs, {str(k): str(v) for k, v in data.get("invalid", {}).items()})
        except (ValueError, TypeError, KeyError, AttributeError):
            return cls()


@dataclass(frozen=True)
class SpecRun:
    campaign: str
    hash: str
    rev: int
    reason: Literal["new", "changed"]

    @property
    def run_key(self) -> str:
        # The revision makes a spec that goes back to an earlier content run
        # again (run keys dedupe forever); re-ticks give the same key.
        return f"{self.campaign}:{self.hash}:{self.rev}"


@dataclass(frozen=True)
class TickPlan:
    add_partitions: tuple[str, ...]
    runs: tuple[SpecRun, ...]
    adopted: tuple[str, ...]  # already materialized with this spec: remembered, no run
    removed: tuple[str, ...]  # spec files gone since the last tick (partitions are kept)
    invalid: Mapping[str, str]
    cursor: SensorCursor

    def skip_reason(self) -> str:
        parts = ["no new or changed campaign specs"]
        if self.invalid:
            parts.append(f"{len(self.invalid)} invalid spec file(s): {', '.join(sorted(self.invalid))}")
        return "; ".join(parts)


MaterializedHashes = Callable[[Sequence[str]], Mapping[str, str]]


def plan_sensor_tick(
    scan: FolderScan,
    previous: SensorCursor,
    existing_partitions: Collection[str],
    materialized_hashes: MaterializedHashes | None = None,
) -> TickPlan:
    """What one tick does, from the folder, the cursor and the partitions.

    A spec the cursor does not know whose partition already exists (a cursor
    reset, or a campaign launched from the CLI) is *adopted* without a run
    when ``campaign_spec`` was last materialized with the same hash
    (``materialized_hashes`` answers for all such ids at once).
    """
    existing = set(existing_partitions)
    unknown_existing = [cid for cid in scan.hashes if cid not in previous.specs and cid in existing]
    done = dict(materialized_hashes(unknown_existing)) if unknown_existing and materialized_hashes else {}
    seen: dict[str, Seen] = {}
    runs: list[SpecRun] = []
    adopted: list[str] = []
    for cid, digest in sorted(scan.hashes.items()):
        before = previous.specs.get(cid)
        if before is None:
            seen[cid] = Seen(digest, 0)
            if done.get(cid) == digest:
                adopted.append(cid)
            else:
                runs.append(SpecRun(cid, digest, 0, "new"))
        elif before.hash != digest:
            seen[cid] = Seen(digest, before.rev + 1)
            runs.append(SpecRun(cid, digest, before.rev + 1, "changed"))
        else:
            seen[cid] = before
    return TickPlan(
        add_partitions=tuple(sorted(set(scan.hashes) - existing)),
        runs=tuple(runs),
        adopted=tuple(adopted),
        removed=tuple(sorted(set(previous.specs) - set(scan.hashes))),
        invalid=dict(scan.invalid),
        cursor=SensorCursor(seen, dict(scan.invalid)),
    )


def materialized_spec_hashes(instance: dg.DagsterInstance) -> MaterializedHashes:
    """The spec hash (``campaign_spec``'s data version) of the latest
    materialization of each given partition, in one event-log query."""

    def lookup(partitions: Sequence[str]) -> Mapping[str, str]:
        tags = instance.event_log_storage.get_latest_tags_by_partition(
            SPEC_ASSET, dg.DagsterEventType.ASSET_MATERIALIZATION, [DATA_VERSION_TAG], asset_partitions=list(partitions)
        )
        return {p: t[DATA_VERSION_TAG] for p, t in tags.items() if DATA_VERSION_TAG in t}

    return lookup


def _some(ids: Sequence[str], limit: int = 20) -> str:
    more = f" and {len(ids) - limit} more" if len(ids) > limit else ""
    return ", ".join(ids[:limit]) + more


def sensor_result(plan: TickPlan) -> dg.SensorResult:
    runs = [
        dg.RunRequest(
            run_key=r.run_key,
            partition_key=r.campaign,
            tags={SPEC_HASH_TAG: r.hash, "campaign_assets/trigger": f"spec {r.reason}"},
        )
        for r in plan.runs
    ]
    add = [campaigns_partitions.build_add_request(list(plan.add_partitions))] if plan.add_partitions else []
    return dg.SensorResult(
        run_requests=runs,
        dynamic_partitions_requests=add,
        cursor=plan.cursor.to_json(),
        skip_reason=None if runs else plan.skip_reason(),
    )


@dg.sensor(
    name="campaign_specs_sensor",
    job_name=CAMPAIGN_JOB,
    minimum_interval_seconds=SENSOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Watches CAMPAIGNS_DIR: a new spec adds its campaign partition and runs campaign_job; a changed "
    "spec runs it again; unchanged specs do nothing. Invalid files are reported in the tick and skipped.",
)
def campaign_specs_sensor(context: dg.SensorEvaluationContext, workspace: WorkspaceResource) -> dg.SensorResult:
    scan = scan_folder(workspace.campaigns_dir)
    previous = SensorCursor.from_json(context.cursor)
    existing = context.instance.get_dynamic_partitions(PARTITIONS)  # the one partitions query of the tick
    plan = plan_sensor_tick(scan, previous, existing, materialized_spec_hashes(context.instance))
    for name, error in sorted(plan.invalid.items()):
        context.log.warning(f"skipping invalid spec file {name}:\n{error}")
    for reason in ("new", "changed"):
        ids = [r.campaign for r in plan.runs if r.reason == reason]
        if ids:
            context.log.info(f"{len(ids)} {reason} spec(s), requesting {CAMPAIGN_JOB}: {_some(ids)}")
    if plan.adopted:
        context.log.info(f"already materialized with the current spec: {_some(plan.adopted)}")
    if plan.removed:
        context.log.info(f"spec files removed (partitions kept): {_some(plan.removed)}")
    return sensor_result(plan)


# ---- the report schedule ----------------------------------------------------------
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
            run_key=report_run_key(cid, day), partition_key=cid, tags={"campaign_assets/report_date": day.isoformat()}
        )
        for cid in live
        if cid in reported
    )
    return ReportPlan(requests, tuple(cid for cid in live if cid not in reported))


report_refresh_job = dg.define_asset_job(
    "report_refresh_job",
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
    scan = scan_folder(workspace.campaigns_dir)
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


# ---- teardown ---------------------------------------------------------------------
class TeardownConfig(dg.Config):
    organization: str | None = Field(
        default=None, description="The campaign's tenant; by default its spec's, else the only one in the ledger."
    )


def teardown_metadata(report: TeardownReport) -> dict[str, Any]:
    return {
        **{k: dg.MetadataValue.int(v) for k, v in report.counts.items()},
        "by_asset": dg.MetadataValue.json(report.by_asset()),
        "summary": dg.MetadataValue.md("```\n" + "\n".join(summarize(report)) + "\n```"),
    }


@dg.op(
    name="teardown_campaign",
    tags={SERVICE_TAG: "teardown"},
    description="Delete what the ledger says this campaign created, in reverse dependency order; idempotent.",
)
def teardown_campaign_op(
    context: dg.OpExecutionContext,
    config: TeardownConfig,
    workspace: WorkspaceResource,
    ledger: LedgerResource,
    docs: DocsResource,
    sheets: SheetsResource,
    asana: AsanaResource,
    canva: CanvaResource,
    dsp: DSPResource,
    slack: SlackResource,
) -> dg.Output[dict[str, Any]]:
    campaign = context.partition_key
    services = TeardownServices(docs=docs, sheets=sheets, asana=asana, canva=canva, dsp=dsp, slack=slack)
    report = teardown_campaign(
        campaign, workspace=workspace, ledger=ledger.open(), services=services, organization=config.organization
    )
    for line in summarize(report):
        context.log.info(line)
    for asset, counts in report.by_asset().items():
        context.log_event(
            dg.AssetObservation(
                asset_key=asset, partition=campaign, metadata={"teardown": dg.MetadataValue.json(counts)}
            )
        )
    if not report.ok:
        raise dg.Failure(
            f"teardown of {campaign} left {len(report.failures)} item(s)", metadata=teardown_metadata(report)
        )
    return dg.Output({"counts": report.counts, "by_asset": report.by_asset()}, metadata=teardown_metadata(report))


@dg.job(
    name="teardown_job",
    partitions_def=campaigns_partitions,
    tags={"campaign_assets/kind": "teardown"},
    description="Delete everything one campaign created outside Dagster (ledger-driven, reverse order, idempotent).",
)
def teardown_job() -> None:
    teardown_campaign_op()


# ---- failed runs: someone hears about it ----------------------------------------
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
    store: "Ledger",
    *,
    run_id: str,
    job: str,
    campaign: str | None,
    error: str,
) -> "ItemReport":
    """Post one Slack message per failed run, exactly once (a ledger item keyed
    by the run id under the campaign's tenant; the local backend writes a file)."""
    import asyncio

    from campaign_assets.core.items import Attempt, Item, VendorRef, run_items
    from campaign_assets.ledger import Scope

    spec = scan_folder(workspace.campaigns_dir).specs.get(campaign or "")
    organization = spec.organization if spec else "_unknown"
    scope = Scope(organization, campaign or "_none", "run_failures")
    text = failure_message(run_id, job, campaign, error)
    out = workspace.campaign_dir(organization, campaign or "_none")

    async def post() -> "ItemReport":
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
    campaign = run.tags.get("dagster/partition")
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
    from campaign_assets.runs import sweep_dead_runs

    swept = sweep_dead_runs(context.instance)
    for dead in swept:
        context.log.warning(f"run {dead.run_id} of {dead.campaign}: its launch {dead.launcher} is gone; marked failed")
    return dg.SkipReason(f"{len(swept)} dead launch run(s) marked failed" if swept else "no dead launch runs")


JOBS: tuple[Any, ...] = (report_refresh_job, teardown_job)
SENSORS: tuple[dg.SensorDefinition, ...] = (campaign_specs_sensor, campaign_run_failure_sensor, dead_cli_runs_sensor)
SCHEDULES: tuple[dg.ScheduleDefinition, ...] = (report_refresh_schedule,)
