"""``campaign-assets launch --queue``: the launch's runs go through the run queue.

Without ``--queue`` a launch executes its runs itself (``launch.py``), beside
the queue. With it, each campaign's run of ``campaign_job`` is created the way
``dagster job launch`` creates one: the code location is loaded from the
project's workspace.yaml, so the run carries a remote origin the daemon can
launch, and it is submitted with ``instance.submit_run``. The instance's run
coordinator (the QueuedRunCoordinator of dagster.yaml) marks it QUEUED;
dagster-daemon dequeues it within the instance's run limits (20 at once, one
per campaign) and starts it through the run launcher, like a run from the UI.

Queued runs carry no launcher tag: this process does not execute them, so
``runs.sweep_dead_runs`` must never take them for runs of a launch that is
gone (run monitoring watches them, as it watches the UI's runs).

The launch then follows the runs in the instance (their progress, from their
event logs) until every one has finished, and reads each outcome back from
its event log (``launch.outcome_from_events``): the summary, the approvals
and the exit status are those of a launch without ``--queue``. A run still
QUEUED after ``CAMPAIGN_QUEUE_NOTICE_S`` seconds (30) gets one line saying
why: no dagster-daemon heartbeat, or the queue at its limits.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg

from campaign_assets.launch import QUIET, CampaignOutcome, outcome_from_events
from campaign_assets.runs import IN_PROGRESS, other_runs
from campaign_assets.settings import CAMPAIGN_JOB, DEFAULT_QUEUE_NOTICE_S, PARTITION_TAG, QUEUE_NOTICE_ENV

QUEUE_DAEMON = "QUEUED_RUN_COORDINATOR"  # the daemon that dequeues runs (its heartbeats)
HEARTBEAT_FRESH_S = 90.0  # dagster-daemon beats every 30 s; three missed beats: no daemon
DAEMON_HINT = "is dagster-daemon running? (`make dev` starts it)"


class QueueError(Exception):
    """No run queue on the instance, or no code location in the workspace file."""


@contextmanager
def code_location(instance: dg.DagsterInstance, workspace_file: Path) -> Iterator[tuple[Any, Any, Any]]:
    """(workspace, code location, repository) of ``workspace_file``, loaded as
    ``dagster job launch -w`` loads them (a code server for a python_module)."""
    from dagster import __version__
    from dagster._cli.workspace.cli_target import (
        WorkspaceOpts,
        get_code_location_from_workspace,
        get_remote_repository_from_code_location,
        get_workspace_from_cli_opts,
    )

    from dagster._core.run_coordinator import QueuedRunCoordinator

    if not isinstance(instance.run_coordinator, QueuedRunCoordinator):
        raise QueueError(f"the instance's run coordinator is {type(instance.run_coordinator).__name__}, not a queue "
                         "(run_coordinator in $DAGSTER_HOME/dagster.yaml)")
    if not workspace_file.is_file():
        raise QueueError(f"{workspace_file}: no such workspace file (-w PATH)")
    opts = WorkspaceOpts(workspace=[str(workspace_file)])
    with get_workspace_from_cli_opts(instance, version=__version__, workspace_opts=opts, log_level="WARNING") as workspace:
        try:
            location = get_code_location_from_workspace(workspace, None)
            repository = get_remote_repository_from_code_location(location, None)
        except Exception as exc:  # click's UsageError: no location, several, or one that failed to load
            raise QueueError(f"{workspace_file}: {getattr(exc, 'message', None) or exc}") from exc
        yield workspace, location, repository


def create_campaign_run(
    instance: dg.DagsterInstance, location: Any, repository: Any, campaign: str,
    selection: Sequence[dg.AssetKey] | None,
) -> dg.DagsterRun:
    """A NOT_STARTED run of ``campaign_job`` (``selection`` of its assets, or all)
    for ``campaign``'s partition, from the code location's snapshots (as
    ``dagster job launch`` and the sensor daemon create theirs)."""
    from dagster._core.definitions.selector import JobSubsetSelector

    selector = JobSubsetSelector(
        location_name=location.name, repository_name=repository.name, job_name=CAMPAIGN_JOB,
        op_selection=None, asset_selection=list(selection) if selection is not None else None,
    )
    remote_job = location.get_job(selector)
    plan = location.get_execution_plan(remote_job, QUIET, step_keys_to_execute=None, known_state=None,
                                       instance=instance)
    return instance.create_run(
        job_name=CAMPAIGN_JOB,
        run_id=None,
        run_config=QUIET,
        resolved_op_selection=remote_job.resolved_op_selection,
        step_keys_to_execute=plan.execution_plan_snapshot.step_keys_to_execute,
        status=dg.DagsterRunStatus.NOT_STARTED,
        op_selection=None,
        root_run_id=None,
        parent_run_id=None,
        tags={**(remote_job.run_tags or {}), PARTITION_TAG: campaign},
        job_snapshot=remote_job.job_snapshot,
        execution_plan_snapshot=plan.execution_plan_snapshot,
        parent_job_snapshot=remote_job.parent_job_snapshot,
        remote_job_origin=remote_job.get_remote_origin(),
        job_code_origin=remote_job.get_python_origin(),
        asset_selection=frozenset(selection) if selection is not None else None,
        asset_check_selection=None,
        asset_graph=repository.asset_graph,
    )


def submit_campaigns(
    instance: dg.DagsterInstance, workspace_file: Path, campaigns: Sequence[str],
    selections: Mapping[str, Sequence[dg.AssetKey] | None] | None = None,
) -> dict[str, str]:
    """Submit one run per campaign to the instance's run coordinator; campaign -> run id."""
    chosen = dict(selections or {})
    submitted: dict[str, str] = {}
    with code_location(instance, workspace_file) as (workspace, location, repository):
        for campaign in campaigns:
            run = create_campaign_run(instance, location, repository, campaign, chosen.get(campaign))
            instance.submit_run(run.run_id, workspace)
            submitted[campaign] = run.run_id
    return submitted


