"""End to end through the real webserver and daemon (DESIGN.md §7).

One temp DAGSTER_HOME (the project's dagster.yaml: queued run coordinator,
pools), temp CAMPAIGNS_DIR and WORKSPACE_DIR, local backends (no tokens) but
for images, served by the vendor sandbox behind a gate (`ImageGate`): the
sensor's first creatives steps hold the tight images pool until the test has
seen another one blocked on it. ``dagster-webserver`` and ``dagster-daemon``
run as subprocesses in their own process groups; the tests talk GraphQL to the
webserver like the UI does and read the same instance for what GraphQL does
not show.

Every test stands alone (``pytest -k <name>``): what it needs done first (the
sensor's first runs, the backfill, the edited spec) is a module fixture that
does it once. The last test stops both processes and checks that none they
started is left; a test after it gets them started again.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pytest
from dagster_graphql import DagsterGraphQLClient

from campaign_assets.runs import apply_pool_limits
from campaign_assets.settings import POOL_LIMITS
from campaign_assets.resources import SERVICE_ENV
from campaign_assets.sandbox import SandboxConfig, SandboxServer, service_env
from campaign_assets.spec import load_spec, spec_hash

from campaign_assets_tests.support.dagster import daemon_args, webserver_args, webserver_up
from campaign_assets_tests.support.in_flight import peak_in_flight
from campaign_assets_tests.support.ports import free_port
from campaign_assets_tests.support.processes import descendants, reap, start_in_group, stop_groups, wait_for

pytestmark = [pytest.mark.timeout(900), pytest.mark.slow]  # a real webserver and daemon; setups run whole campaigns

PROJECT = Path(__file__).resolve().parents[1]
LOCATION, REPOSITORY = "campaign_assets", "__repository__"
EXAMPLE_IDS = sorted(p.stem for p in (PROJECT / "campaigns").glob("*.yaml"))
UNSEEN = "e2e-unseen-launch"
BACKFILLED = ["holiday-retail-push", "spring-webinar-series"]
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}
CAMPAIGN_ASSETS = (
    "campaign_spec",
    "campaign_brief",
    "media_plan",
    "project_tasks",
    "creatives",
    "content_pieces",
    "content_library",
    "landing_page",
    "dsp_activation",
    "summary_report",
)
# Upstream of each asset, as in defs/campaign/assets.py (DESIGN.md §2).
EXPECTED_DEPS: dict[str, set[str]] = {
    "campaign_spec": set(),
    "campaign_brief": {"campaign_spec"},
    "media_plan": {"campaign_spec"},
    "project_tasks": {"campaign_spec"},
    "creatives": {"campaign_spec"},
    "content_pieces": {"campaign_spec", "campaign_brief"},
    "content_library": {"campaign_spec", "content_pieces"},
    "landing_page": {"campaign_spec", "campaign_brief", "creatives"},
    "dsp_activation": {"campaign_spec", "media_plan"},
    # Everything but content_pieces, which reaches the report through the vault.
    "summary_report": set(CAMPAIGN_ASSETS) - {"summary_report", "content_pieces"},
}
# The images pool, tight: the sensor's first runs (one per spec, launched at once)
# must queue for it while the image gate is shut.
E2E_POOL_LIMITS = dict(POOL_LIMITS) | {"images": 2}
SHUT, OPEN = 100.0, 0.01  # sandbox scales: an image in 9,000 s (held), then in 0.9 s
SPEC_HASH_TAG = "campaign_assets/spec_hash"


# ---- the system -------------------------------------------------------------------------
@dataclass
class System:
    root: Path
    port: int
    env: dict[str, str]
    procs: list[subprocess.Popen] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)  # every descendant observed while running
    stopped: bool = True

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def campaigns(self) -> Path:
        return self.root / "campaigns"

    @property
    def client(self) -> DagsterGraphQLClient:
        return DagsterGraphQLClient("127.0.0.1", port_number=self.port)

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(str(self.home))

    def ensure_running(self) -> System:
        """Start dagster-webserver and dagster-daemon unless they run; wait for the code location."""
        if not self.stopped:
            return self
        self.procs, self.stopped = [], False
        for name, args in (("dagster-webserver", webserver_args(self.port)), ("dagster-daemon", daemon_args())):
            with open(self.root / f"{name}.log", "ab") as log:
                self.procs.append(start_in_group(args, cwd=self.root, env=self.env, output=log))
        wait_for("the webserver", lambda: server_up(self), timeout=120)
        wait_for("the code location", lambda: location_loaded(self), timeout=120)
        return self

    def check_running(self) -> None:
        self.seen |= descendants([p.pid for p in self.procs])
        for proc in self.procs:
            if proc.poll() is not None:
                raise AssertionError(f"{proc.args[0]} exited with {proc.returncode}:\n{self.logs()}")

    def logs(self, tail: int = 4000) -> str:
        logs = sorted(self.root.glob("*.log"))
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-tail:]}" for p in logs)

    def gql(self, query: str, **variables: Any) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.port}/graphql"
        response = httpx.post(url, json={"query": query, "variables": variables}, timeout=60)
        assert response.status_code == 200 or "errors" in response.text, response.text
        body = response.json()
        assert not body.get("errors"), body["errors"]
        return body["data"]

    def wait_run(self, run_id: str, timeout: float = 120) -> str:
        def status() -> str | None:
            self.check_running()
            value = self.client.get_run_status(run_id).value
            return value if value in TERMINAL else None

        return wait_for(f"run {run_id}", status, timeout, interval=1)

    def expect_success(self, run_id: str, timeout: float = 120) -> None:
        status = self.wait_run(run_id, timeout)
        assert status == "SUCCESS", f"run {run_id}: {status}\n{self.explain(run_id)}"

    def explain(self, run_id: str) -> str:
        """The errors a failed run logged, for the assertion message."""
        lines = []
        with self.instance() as instance:
            for record in instance.get_records_for_run(run_id).records:
                entry = record.event_log_entry
                error = getattr(entry.dagster_event.event_specific_data, "error", None) if entry.dagster_event else None
                if error is not None:
                    lines.append(f"{entry.step_key or 'run'}: {error.to_string()[-3000:]}")
        return "\n".join(lines) or self.logs()

    def stop(self) -> set[int]:
        """Terminate each process group, wait, kill on timeout; returns what is left."""
        if self.stopped:
            return set()
        self.stopped = True
        self.seen |= descendants([p.pid for p in self.procs])
        stop_groups(self.procs, grace_s=30)
        return reap(self.seen)  # children of the groups get a moment to follow their parents out


DAGSTER_YAML_STORAGE = """
storage:
  sqlite:
    base_dir: {home}/storage
