"""End to end through the real webserver and daemon (DESIGN.md §7).

One temp DAGSTER_HOME (the project's dagster.yaml: queued run coordinator,
pools), temp CAMPAIGNS_DIR and WORKSPACE_DIR, local backends (no tokens).
``dagster-webserver`` and ``dagster-daemon`` run as subprocesses in their own
process groups; the tests talk GraphQL to the webserver like the UI does and
read the same instance for what GraphQL does not show. The last test stops
both and checks that no process they started is left.
"""

import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg
import httpx
import pytest
from dagster_graphql import DagsterGraphQLClient

from campaign_assets.runs import apply_pool_limits
from campaign_assets.settings import POOL_LIMITS
from campaign_assets.resources import SERVICE_ENV
from campaign_assets.spec import load_spec, spec_hash

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]  # a real webserver and daemon

PROJECT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
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
T = TypeVar("T")


# ---- processes ------------------------------------------------------------------------
def _proc_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state) for every process, from /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            table[int(entry.name)] = (int(fields[1]), fields[0])
    return table


def descendants(roots: list[int]) -> set[int]:
    table = _proc_table()
    found, frontier = set(), set(roots)
    while frontier:
        children = {pid for pid, (ppid, _) in table.items() if ppid in frontier} - found
        found |= children
        frontier = children
    return found


def alive(pids: set[int]) -> set[int]:
    table = _proc_table()
    return {pid for pid in pids if pid in table and table[pid][1] != "Z"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, check: Callable[[], T | None], timeout: float, interval: float = 0.5) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


