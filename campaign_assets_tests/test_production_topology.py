"""The production topology of deploy/, run on this machine (README: "When one
machine is not enough").

Dagster's storage and the ledger in one fresh Postgres database; the code
location in its own gRPC server (``dagster code-server start``);
dagster-webserver and dagster-daemon loading it through a workspace.yaml with
``grpc_server`` (the DefaultRunLauncher then starts every run through that
server); asset values and artifacts on moto's S3 (``CAMPAIGN_IO_BASE`` and
``WORKSPACE_DIR`` at ``s3://...``); every
vendor served by the sandbox. One asset backfill over a few campaigns is
launched over GraphQL, as the UI does. Then every run succeeded, the sandbox
holds no duplicate object, the values are in the bucket, and a
``report_refresh_job`` run loaded its upstream values, written by other runs,
from there. Every process is stopped by its pid (process group).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pytest
import sqlalchemy as sa
import yaml
from dagster_graphql import DagsterGraphQLClient

from campaign_assets_tests.support.dagster import daemon_args, webserver_args, webserver_up
from campaign_assets_tests.support.ports import HOST, free_port
from campaign_assets_tests.support.processes import start_in_group, stop_groups, wait_for
from campaign_assets_tests.support.s3 import moto_s3
from campaign_assets_tests.support.sandbox import duplicates, sandbox_process

pytestmark = [pytest.mark.timeout(1500), pytest.mark.slow]

PROJECT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LOCATION = "campaign_assets"
BUCKET = "campaign-prod"
CAMPAIGNS = int(os.environ.get("TOPOLOGY_CAMPAIGNS", "10"))  # the 10 (200 s alone on two cores); fewer for a quick loop
UPSTREAM = {
    "campaign_spec", "campaign_brief", "media_plan", "project_tasks", "creatives",
    "content_library", "landing_page", "dsp_activation",
}
LAUNCH = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}"""