local_artifact_storage:
  module: dagster._core.storage.root
  class: LocalArtifactStorage
  config:
    base_dir: {home}
"""


class ImageGate:
    """The image vendor (the sandbox), shut until `open`: every image request is held
    for hours, so the first creatives steps keep their images-pool slots for as long as
    the test needs. `open` restarts the sandbox on the same port, fast; the held
    requests end with an error and are retried there (image calls are idempotent)."""

    def __init__(self) -> None:
        self.server = SandboxServer(SandboxConfig(scale=SHUT, limits_enabled=False)).start()
        self.url = self.server.url
        self.is_open = False

    def open(self) -> None:
        if not self.is_open:
            self.server.stop()
            port = int(self.url.rsplit(":", 1)[1])
            self.server = SandboxServer(SandboxConfig(scale=OPEN, limits_enabled=False), port=port).start()
            self.is_open = True


@pytest.fixture(scope="module")
def image_gate() -> Iterator[ImageGate]:
    gate = ImageGate()
    try:
        yield gate
    finally:
        gate.server.stop()


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory, image_gate: ImageGate) -> Iterator[System]:
    root = tmp_path_factory.mktemp("e2e")
    home = root / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((PROJECT / "dagster.yaml").read_text() + DAGSTER_YAML_STORAGE.format(home=home))
    (root / "workspace.yaml").write_text(
        "load_from:\n"
        "  - python_module:\n"
        "      module_name: campaign_assets.definitions\n"
        f"      location_name: {LOCATION}\n"
        f"      working_directory: {PROJECT}\n"
    )
    shutil.copytree(PROJECT / "campaigns", root / "campaigns")
    write_unseen_spec(root / "campaigns")
    (root / "campaigns" / "broken.yaml").write_text("id: broken\nname: [unclosed\n")  # never stops the others
    secrets = {token for _cls, _prefix, token in SERVICE_ENV.values() if token} | {"CAMPAIGN_LEDGER_URL"}
    env = {k: v for k, v in os.environ.items() if k not in secrets and not k.endswith("_BASE_URL")}
    env |= {k: v for k, v in service_env(image_gate.url).items() if k.startswith("IMAGES_")}
    env |= {
        "DAGSTER_HOME": str(home),
        "CAMPAIGNS_DIR": str(root / "campaigns"),
        "WORKSPACE_DIR": str(root / "workspace"),
        "PYTHONUNBUFFERED": "1",
    }
    system = System(root, free_port(), env)
    with system.instance() as instance:
        assert apply_pool_limits(instance, E2E_POOL_LIMITS) == E2E_POOL_LIMITS  # as `campaign-assets pools` does
    try:
        yield system.ensure_running()
    finally:
        system.stop()


@pytest.fixture
def system(started: System) -> System:
    """The module's webserver and daemon, running (started again if a test stopped them)."""
    return started.ensure_running()