@dataclass
class System:
    root: Path
    port: int
    env: dict[str, str]
    procs: list[subprocess.Popen] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)  # every descendant observed while running
    stopped: bool = False
    backfill_id: str | None = None

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

    def start(self, name: str, *args: str) -> None:
        log = open(self.root / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [str(BIN / name), *args],
            cwd=self.root,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.procs.append(proc)

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
        for proc in self.procs:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        # Children of the groups get a moment to follow their parents out.
        deadline = time.monotonic() + 15
        while alive(self.seen) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = alive(self.seen)
        for pid in left:  # clean up, and let the test report them
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return left


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


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
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
    env |= {
        "DAGSTER_HOME": str(home),
        "CAMPAIGNS_DIR": str(root / "campaigns"),
        "WORKSPACE_DIR": str(root / "workspace"),
        "PYTHONUNBUFFERED": "1",
    }
    system = System(root, free_port(), env)
    with system.instance() as instance:
        assert apply_pool_limits(instance) == dict(POOL_LIMITS)  # what `campaign-assets pools` does
    try:
        system.start("dagster-webserver", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(system.port))
        system.start("dagster-daemon", "run", "-w", "workspace.yaml")
        wait_for("the webserver", lambda: server_up(system), timeout=120)
        wait_for("the code location", lambda: location_loaded(system), timeout=120)
        yield system
    finally:
        system.stop()


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
    try:
        return httpx.get(f"http://127.0.0.1:{system.port}/server_info", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


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


# ---- the tests, in order ------------------------------------------------------------------
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


def test_sensor_adds_partitions_and_runs_every_new_spec(system: System) -> None:
    ids = sorted([*EXAMPLE_IDS, UNSEEN])
    tick = tick_with_keys(system, {run_key(system.campaigns, i) for i in ids}, timeout=90)
    assert list(json.loads(tick["cursor"])["invalid"]) == ["broken.yaml"]
    with system.instance() as instance:
        assert set(instance.get_dynamic_partitions("campaigns")) >= set(ids)
    for run_id in tick["runIds"]:
        system.expect_success(run_id, timeout=180)
    assert (system.root / "workspace" / "e2e-org" / UNSEEN / "landing_page.html").exists()


def test_edit_a_spec(system: System) -> None:
    """Written now, checked after the backfill: the sensor's 30-s interval
    overlaps the runs in between."""
    spec_file = system.campaigns / f"{UNSEEN}.yaml"
    spec_file.write_text(spec_file.read_text().replace("total: 12000", "total: 13000"))


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


def test_launch_a_backfill_over_two_campaigns(system: System) -> None:
    # What "Materialize all" over the campaign graph selects in the UI.
    nodes = system.gql("{ assetNodes { assetKey { path } isPartitioned jobNames } }")["assetNodes"]
    selection = [n["assetKey"] for n in nodes if n["isPartitioned"] and "campaign_job" in n["jobNames"]]
    assert {"/".join(k["path"]) for k in selection} >= set(CAMPAIGN_ASSETS)
    params = {"assetSelection": selection, "partitionNames": BACKFILLED}
    launched = system.gql(BACKFILL, params=params)["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    # Checked after the single launch below, so the backfill daemon's 30-s loop overlaps that run.
    system.backfill_id = launched["backfillId"]


def test_launch_campaign_job_for_a_partition(system: System) -> None:
    run_id = system.client.submit_job_execution("campaign_job", tags={"dagster/partition": "q4-product-launch"})
    system.expect_success(run_id)


def test_the_backfill_runs_one_run_per_campaign_to_success(system: System) -> None:
    assert system.backfill_id, "the backfill was not launched"

    def finished() -> dict[str, Any] | None:
        system.check_running()
        data = system.gql(BACKFILL_STATUS, id=system.backfill_id)
        runs = data["runsOrError"]["results"]
        done = data["partitionBackfillOrError"]["status"] not in ("REQUESTED", "CANCELING", "FAILING")
        return data if done and len(runs) == len(BACKFILLED) and all(r["status"] in TERMINAL for r in runs) else None

    data = wait_for("the backfill", finished, timeout=150, interval=1)
    runs = data["runsOrError"]["results"]
    assert data["partitionBackfillOrError"]["status"] in ("COMPLETED", "COMPLETED_SUCCESS")
    for run in runs:
        assert run["status"] == "SUCCESS", system.explain(run["runId"])
    # Multi-run policy: one run per campaign partition.
    partitions = sorted(t["value"] for r in runs for t in r["tags"] if t["key"] == "dagster/partition")
    assert partitions == BACKFILLED


def test_sensor_runs_the_changed_spec_and_ignores_unchanged_ones(system: System) -> None:
    expected = run_key(system.campaigns, UNSEEN, rev=1)
    tick = tick_with_keys(system, {expected}, timeout=90)
    assert tick["runKeys"] == [expected]  # the other specs are unchanged: nothing for them
    system.expect_success(tick["runIds"][0])


def test_runs_of_one_campaign_queue_behind_each_other(system: System) -> None:
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
        assert max_overlap(intervals) == 1, (partition, sorted(intervals))


def test_runs_respected_the_pools(system: System) -> None:
    """Across every run so far (sensor, launch, backfill, changed spec), steps of a pool never
    ran more at once than its limit (images: 1, so creatives never overlapped)."""
    pools = {"creatives": "images", "campaign_brief": "llm", "content_pieces": "llm", "summary_report": "llm"}
    spans: dict[str, list[tuple[float, float]]] = {pool: [] for pool in set(pools.values())}
    with system.instance() as instance:
        runs = instance.get_runs()
        assert len(runs) >= len(EXAMPLE_IDS) + 1 + 1 + len(BACKFILLED) + 1
        records = instance.get_run_records()
        overlapping_runs = max_overlap([(r.start_time, r.end_time) for r in records if r.start_time and r.end_time])
        assert overlapping_runs >= 2, "runs never overlapped: the pools were not put to the test"
        for run in runs:
            starts: dict[str, float] = {}
            for record in instance.get_records_for_run(run.run_id, of_type={
                dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE
            }).records:
                entry = record.event_log_entry
                step = entry.step_key
                if step not in pools:
                    continue
                if entry.dagster_event_type == dg.DagsterEventType.STEP_START:
                    starts[step] = entry.timestamp
                elif step in starts:
                    spans[pools[step]].append((starts.pop(step), entry.timestamp))
    assert len(spans["images"]) >= len(EXAMPLE_IDS) + 1 + 1 + len(BACKFILLED) + 1
    for pool, intervals in spans.items():
        assert max_overlap(intervals) <= POOL_LIMITS[pool], (pool, sorted(intervals))


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda x: (x[0], x[1]))
    best = current = 0
    for _, delta in events:
        current += delta
        best = max(best, current)
    return best


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


def test_schedule_refreshes_reports_of_live_campaigns(system: System) -> None:
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
