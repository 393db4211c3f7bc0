"""``campaign-assets launch --queue``: runs submitted through the instance's run queue.

A temp DAGSTER_HOME with the project's dagster.yaml (SQLite storage, the
QueuedRunCoordinator, one run per ``dagster/partition`` at a time) and local
backends (offline). The launches are subprocesses, as a person types them;
dagster-daemon, when there is one, is a subprocess in its own process group,
stopped by its pid.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._daemon.types import DaemonHeartbeat

from campaign_assets.queued import (
    DAEMON_HINT, HEARTBEAT_FRESH_S, QUEUE_DAEMON, QueueError, queue_notice, submit_campaigns, wait_for_runs,
)
from campaign_assets.runs import LAUNCHER_TAG
from campaign_assets.settings import PARTITION_TAG, QUEUE_NOTICE_ENV
from campaign_assets_tests.support.dagster import PROJECT, daemon_args, temp_project
from campaign_assets_tests.support.processes import descendants, reap, start_in_group, stop_groups, wait_for

CLI = [sys.executable, "-m", "campaign_assets.cli"]
BOTH = ["q4-product-launch", "holiday-retail-push"]  # no review sections: the drafting graph
SUBMITTED = re.compile(r"^(\S+): run ([0-9a-f-]{36}) submitted to the run queue$", re.M)


@pytest.fixture
def project_env() -> Iterator[dict[str, str]]:
    with temp_project(BOTH) as env:
        yield os.environ | env | {"CAMPAIGN_PROGRESS": "off"}


@pytest.fixture
def instance(project_env: dict[str, str]) -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.from_config(project_env["DAGSTER_HOME"]) as opened:
        yield opened


def enqueued(instance: dg.DagsterInstance, run_id: str) -> bool:
    return bool(instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_ENQUEUED))


def test_refused_without_a_run_queue_or_a_workspace_file(instance: dg.DagsterInstance, tmp_path: Path) -> None:
    with dg.DagsterInstance.ephemeral() as unqueued, pytest.raises(QueueError, match="not a queue"):
        submit_campaigns(unqueued, PROJECT / "workspace.yaml", BOTH)
    with pytest.raises(QueueError, match="no such workspace file"):
        submit_campaigns(instance, tmp_path / "workspace.yaml", BOTH)
    assert not instance.get_runs()


@pytest.mark.timeout(400)
def test_without_a_daemon_the_launch_says_its_runs_are_queued(
    project_env: dict[str, str], instance: dg.DagsterInstance
) -> None:
    # Waiting: the notice comes once the run has been QUEUED for CAMPAIGN_QUEUE_NOTICE_S (0 here).
    waiting = start_in_group([*CLI, "launch", "--queue", BOTH[0]], cwd=PROJECT,
                             env=project_env | {QUEUE_NOTICE_ENV: "0", "PYTHONUNBUFFERED": "1"},
                             output=subprocess.PIPE)
    lines: list[str] = []
    try:
        assert waiting.stdout is not None
        for raw in waiting.stdout:  # read until the notice (the launch would wait for good)
            lines.append(raw.decode())
            if DAEMON_HINT in lines[-1]:
                break
        assert waiting.poll() is None, "".join(lines)
    finally:
        stop_groups([waiting])
    assert f"{BOTH[0]}: queued for" in lines[-1], "".join(lines)
    first = SUBMITTED.findall("".join(lines))
    assert [c for c, _ in first] == [BOTH[0]]

    # --no-wait: the run ids, the same notice, exit 0.
    done = subprocess.run([*CLI, "launch", "--queue", "--no-wait", *BOTH], cwd=PROJECT, env=project_env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"queued: {DAEMON_HINT}" in done.stdout
    second = SUBMITTED.findall(done.stdout)
    assert [c for c, _ in second] == BOTH

    for campaign, run_id in first + second:
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.QUEUED
        assert run.tags[PARTITION_TAG] == campaign
        assert LAUNCHER_TAG not in run.tags  # the daemon's launcher runs it: never swept as a dead launch's run
        assert run.remote_job_origin is not None and run.remote_job_origin.location_name == "campaign_assets"
        assert enqueued(instance, run_id)

    # Waiting on the --no-wait runs here, on a fake clock: the notice once, then the runs end.
    now, said = [0.0], []

    def sleep(seconds: float) -> None:
        now[0] += seconds
        if now[0] >= 25:
            for _, run_id in second:
                instance.report_run_canceled(instance.get_run_by_id(run_id))

    runs = wait_for_runs(instance, dict(second), notice_s=10, say=said.append, poll_s=5, sleep=sleep,
                         clock=lambda: now[0])
    assert {r.status for r in runs.values()} == {dg.DagsterRunStatus.CANCELED}
    assert said == [f"{', '.join(BOTH)}: queued for 10s: {DAEMON_HINT}"]
    # A daemon beating: the notice names the run of the same campaign it waits behind.
    ahead = instance.get_run_by_id(first[0][1])
    instance.report_dagster_event(dg.DagsterEvent(dg.DagsterEventType.RUN_START.value, job_name=ahead.job_name),
                                  ahead.run_id)
    instance.add_daemon_heartbeat(DaemonHeartbeat(time.time(), QUEUE_DAEMON, "daemon", None))
    assert queue_notice(instance, [BOTH[0]], 30) == (f"{BOTH[0]}: queued for 30s: waiting for room in the run queue "
                                                     f"(1 run(s) in progress; {BOTH[0]} behind run {ahead.run_id[:8]})")
    assert DAEMON_HINT in queue_notice(instance, [BOTH[0]], 30, now=time.time() + HEARTBEAT_FRESH_S + 1)


def run_span(instance: dg.DagsterInstance, run_id: str) -> tuple[float, float]:
    """(RUN_START, run end) timestamps of a finished run, from its event log."""
    start = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_START)
    end = instance.all_logs(run_id, of_type={dg.DagsterEventType.RUN_SUCCESS, dg.DagsterEventType.RUN_FAILURE,
                                            dg.DagsterEventType.RUN_CANCELED})
    assert len(start) == 1 and len(end) == 1, run_id
    return start[0].timestamp, end[0].timestamp


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_queued_launches_run_through_the_daemon_within_the_run_limits(
    project_env: dict[str, str], instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    limits = yaml.safe_load((Path(project_env["DAGSTER_HOME"]) / "dagster.yaml").read_text())
    assert limits["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert {"key": PARTITION_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in \
        limits["concurrency"]["runs"]["tag_concurrency_limits"]

    procs: list[subprocess.Popen] = []
    logs = {name: tmp_path / f"{name}.log" for name in ("daemon", "both", "again")}
    try:
        with open(logs["daemon"], "ab") as log:
            procs.append(start_in_group(daemon_args(), cwd=PROJECT, env=project_env, output=log))
        wait_for("the daemon's first heartbeat", lambda: QUEUE_DAEMON in instance.get_daemon_heartbeats(),
                 timeout=240)
        # Two launches at once: both campaigns, and the first of them again.
        launches = {}
        for name, targets in (("both", BOTH), ("again", BOTH[:1])):
            with open(logs[name], "ab") as log:
                launches[name] = start_in_group([*CLI, "launch", "--queue", *targets], cwd=PROJECT,
                                                env=project_env, output=log)
        procs.extend(launches.values())
        for name, proc in launches.items():
            assert proc.wait(timeout=1200) == 0, logs[name].read_text()
            assert procs[0].poll() is None, logs["daemon"].read_text()[-3000:]
        out = {name: logs[name].read_text() for name in launches}
        assert "done in" in out["both"] and "2 success, 0 partial, 0 failure" in out["both"], out["both"]
        assert "1 success, 0 partial, 0 failure" in out["again"], out["again"]
        assert all(f"{c}: SUCCESS" in out["both"] for c in BOTH) and f"{BOTH[0]}: SUCCESS" in out["again"]
        ours = SUBMITTED.findall(out["both"]) + SUBMITTED.findall(out["again"])
        assert sorted(c for c, _ in ours) == sorted([*BOTH, BOTH[0]])
        for campaign, run_id in ours:
            run = instance.get_run_by_id(run_id)
            assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS, run_id
            assert enqueued(instance, run_id), run_id  # the coordinator queued it; the daemon started it
            assert LAUNCHER_TAG not in run.tags

        # Runs the spec sensor requested beside (it sees new specs) queue the same way: wait them out.
        wait_for("every run to finish", lambda: all(r.is_finished for r in instance.get_runs()),
                 timeout=900, interval=2)
        # One run per campaign at a time, whoever asked: no two runs of a partition overlapped.
        for campaign in BOTH:
            runs = instance.get_runs(filters=dg.RunsFilter(tags={PARTITION_TAG: campaign}))
            spans = sorted(run_span(instance, r.run_id) for r in runs)
            assert len(spans) >= (2 if campaign == BOTH[0] else 1)
            for (_, ended), (started, _) in zip(spans, spans[1:]):
                assert ended <= started, (campaign, spans)

        # Exactly once: no ledger item was created twice, none failed.
        with sqlite3.connect(Path(project_env["WORKSPACE_DIR"]) / "ledger.sqlite") as db:
            twice = db.execute("SELECT campaign, asset, item_key, COUNT(*) FROM audit_log WHERE action = 'created' "
                               "GROUP BY organization, campaign, asset, item_key HAVING COUNT(*) > 1").fetchall()
            statuses = dict(db.execute("SELECT status, COUNT(*) FROM ledger_items GROUP BY status").fetchall())
            campaigns = {c for (c,) in db.execute("SELECT DISTINCT campaign FROM ledger_items")}
        assert not twice, twice
        assert campaigns == set(BOTH) and "failed" not in statuses and statuses.get("created"), statuses
    finally:
        started = [p.pid for p in procs]
        children = descendants(started)
        stop_groups(procs, grace_s=30)
        assert not reap(children), "processes left behind"