def daemon_alive(instance: dg.DagsterInstance, now: float | None = None) -> bool:
    """A fresh heartbeat of the daemon that dequeues runs."""
    beat = instance.get_daemon_heartbeats().get(QUEUE_DAEMON)
    return beat is not None and (time.time() if now is None else now) - beat.timestamp < HEARTBEAT_FRESH_S


def queue_notice(instance: dg.DagsterInstance, queued: Sequence[str], waited_s: float,
                 now: float | None = None) -> str:
    """Why ``queued`` (campaigns) are still QUEUED, in one line: no daemon
    dequeues, or the limits hold them (naming the run of the same campaign
    they wait behind, one run per campaign at a time)."""
    head = f"{', '.join(queued)}: queued for {waited_s:.0f}s"
    if not daemon_alive(instance, now):
        return f"{head}: {DAEMON_HINT}"
    running = instance.get_runs_count(dg.RunsFilter(statuses=IN_PROGRESS))
    behind = [f"{c} behind run {ahead[0].run_id[:8]}" for c in queued if (ahead := other_runs(instance, c))]
    return f"{head}: waiting for room in the run queue ({running} run(s) in progress{'; ' if behind else ''}" \
           f"{', '.join(behind)})"


def notice_seconds(env: Mapping[str, str] | None = None) -> float:
    return float((os.environ if env is None else env).get(QUEUE_NOTICE_ENV) or DEFAULT_QUEUE_NOTICE_S)


def wait_for_runs(
    instance: dg.DagsterInstance, run_ids: Mapping[str, str], notice_s: float,
    say: Callable[[str], None] = print, poll_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
) -> dict[str, dg.DagsterRun]:
    """Poll the runs until every one has finished; once, when some are still
    QUEUED ``notice_s`` seconds on, say why (``queue_notice``)."""
    started, told = clock(), False
    while True:
        by_id = {run.run_id: run for run in instance.get_runs(filters=dg.RunsFilter(run_ids=list(run_ids.values())))}
        runs = {c: by_id.get(r) for c, r in run_ids.items()}
        if all(run is not None and run.is_finished for run in runs.values()):
            return runs  # type: ignore[return-value]
        queued = [c for c, run in runs.items() if run is not None and run.status == dg.DagsterRunStatus.QUEUED]
        waited = clock() - started
        if queued and not told and waited >= notice_s:
            say(queue_notice(instance, queued, waited))
            told = True
        sleep(poll_s)


def queued_outcome(instance: dg.DagsterInstance, campaign: str, run_id: str) -> CampaignOutcome:
    """The outcome of a finished run, read from the instance: its status, how
    long it ran (start to end), and its event log."""
    record = instance.get_run_record_by_id(run_id)
    assert record is not None, run_id
    run = record.dagster_run
    seconds = (record.end_time or 0.0) - (record.start_time or record.end_time or 0.0)
    events = (entry.dagster_event for entry in instance.all_logs(run_id) if entry.dagster_event is not None)
    return outcome_from_events(campaign, run_id, run.status == dg.DagsterRunStatus.SUCCESS, seconds, events)


def launch_queued(
    instance: dg.DagsterInstance, workspace_file: Path, campaigns: Sequence[str],
    selections: Mapping[str, Sequence[dg.AssetKey] | None] | None = None,
    show_progress: bool = False, wait: bool = True,
) -> tuple[dict[str, str], list[CampaignOutcome]]:
    """Submit a run per campaign to the run queue; with ``wait``, follow them
    until they finish and return their outcomes (without: no outcomes)."""
    run_ids = submit_campaigns(instance, workspace_file, campaigns, selections)
    for campaign, run_id in run_ids.items():
        print(f"{campaign}: run {run_id} submitted to the run queue")
    if not wait:
        if not daemon_alive(instance):
            print(f"queued: {DAEMON_HINT}")
        return run_ids, []
    notice = notice_seconds()
    if show_progress:
        from campaign_assets.progress import following

        with following(instance, campaigns, run_ids=run_ids):
            wait_for_runs(instance, run_ids, notice)
    else:
        wait_for_runs(instance, run_ids, notice)
    return run_ids, [queued_outcome(instance, c, run_ids[c]) for c in campaigns]