def write_unseen_spec(folder: Path) -> None:
    """A small campaign the sensor has never seen."""
    (folder / f"{UNSEEN}.yaml").write_text(
        f"""id: {UNSEEN}
name: E2E Unseen Launch
organization: e2e-org
objective: conversion
audience: Operations leads at logistics companies
brand: {{name: Unseen, primary_color: "#22AA55"}}
budget: {{total: 12000, currency: EUR}}
flight: {{start: 2027-05-03, end: 2027-05-30}}
channels:
  - {{name: display, share: 0.6, dsp: dv360}}
  - {{name: search, share: 0.4}}
vectors:
  - {{stakeholder_group: Ops Leads, content_types: [email]}}
creative_sizes: [300x250]
tasks:
  - {{name: Kickoff, offset_days: -7}}
  - {{name: Launch, offset_days: 0}}
"""
    )


def server_up(system: System) -> bool:
    system.check_running()
    return webserver_up(f"http://127.0.0.1:{system.port}")


def location_loaded(system: System) -> bool:
    system.check_running()
    data = system.gql(
        """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
              locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
    )
    entries = {e["name"]: e for e in data["workspaceOrError"]["locationEntries"]}
    entry = entries.get(LOCATION)
    if entry and entry["locationOrLoadError"] and entry["locationOrLoadError"]["__typename"] == "PythonError":
        raise AssertionError(entry["locationOrLoadError"]["message"])
    return bool(entry and entry["loadStatus"] == "LOADED" and entry["locationOrLoadError"])


SENSOR_TICKS = """
query($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    __typename
    ... on Sensor { sensorState { status ticks(limit: 20) { status runKeys runIds skipReason cursor error { message } } } }
  }
}"""


def sensor_ticks(system: System) -> list[dict[str, Any]]:
    selector = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "sensorName": "campaign_specs_sensor"}
    data = system.gql(SENSOR_TICKS, selector=selector)["sensorOrError"]
    assert data["__typename"] == "Sensor", data
    assert data["sensorState"]["status"] == "RUNNING"  # default status: no one had to switch it on
    return data["sensorState"]["ticks"]


def tick_with_keys(system: System, keys: set[str], timeout: float) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        system.check_running()
        for tick in sensor_ticks(system):
            assert tick["status"] != "FAILURE", tick["error"]
            if keys <= set(tick["runKeys"]) and len(tick["runIds"]) == len(tick["runKeys"]):
                return tick
        return None

    try:
        return wait_for(f"a sensor tick requesting {sorted(keys)}", find, timeout, interval=1)
    except AssertionError as exc:
        recent = [{k: t[k] for k in ("status", "runKeys", "skipReason")} for t in sensor_ticks(system)[:3]]
        raise AssertionError(f"{exc}; latest ticks: {recent}\n{system.logs()}") from None


def run_key(folder: Path, campaign: str, rev: int = 0) -> str:
    return f"{campaign}:{spec_hash(load_spec(folder / f'{campaign}.yaml'))}:{rev}"


# ---- what tests need done first: module fixtures, each done once whoever asks first ----------
@pytest.fixture(scope="module")
def first_tick(started: System, image_gate: ImageGate) -> dict[str, Any]:
    """The sensor's first tick, requesting a run for every spec, each run ended in success.

    Those runs contend for the images pool: the gate stays shut until the pool is full
    and another creatives step waits for it."""
    system = started.ensure_running()
    ids = sorted([*EXAMPLE_IDS, UNSEEN])
    tick = tick_with_keys(system, {run_key(system.campaigns, i) for i in ids}, timeout=90)
    if not image_gate.is_open:
        wait_for("the images pool full with a step waiting", lambda: pool_contended(system, "images"), timeout=400)
        image_gate.open()
    for run_id in tick["runIds"]:
        system.expect_success(run_id, timeout=400)
    return tick


def pool_contended(system: System, pool: str) -> bool:
    system.check_running()
    with system.instance() as instance:
        info = instance.event_log_storage.get_concurrency_info(pool)
    return len(info.claimed_slots) >= info.slot_count and info.pending_step_count > 0


@pytest.fixture(scope="module")
def backfill_id(started: System, first_tick: dict[str, Any]) -> str:
    """A backfill over two campaigns, launched as "Materialize all" does in the UI (not waited for)."""
    system = started.ensure_running()
    nodes = system.gql("{ assetNodes { assetKey { path } isPartitioned jobNames } }")["assetNodes"]
    selection = [n["assetKey"] for n in nodes if n["isPartitioned"] and "campaign_job" in n["jobNames"]]
    assert {"/".join(k["path"]) for k in selection} >= set(CAMPAIGN_ASSETS)
    params = {"assetSelection": selection, "partitionNames": BACKFILLED}
    launched = system.gql(BACKFILL, params=params)["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    return launched["backfillId"]


@pytest.fixture(scope="module")
def edited_spec(started: System, first_tick: dict[str, Any]) -> str:
    """The unseen campaign's budget raised after its first run; returns the new spec hash."""
    spec_file = started.campaigns / f"{UNSEEN}.yaml"
    spec_file.write_text(spec_file.read_text().replace("total: 12000", "total: 13000"))
    return spec_hash(load_spec(spec_file))


