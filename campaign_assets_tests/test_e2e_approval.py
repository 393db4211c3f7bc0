"""Approval through the real webserver and daemon: the spec sensor drafts the
campaign, a reviewer approves it with the approve_campaign job launched over
GraphQL (as the launchpad does), and the approvals sensor runs distribution."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from campaign_assets.approvals import Approvals
from campaign_assets.ledger import Ledger
from campaign_assets.settings import APPROVAL_JOB, PARTITION_TAG
from campaign_assets_tests.support.dagster import dagster_processes, graphql, temp_project
from campaign_assets_tests.support.ports import free_port
from campaign_assets_tests.support.processes import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

CAMPAIGN = "spring-webinar-series"
LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""


def runs(instance: dg.DagsterInstance, **tags: str) -> list[dg.DagsterRun]:
    return list(instance.get_runs(filters=dg.RunsFilter(tags=tags)))


def finished(instance: dg.DagsterInstance, run_id: str) -> str | None:
    run = instance.get_run_by_id(run_id)
    return run.status.value if run and run.is_finished else None


def latest_metadata(instance: dg.DagsterInstance, asset: str) -> dict[str, Any]:
    event = instance.get_latest_materialization_event(dg.AssetKey(asset))
    assert event is not None, f"{asset} never materialized"
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def test_launch_approve_over_graphql_and_see_distribution_run(monkeypatch: pytest.MonkeyPatch) -> None:
    with temp_project([CAMPAIGN]) as env:
        for name, value in env.items():  # this process reads the same instance and ledger
            monkeypatch.setenv(name, value)
        port = free_port()
        with dagster_processes(env | {"CAMPAIGN_PROGRESS": "off"}, port, code_server=True) as url:
            instance = dg.DagsterInstance.get()

            # The spec sensor registers the campaign and drafts it: review, gate, nothing sent.
            def drafted() -> str | None:
                found = runs(instance, **{PARTITION_TAG: CAMPAIGN})
                return found and finished(instance, found[0].run_id)

            assert wait_for("the sensor's campaign run", drafted, timeout=600, interval=2) == "SUCCESS"
            assert latest_metadata(instance, "approval_gate")["status"] == "awaiting approval"
            assert latest_metadata(instance, "email_send")["sent"] is False

            # A reviewer approves from the launchpad: the approve_campaign job with its typed config.
            config = {"ops": {"record_decision": {"config": {
                "campaign": CAMPAIGN, "decision": "approve", "reviewer": "Dana Whitfield", "note": "ship it"}}}}
            params = {
                "selector": {"repositoryLocationName": "campaign_assets", "repositoryName": "__repository__",
                             "jobName": APPROVAL_JOB},
                "runConfigData": json.dumps(config),
            }
            launched = graphql(url, LAUNCH, {"params": params})["launchRun"]
            assert launched["__typename"] == "LaunchRunSuccess", launched
            approval_run = launched["run"]["runId"]
            assert wait_for("the approval run", lambda: finished(instance, approval_run), timeout=300, interval=1) == "SUCCESS"
            ledger_url = f"sqlite:///{Path(env['WORKSPACE_DIR']) / 'ledger.sqlite'}"
            with Approvals(ledger_url) as store:
                state = store.state("acme", CAMPAIGN)
                assert state is not None and state.approved and state.decision.via == f"dagster:{approval_run}"

            # The approvals sensor runs the gate and distribution for that decision.
            def distributed() -> str | None:
                found = runs(instance, **{"campaign_assets/decision": str(state.decision.id)})
                return found and finished(instance, found[0].run_id)

            assert wait_for("the distribution run", distributed, timeout=600, interval=2) == "SUCCESS"
            assert latest_metadata(instance, "approval_gate")["status"] == "approved"
            assert latest_metadata(instance, "email_send")["sent"] is True
            with Ledger(ledger_url) as ledger:
                sent = {r.scope.asset for r in ledger.campaign_rows("acme", CAMPAIGN) if r.status == "created"}
            assert {"email_send", "social_posts", "published_site"} <= sent