def gql(url: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    body = httpx.post(f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=60).json()
    assert not body.get("errors"), body["errors"]
    return body["data"]


def location_loaded(url: str) -> bool:
    data = gql(url, """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
        locationOrLoadError { __typename ... on PythonError { message } } } } } }""")
    entry = {e["name"]: e for e in data["workspaceOrError"]["locationEntries"]}.get(LOCATION)
    error = entry and entry["locationOrLoadError"]
    if error and error["__typename"] == "PythonError":
        raise AssertionError(error["message"])
    return bool(entry and entry["loadStatus"] == "LOADED" and error)


def write_specs(folder: Path, count: int) -> list[str]:
    seed = yaml.safe_load((PROJECT / "campaigns" / "q4-product-launch.yaml").read_text())
    ids = [f"topology-{i:02d}" for i in range(1, count + 1)]
    for cid in ids:
        spec = seed | {"id": cid, "name": f"Topology {cid[-2:]}"}
        (folder / f"{cid}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return ids


@pytest.fixture
def topology(tmp_path: Path, pg_url: str) -> Iterator[dict[str, Any]]:
    home, campaigns = tmp_path / "home", tmp_path / "campaigns"
    home.mkdir()
    campaigns.mkdir()
    instance_config = yaml.safe_load((PROJECT / "dagster.postgres.yaml").read_text())
    instance_config["concurrency"] = yaml.safe_load((PROJECT / "dagster.yaml").read_text())["concurrency"]
    (home / "dagster.yaml").write_text(yaml.safe_dump(instance_config))
    ids = write_specs(campaigns, CAMPAIGNS)
    code_port, web_port = free_port(), free_port()
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(yaml.safe_dump(
        {"load_from": [{"grpc_server": {"host": HOST, "port": code_port, "location_name": LOCATION}}]}
    ))
    with moto_s3() as s3, sandbox_process(0.02) as sandbox:
        s3.create_bucket(BUCKET)
        env = dict(os.environ) | sandbox.env | s3.env | {
            "DAGSTER_HOME": str(home),
            "DAGSTER_PG_URL": pg_url,
            "CAMPAIGN_LEDGER_URL": pg_url,
            "CAMPAIGN_IO_BASE": f"s3://{BUCKET}/io",
            "CAMPAIGNS_DIR": str(campaigns),
            # Artifacts in the bucket too, mirrored through each host's cache (storage.py).
            "WORKSPACE_DIR": f"s3://{BUCKET}/workspace",
            "WORKSPACE_CACHE_DIR": str(tmp_path / "cache"),
        }
        old = dict(os.environ)
        os.environ.update(env)  # this process reads the same instance
        procs: list[subprocess.Popen] = []
        try:
            subprocess.run([str(BIN / "campaign-assets"), "pools"], env=env, check=True, stdout=subprocess.DEVNULL)
            instance = dg.DagsterInstance.get()
            instance.add_dynamic_partitions("campaigns", ids)
            code = [str(BIN / "dagster"), "code-server", "start", "-m", "campaign_assets.definitions",
                    "--location-name", LOCATION, "-h", HOST, "-p", str(code_port)]
            url = f"http://{HOST}:{web_port}"
            health = [str(BIN / "dagster"), "api", "grpc-health-check", "-h", HOST, "-p", str(code_port)]
            for name, args in (("code", code), ("webserver", webserver_args(web_port, str(workspace))),
                               ("daemon", daemon_args(str(workspace)))):
                with open(tmp_path / f"{name}.log", "ab") as log:
                    procs.append(start_in_group(args, cwd=tmp_path, env=env, output=log))
                if name == "code":  # the webserver and daemon start against a serving code server
                    def serving() -> bool:
                        assert procs[0].poll() is None, f"the code server exited: {logs(tmp_path)}"
                        return subprocess.run(health, check=False, env=env, capture_output=True).returncode == 0

                    wait_for("the code server", serving, timeout=240, interval=2)

            def up() -> bool:
                for proc in procs:
                    assert proc.poll() is None, f"{proc.args[:3]} exited: {logs(tmp_path)}"
                return webserver_up(url) and location_loaded(url)

            wait_for("the webserver and the code server", up, timeout=240)
            yield {"url": url, "port": web_port, "pg_url": pg_url, "ids": ids, "instance": instance, "s3": s3, "sandbox": sandbox,
                   "procs": procs, "root": tmp_path}
        finally:
            stop_groups(procs, grace_s=20)
            os.environ.clear()
            os.environ.update(old)


def logs(root: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(root.glob("*.log")))


def test_backfill_over_grpc_postgres_and_s3(topology: dict[str, Any]) -> None:
    url, ids, instance = topology["url"], topology["ids"], topology["instance"]
    # The campaign graph (campaign_job's assets): campaign_performance, campaign x day, would
    # widen the backfill to every day of each campaign.
    nodes = gql(url, "{ assetNodes { assetKey { path } jobNames } }")["assetNodes"]
    keys = [n["assetKey"] for n in nodes if "campaign_job" in n["jobNames"]]
    launched = gql(url, LAUNCH, {"params": {"assetSelection": keys, "partitionNames": ids}})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]

    def done() -> list[dg.DagsterRun] | None:
        for proc in topology["procs"]:
            assert proc.poll() is None, logs(topology["root"])
        backfill = instance.get_backfill(backfill_id)
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        if backfill.status.value != "REQUESTED" and runs and all(r.is_finished for r in runs):
            return runs
        return None

    runs = wait_for(f"backfill {backfill_id}", done, timeout=1200, interval=3)
    assert {r.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}, logs(topology["root"])
    assert {r.tags["dagster/partition"] for r in runs} == set(ids)
    # Every run went through the code server, and its values to the bucket.
    keys_in_bucket = topology["s3"].keys(BUCKET, "io/")
    for cid in ids:
        for asset in UPSTREAM | {"summary_report"}:
            assert f"io/{asset}/{cid}" in keys_in_bucket, (asset, cid)
    # ...and every campaign's artifacts: the landing page and the creatives.
    for cid in ids:
        artifacts = topology["s3"].keys(BUCKET, f"workspace/acme/{cid}/")
        assert f"workspace/acme/{cid}/landing_page.html" in artifacts, artifacts
        assert any(key.endswith(".png") for key in artifacts), artifacts

    # The daily refresh: one run of report_refresh_job that loads upstream values other runs wrote.
    client = DagsterGraphQLClient(HOST, port_number=topology["port"])
    run_id = client.submit_job_execution("report_refresh_job", tags={"dagster/partition": ids[0]})
    terminal = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
    status = wait_for("report_refresh_job", lambda: (s := client.get_run_status(run_id)) in terminal and s, timeout=300)
    assert status == dg.DagsterRunStatus.SUCCESS, logs(topology["root"])
    loaded = instance.all_logs(run_id, of_type=dg.DagsterEventType.LOADED_INPUT)
    assert {e.dagster_event.event_specific_data.input_name for e in loaded} == UPSTREAM
    writers = {r.run_id for r in runs if r.tags["dagster/partition"] == ids[0]}
    assert run_id not in writers and writers

    # Wait out any run the spec sensor requested beside the backfill, then count objects.
    wait_for("every run to finish", lambda: all(r.is_finished for r in instance.get_runs()), timeout=600, interval=3)
    assert not duplicates(topology["sandbox"].state())
    # The ledger shares Dagster's database: every campaign's items are there, none failed.
    engine = sa.create_engine(topology["pg_url"])
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT campaign, status FROM ledger_items")).all()
    finally:
        engine.dispose()
    assert {campaign for campaign, _ in rows} == set(ids)
    assert {status for _, status in rows} == {"created"}, sorted({s for _, s in rows})