# ---- the tests (each alone passes too) -------------------------------------------------------
def test_asset_graph_matches_the_design(system: System) -> None:
    data = system.gql("{ assetNodes { assetKey { path } dependencyKeys { path } } }")
    deps = {
        "/".join(n["assetKey"]["path"]): {"/".join(d["path"]) for d in n["dependencyKeys"]} for n in data["assetNodes"]
    }
    assert set(CAMPAIGN_ASSETS) <= set(deps)
    for asset, expected in EXPECTED_DEPS.items():
        assert design_upstream(asset, deps) == expected, asset


def design_upstream(asset: str, deps: dict[str, set[str]]) -> set[str]:
    """The design assets an asset reads, looking through assets the design
    table does not name (e.g. the spec's per-consumer section assets)."""
    found: set[str] = set()
    stack, visited = list(deps[asset]), set()
    while stack:
        dep = stack.pop()
        if dep in visited:
            continue
        visited.add(dep)
        if dep in CAMPAIGN_ASSETS:
            found.add(dep)
        else:
            stack.extend(deps.get(dep, ()))
    return found


def test_sensor_adds_partitions_and_runs_every_new_spec(system: System, first_tick: dict[str, Any]) -> None:
    ids = sorted([*EXAMPLE_IDS, UNSEEN])
    assert sorted(first_tick["runKeys"]) == sorted(run_key(system.campaigns, i) for i in ids)
    assert list(json.loads(first_tick["cursor"])["invalid"]) == ["broken.yaml"]
    with system.instance() as instance:
        assert set(instance.get_dynamic_partitions("campaigns")) >= set(ids)
        for run_id in first_tick["runIds"]:
            assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.SUCCESS
    assert (system.root / "workspace" / "e2e-org" / UNSEEN / "landing_page.html").exists()


ASSET_STATE = """
query($key: AssetKeyInput!, $partition: String!) {
  assetNodeOrError(assetKey: $key) {
    ... on AssetNode { dataVersion(partition: $partition) staleStatus(partition: $partition) }
  }
}"""


