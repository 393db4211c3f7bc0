"""Who may run a campaign now: the per-campaign turn, dead launches swept, failed runs told to Slack."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import dagster as dg
import pytest

from campaign_assets.defs.automation.run_monitoring import campaign_run_failure_sensor, notify_run_failure
from campaign_assets.resources import build_resources
from campaign_assets.runs import (
    LAUNCHER_TAG,
    campaign_turn,
    launcher_alive,
    launcher_token,
    other_runs,
    sweep_dead_runs,
)

from .conftest import SEED


@pytest.fixture
def instance(tmp_path: Path) -> dg.DagsterInstance:
    """A real SQLite instance (pools and run storage as on a laptop)."""
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as inst:
        yield inst


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def started_run(instance: dg.DagsterInstance, campaign: str, launcher: str | None) -> dg.DagsterRun:
    tags = {"dagster/partition": campaign} | ({LAUNCHER_TAG: launcher} if launcher else {})
    run = instance.create_run_for_job(dg.GraphDefinition("noop").to_job(), tags=tags)
    instance.handle_run_event(
        run.run_id,
        dg.DagsterEvent(dg.DagsterEventType.RUN_START.value, job_name=run.job_name, message="started"),
    )
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED
    return run


def test_launcher_liveness_is_known_on_this_host_only() -> None:
    assert launcher_alive(launcher_token()) is True
    assert launcher_alive(launcher_token(dead_pid())) is False
    assert launcher_alive("some-other-host:1") is None


def test_a_run_whose_launch_is_gone_is_marked_failed_and_its_pool_slots_freed(instance: dg.DagsterInstance) -> None:
    dead = started_run(instance, SEED, launcher_token(dead_pid()))
    alive = started_run(instance, "spring-webinar-series", launcher_token())
    elsewhere = started_run(instance, "other", "some-other-host:4242")
    from_ui = started_run(instance, "ui-campaign", None)
    storage = instance.event_log_storage
    storage.set_concurrency_slots("llm", 2)
    storage.claim_concurrency_slot("llm", dead.run_id, "campaign_brief")
    assert storage.get_concurrency_info("llm").claimed_slots

    swept = sweep_dead_runs(instance)

    assert [d.run_id for d in swept] == [dead.run_id]
    assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE
    for run in (alive, elsewhere, from_ui):
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED
    assert not storage.get_concurrency_info("llm").claimed_slots
    assert sweep_dead_runs(instance) == []  # once


def test_a_launch_waits_for_a_run_of_its_campaign_and_says_so(instance: dg.DagsterInstance, tmp_path: Path) -> None:
    running = started_run(instance, SEED, None)  # e.g. started from the UI
    said: list[str] = []

    def sleep(_: float) -> None:  # the other run ends while we wait
        instance.report_run_failed(running, "done")

    with campaign_turn(instance, tmp_path, SEED, say=said.append, sleep=sleep):
        assert not other_runs(instance, SEED)
    assert said == [f"{SEED}: waiting for run {running.run_id[:8]} (noop, STARTED) to finish"]


def test_two_launches_of_one_campaign_take_turns(instance: dg.DagsterInstance, tmp_path: Path) -> None:
    inside, release, second_in = threading.Event(), threading.Event(), threading.Event()
    said: list[str] = []
    order: list[str] = []

    def first() -> None:
        with campaign_turn(instance, tmp_path, SEED, say=said.append):
            order.append("first in")
            inside.set()
            release.wait(60)
            order.append("first out")

    def second() -> None:
        inside.wait(60)
        with campaign_turn(instance, tmp_path, SEED, say=lambda m: (said.append(m), release.set())):
            order.append("second in")
            second_in.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert second_in.is_set()
    assert order == ["first in", "first out", "second in"]
    assert said == [f"{SEED}: another launch of this campaign is running; waiting for it to finish"]

    # Another campaign never waits.
    with campaign_turn(instance, tmp_path, "spring-webinar-series", say=said.append):
        pass
    assert len(said) == 1


def test_a_failed_run_is_posted_to_slack_once(project: dict[str, str], instance: dg.DagsterInstance) -> None:
    resources = build_resources(project)
    with dg.build_resources({k: resources[k] for k in ("slack", "workspace", "ledger")}) as r:
        store = r.ledger.open()
        for _ in range(2):
            report = notify_run_failure(
                r.slack, r.workspace, store, run_id="abcdef0123456789", job="campaign_job", campaign=SEED,
                error="campaign_brief: boom",
            )
        assert report.results[0].action == "reused"
    messages = list(Path(project["WORKSPACE_DIR"]).rglob("slack/messages/*.json"))
    assert len(messages) == 1
    text = json.loads(messages[0].read_text())["text"]
    assert "abcdef01" in text and SEED in text and "campaign_brief: boom" in text


def test_the_run_failure_sensor_posts_the_first_error(project: dict[str, str], instance: dg.DagsterInstance) -> None:
    @dg.op
    def explode() -> None:
        raise RuntimeError("the ledger database is unreachable")

    @dg.job
    def campaign_job() -> None:
        explode()

    result = campaign_job.execute_in_process(instance=instance, tags={"dagster/partition": SEED}, raise_on_error=False)
    assert not result.success
    run = instance.get_run_by_id(result.run_id)
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE]
    with dg.build_run_status_sensor_context(
        sensor_name="campaign_run_failure_sensor", dagster_event=failure, dagster_instance=instance, dagster_run=run,
        resources=build_resources(project),
    ) as context:
        campaign_run_failure_sensor(context.for_run_failure())
    [message] = list(Path(project["WORKSPACE_DIR"]).rglob("slack/messages/*.json"))
    text = json.loads(message.read_text())["text"]
    assert result.run_id[:8] in text and SEED in text and "the ledger database is unreachable" in text
