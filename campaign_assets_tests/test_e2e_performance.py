"""A date-range backfill of campaign_performance through the real webserver and daemon (issue #16).

The spec sensor registers and drafts a campaign whose flight started ten days ago; a backfill of
three of its days is launched over GraphQL as the UI's partition grid does (one asset, a range of
campaign x day keys); the daemon runs one run per day, each stores its rows in performance_daily,
and each success makes the performance_report_sensor refresh the campaign's summary report.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from campaign_assets.ledger import Ledger
from campaign_assets.settings import PARTITION_TAG, REPORT_REFRESH_JOB
from campaign_assets_tests.support.dagster import (
    dagster_processes,
    graphql,
    temp_project,
)
from campaign_assets_tests.support.ports import free_port
from campaign_assets_tests.support.processes import wait_for
from campaign_assets_tests.test_performance_cli import spec_data

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

CAMPAIGN = "ten-days-in"
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}
BACKFILL = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}"""
BACKFILL_STATUS = """
query($id: String!) {
  partitionBackfillOrError(backfillId: $id) { __typename ... on PartitionBackfill { status } }
  runsOrError(filter: {tags: [{key: "dagster/backfill", value: $id}]}) {
    ... on Runs { results { runId status tags { key value } } }
  }
}"""


def runs(instance: dg.DagsterInstance, **filters: Any) -> list[dg.DagsterRun]:
    return list(instance.get_runs(filters=dg.RunsFilter(**filters)))


def test_a_date_range_backfill_of_one_campaigns_days(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    start = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=10)
    spec = tmp_path / f"{CAMPAIGN}.yaml"
    spec.write_text(yaml.safe_dump(spec_data(start), sort_keys=False))
    days = [start + dt.timedelta(days=i) for i in range(3)]
    with temp_project(specs=[spec]) as env:
        for name, value in env.items():  # this process reads the same instance and ledger
            monkeypatch.setenv(name, value)
        with dagster_processes(env | {"CAMPAIGN_PROGRESS": "off"}, free_port(), code_server=True) as url:
            instance = dg.DagsterInstance.get()

            def drafted() -> str | None:
                found = runs(instance, tags={PARTITION_TAG: CAMPAIGN})
                return found[0].status.value if found and found[0].is_finished else None

            assert wait_for("the sensor's campaign run", drafted, timeout=600, interval=2) == "SUCCESS"

            selector = {"assetKey": {"path": ["campaign_performance"]},
                        "partitions": {"range": {"start": f"{CAMPAIGN}|{days[0]}", "end": f"{CAMPAIGN}|{days[-1]}"}}}
            params = {"partitionsByAssets": [selector], "title": "three days"}
            launched = graphql(url, BACKFILL, {"params": params})["launchPartitionBackfill"]
            assert launched["__typename"] == "LaunchBackfillSuccess", launched
            backfill = launched["backfillId"]

            def finished() -> dict[str, Any] | None:
                data = graphql(url, BACKFILL_STATUS, {"id": backfill})
                found = data["runsOrError"]["results"]
                done = data["partitionBackfillOrError"]["status"] not in ("REQUESTED", "CANCELING", "FAILING")
                return data if done and len(found) == len(days) and all(r["status"] in TERMINAL for r in found) else None

            data = wait_for("the backfill", finished, timeout=600, interval=2)
            assert data["partitionBackfillOrError"]["status"] in ("COMPLETED", "COMPLETED_SUCCESS")
            backfill_runs = data["runsOrError"]["results"]
            assert all(r["status"] == "SUCCESS" for r in backfill_runs), backfill_runs
            keys = sorted(t["value"] for r in backfill_runs for t in r["tags"] if t["key"] == "dagster/partition")
            assert keys == [f"{CAMPAIGN}|{d}" for d in days]  # one run per campaign day

            with Ledger(f"sqlite:///{Path(env['WORKSPACE_DIR']) / 'ledger.sqlite'}") as ledger:
                stored = ledger.performance("acme", CAMPAIGN)
            assert sorted({str(d) for d in stored["day"]}) == [str(d) for d in days]
            assert len(stored) == 2 * len(days)  # two line items (amazon, dv360) a day, once each

            # Each day's success asks for a report refresh; the last one shows the latest day.
            def refreshed() -> list[dg.DagsterRun] | None:
                found = [r for r in runs(instance, job_name=REPORT_REFRESH_JOB) if r.tags.get(PARTITION_TAG) == CAMPAIGN]
                return found if len(found) >= len(days) and all(r.is_finished for r in found) else None

            reports = wait_for("the report refreshes", refreshed, timeout=600, interval=2)
            assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in reports)
            report = (Path(env["WORKSPACE_DIR"]) / "acme" / CAMPAIGN / "summary_report.md").read_text()
            assert "## Performance through" in report and "| display |" in report