def test_edit_a_spec(system: System, edited_spec: str) -> None:
    """Raising the budget of one spec: the sensor requests one run, for that campaign only,
    tagged with the new spec hash; it succeeds and leaves the campaign's assets fresh, made
    from the new spec."""
    expected = f"{UNSEEN}:{edited_spec}:1"
    assert run_key(system.campaigns, UNSEEN, rev=1) == expected
    tick = tick_with_keys(system, {expected}, timeout=120)
    assert tick["runKeys"] == [expected]  # the other specs are unchanged: nothing for them
    (run_id,) = tick["runIds"]
    system.expect_success(run_id, timeout=180)
    with system.instance() as instance:
        run = instance.get_run_by_id(run_id)
        assert run.tags[SPEC_HASH_TAG] == edited_spec and run.tags["dagster/partition"] == UNSEEN
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("campaign_spec"), asset_partitions=[UNSEEN]), limit=1
        ).records
        (latest,) = records
        assert latest.run_id == run_id
        assert latest.asset_materialization.metadata["budget"].value == "13,000.00 EUR"
    for asset in CAMPAIGN_ASSETS:
        state = system.gql(ASSET_STATE, key={"path": [asset]}, partition=UNSEEN)["assetNodeOrError"]
        assert state["staleStatus"] == "FRESH", (asset, state)
        if asset == "campaign_spec":
            assert state["dataVersion"] == edited_spec


BACKFILL = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on InvalidStepError { invalidStepKey }
    ... on PartitionSetNotFoundError { message }
  }
}"""
BACKFILL_STATUS = """
query($id: String!) {
  partitionBackfillOrError(backfillId: $id) { __typename ... on PartitionBackfill { status } }
  runsOrError(filter: {tags: [{key: "dagster/backfill", value: $id}]}) {
    ... on Runs { results { runId status tags { key value } } }
  }
}"""


def test_launch_campaign_job_for_a_partition(system: System, first_tick: dict[str, Any]) -> None:
    run_id = system.client.submit_job_execution("campaign_job", tags={"dagster/partition": "q4-product-launch"})
    system.expect_success(run_id)


def test_the_backfill_runs_one_run_per_campaign_to_success(system: System, backfill_id: str) -> None:
    def finished() -> dict[str, Any] | None:
        system.check_running()
        data = system.gql(BACKFILL_STATUS, id=backfill_id)
        runs = data["runsOrError"]["results"]
        done = data["partitionBackfillOrError"]["status"] not in ("REQUESTED", "CANCELING", "FAILING")
        return data if done and len(runs) == len(BACKFILLED) and all(r["status"] in TERMINAL for r in runs) else None

    data = wait_for("the backfill", finished, timeout=240, interval=1)
    runs = data["runsOrError"]["results"]
    assert data["partitionBackfillOrError"]["status"] in ("COMPLETED", "COMPLETED_SUCCESS")
    for run in runs:
        assert run["status"] == "SUCCESS", system.explain(run["runId"])
    # Multi-run policy: one run per campaign partition.
    partitions = sorted(t["value"] for r in runs for t in r["tags"] if t["key"] == "dagster/partition")
    assert partitions == BACKFILLED


def test_runs_of_one_campaign_queue_behind_each_other(system: System, first_tick: dict[str, Any]) -> None:
    """Two runs of one campaign submitted at once (the UI beside the sensor): the run queue's
    limit on ``dagster/partition`` starts the second only once the first has ended; and over
    every run so far, no two runs of one campaign ever overlapped."""
    campaign = "spring-webinar-series"
    ids = [system.client.submit_job_execution("campaign_job", tags={"dagster/partition": campaign}) for _ in range(2)]
    for run_id in ids:
        system.expect_success(run_id, timeout=180)
    by_campaign: dict[str, list[tuple[float, float]]] = {}
    with system.instance() as instance:
        for record in instance.get_run_records():
            partition = record.dagster_run.tags.get("dagster/partition")
            if partition and record.start_time and record.end_time:
                by_campaign.setdefault(partition, []).append((record.start_time, record.end_time))
    assert len(by_campaign[campaign]) >= 3  # the sensor's first run and these two
    for partition, intervals in by_campaign.items():
        assert peak_in_flight(intervals) == 1, (partition, sorted(intervals))


POOLED_STEPS = {"creatives": "images", "campaign_brief": "llm", "content_pieces": "llm", "summary_report": "llm"}
STEP_EVENTS = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}


def pool_usage(instance: dg.DagsterInstance) -> tuple[dict[str, list[tuple[float, float]]], set[str]]:
    """Each pool's step spans (start to success or failure) over every run, and the pools
    a step was blocked on (Dagster's "Step blocked by limit for pool ..." engine event)."""
    spans: dict[str, list[tuple[float, float]]] = {pool: [] for pool in set(POOLED_STEPS.values())}
    blocked: set[str] = set()
    for run in instance.get_runs():
        starts: dict[str, float] = {}
        for record in instance.get_records_for_run(run.run_id, of_type=STEP_EVENTS).records:
            entry = record.event_log_entry
            step = entry.step_key
            if step not in POOLED_STEPS:
                continue
            if entry.dagster_event_type == dg.DagsterEventType.STEP_START:
                starts[step] = entry.timestamp
            elif step in starts:
                spans[POOLED_STEPS[step]].append((starts.pop(step), entry.timestamp))
        for record in instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT).records:
            message = record.event_log_entry.dagster_event.message or ""
            if message.startswith("Step blocked by limit for pool "):
                blocked.add(message.removeprefix("Step blocked by limit for pool "))
    return spans, blocked


def test_runs_respected_the_pools(system: System, first_tick: dict[str, Any]) -> None:
    """The sensor's first runs contend for the images pool (2 here; `first_tick`): some step
    was blocked on it, it was full at some moment and never over; across every run so far,
    no pool went over its limit."""
    with system.instance() as instance:
        spans, blocked = pool_usage(instance)
        assert instance.event_log_storage.get_concurrency_info("images").slot_count == E2E_POOL_LIMITS["images"]
    assert len(spans["images"]) >= len(first_tick["runIds"])
    assert "images" in blocked, "no step waited for the images pool: the pools were not put to the test"
    assert peak_in_flight(spans["images"]) == E2E_POOL_LIMITS["images"], sorted(spans["images"])  # reached
    for pool, intervals in spans.items():
        assert peak_in_flight(intervals) <= E2E_POOL_LIMITS[pool], (pool, sorted(intervals))  # never exceeded


SCHEDULE_DRY_RUN = """
mutation($selector: ScheduleSelector!, $timestamp: Float) {
  scheduleDryRun(selectorData: $selector, timestamp: $timestamp) {
    __typename
    ... on DryRunInstigationTick {
      evaluationResult { runRequests { runKey jobName tags { key value } } skipReason error { message } }
    }
    ... on PythonError { message }
  }
}"""


def test_schedule_refreshes_reports_of_live_campaigns(system: System, first_tick: dict[str, Any]) -> None:
    """The schedule's tick evaluated by the running code server (the UI's
    "Test schedule"), then its run requests launched and run to success."""
    day = dt.date(2027, 5, 10)  # live: the unseen campaign only (holiday, q4 and spring are not)
    specs = [load_spec(system.campaigns / f"{cid}.yaml") for cid in [*EXAMPLE_IDS, UNSEEN]]
    live = {s.id for s in specs if s.flight.start <= day <= s.flight.end}
    assert UNSEEN in live
    when = dt.datetime.combine(day, dt.time(6), tzinfo=dt.timezone.utc).timestamp()
    selector = {
        "repositoryLocationName": LOCATION,
        "repositoryName": REPOSITORY,
        "scheduleName": "report_refresh_schedule",
    }
    result = system.gql(SCHEDULE_DRY_RUN, selector=selector, timestamp=when)["scheduleDryRun"]
    assert result["__typename"] == "DryRunInstigationTick", result
    evaluation = result["evaluationResult"]
    assert not evaluation["error"], evaluation["error"]
    requests = evaluation["runRequests"]
    assert {r["runKey"] for r in requests} == {f"report:{cid}:{day}" for cid in live}
    for request in requests:
        tags = {t["key"]: t["value"] for t in request["tags"]}
        system.expect_success(system.client.submit_job_execution("report_refresh_job", tags=tags))


def test_processes_stop_and_leave_nothing_behind(system: System) -> None:
    system.check_running()
    assert system.seen, "the webserver and daemon start code servers and run workers"
    left = system.stop()
    assert all(p.returncode is not None for p in system.procs)
    assert not left, f"processes left behind: {sorted(left)}"
