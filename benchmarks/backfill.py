"""Campaigns through one Dagster backfill, against the sandbox's vendor limits.

    python -m benchmarks.backfill --campaigns 50 --storage postgres
    python -m benchmarks.backfill --campaigns 10,20,50 --storage postgres --scale 0.2

Starts the sandbox (vendor limits on) and the deployment's processes on a
fresh instance (the project's dagster.yaml: queued runs, pools): the code
location in its own ``dagster code-server start``, dagster-webserver and
dagster-daemon on a ``grpc_server`` workspace (``--workspace module``: the
project's workspace.yaml, as ``dagster dev``). Stops the spec sensor (it would
request a run for every spec written, beside the backfill's), registers the
campaigns, launches ONE asset backfill over all of them through GraphQL (as
the UI does), waits for it, then reads the sandbox's call log: per vendor,
the achieved use of each of its limits (requests per window, or average
requests in flight over the concurrency cap) across the backfill, failed
items from the ledger and duplicates in the sandbox. Prints each run's life
(created by the backfill daemon, queued, dequeued, handed to the code server,
its worker started, two step starts, its end) and ends with one JSON line
holding bottleneck_utilization, failed_items and duplicates.

``--scale`` (default 1.0) multiplies the sandbox's vendor latencies: 1.0 is
the vendors' own (DESIGN.md §10), what a deployment waits on. A smaller scale
shortens the benchmark but not the CPU each run costs, so on a small machine
the machine, not the vendor, becomes the bottleneck: on two cores a campaign
costs 25-30 CPU-seconds in all while at 0.2 the bottleneck vendor gets
through one campaign's calls every 9.6 s at 90 % of its limit (19 CPU-s of
two cores), so utilization at 0.2 measures the machine.

``--campaigns`` takes one count or a list (``10,20,50``): one fresh backfill
(fresh sandbox, instance and ledger) per count, one JSON line each, then a
table. Each backfill also reports what the runs cost the machine: CPU-seconds
(user + system) summed over every run process (the run workers the code
server spawns, and their children), sampled with psutil every second, so a
process that lives less than that is missed, one that ends loses at most its
last second, and the peak memory of those processes at once (proportional
set size, shared pages split), in total and per campaign; the webserver,
daemon and code servers are reported beside them, and the whole machine's
busy CPU-seconds (user and system: Postgres's backends too) and idle share
over the backfill. ``--storage postgres`` puts
Dagster's storage and the ledger in a database of their own on
127.0.0.1:5432 (dagster.postgres.yaml), created before and dropped after,
and reports the sessions opened and transactions committed in it;
``--caps`` picks the caps profile (``CAMPAIGN_CAPS_PROFILE``; default: the
vendors' limits).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from typing_extensions import Self

import yaml

from campaign_assets.settings import CAPS_PROFILE_ENV, CAPS_PROFILES, DEFAULT_CAPS_PROFILE
from campaign_assets_tests.support.dagster import PROJECT, dagster_processes, graphql, temp_project
from campaign_assets_tests.support.ports import free_port
from campaign_assets_tests.support.processes import wait_for
from campaign_assets_tests.support.sandbox import duplicates, sandbox_process

LAUNCH = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on UnauthorizedError { message }
  }
}
"""
ASSET_KEYS = """{ assetNodes { assetKey { path } jobNames } }"""
SENSORS = """
{ repositoriesOrError { ... on RepositoryConnection { nodes { sensors { id name sensorState { status } } } } } }
"""
STOP_SENSOR = """
mutation Stop($id: String!) {
  stopSensor(id: $id) {
    __typename
    ... on StopSensorMutationResult { instigationState { status } }
    ... on PythonError { message }
  }
}
"""
SENSOR_TICKS = """
{ repositoriesOrError { ... on RepositoryConnection { nodes { sensors { name sensorState { ticks(limit: 1) { status } } } } } } }
"""
SPEC_SENSOR = "campaign_specs_sensor"


def stop_sensor(url: str, name: str) -> None:
    """Stop a sensor as the UI's toggle does. The spec sensor would otherwise
    request a campaign_job run for each spec the benchmark writes, beside the
    backfill's own: twice the runs, queued in front of the backfill's."""
    sensors = [sensor for repo in graphql(url, SENSORS)["repositoriesOrError"]["nodes"]
               for sensor in repo["sensors"] if sensor["name"] == name]
    if not sensors:
        raise RuntimeError(f"no sensor {name!r} in the workspace")
    for sensor in sensors:
        result = graphql(url, STOP_SENSOR, {"id": sensor["id"]})["stopSensor"]
        if result["__typename"] != "StopSensorMutationResult" or result["instigationState"]["status"] != "STOPPED":
            raise RuntimeError(f"could not stop {name}: {result}")
    # A tick the daemon began before the stop still ends, and requests runs for
    # whatever it finds by then (measured: one such tick ran all 50 campaigns
    # beside the backfill). So: no tick in progress, twice, a daemon loop apart.
    quiet = 0

    def settled() -> bool:
        nonlocal quiet
        ticks = [tick["status"] for repo in graphql(url, SENSOR_TICKS)["repositoriesOrError"]["nodes"]
                 for sensor in repo["sensors"] if sensor["name"] == name
                 for tick in sensor["sensorState"]["ticks"]]
        quiet = 0 if "STARTED" in ticks else quiet + 1
        return quiet >= 2

    wait_for(f"{name}'s tick in progress to end", settled, timeout=300, interval=5)

PG_ADMIN_URL = os.environ.get("CAMPAIGN_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


def write_specs(folder: Path, count: int) -> list[str]:
    seed = yaml.safe_load((PROJECT / "campaigns" / "q4-product-launch.yaml").read_text())
    ids = []
    for i in range(1, count + 1):
        campaign = f"launch-wave-{i:02d}"
        spec = seed | {"id": campaign, "name": f"Launch Wave {i:02d}"}
        (folder / f"{campaign}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
        ids.append(campaign)
    return ids


def utilization(state: dict[str, Any], window: tuple[float, float]) -> dict[str, dict[str, float]]:
    """Per vendor and limit rule: achieved use over the limit during ``window``."""
    start, end = window
    span = max(end - start, 1e-9)
    scale = state["config"]["scale"]
    calls_by_vendor: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for call in state["calls"]:
        calls_by_vendor[call["vendor"]].append(call)
    result: dict[str, dict[str, float]] = {}
    for vendor, rules in state["config"]["limits"].items():
        calls = calls_by_vendor.get(vendor)
        if not calls:
            continue
        result[vendor] = {}
        for rule in rules:
            matching = [
                c for c in calls
                if (rule.get("methods") is None or c["method"] in rule["methods"])
                and (rule.get("endpoints") is None or c["endpoint"] in rule["endpoints"])
                and not c.get("rate_limited")
            ]
            if rule.get("max_concurrency"):
                busy = sum(max(0.0, min(c["end"], end) - max(c["start"], start)) for c in matching)
                result[vendor][f"{rule['name']} (in flight / {rule['max_concurrency']})"] = busy / span / rule["max_concurrency"]
            if rule.get("max_requests"):
                per_second = rule["max_requests"] / (rule["window_s"] * scale)
                result[vendor][f"{rule['name']} (requests / {rule['max_requests']} per {rule['window_s']:g}s)"] = (
                    len(matching) / span / per_second
                )
    return result


def timeline(state: dict[str, Any], vendor: str, window: tuple[float, float], bins: int = 20) -> list[str]:
    """Average requests in flight at ``vendor`` per slice of the window, by endpoint."""
    start, end = window
    width = (end - start) / bins
    rows = []
    for i in range(bins):
        lo, hi = start + i * width, start + (i + 1) * width
        busy: dict[str, float] = defaultdict(float)
        for c in state["calls"]:
            if c["vendor"] == vendor and not c.get("rate_limited"):
                busy[c["endpoint"]] += max(0.0, min(c["end"], hi) - max(c["start"], lo)) / width
        rows.append(f"  {lo - start:7.1f}s " + "  ".join(f"{k}: {v:4.1f}" for k, v in sorted(busy.items())))
    return rows


RUN_PHASES = ("RUN_ENQUEUED", "RUN_DEQUEUED", "RUN_STARTING", "RUN_START")


@dataclass
class RunSpan:
    """One run's life (epoch seconds): created by the backfill daemon, queued,
    taken off the queue by the run coordinator, handed to the code server,
    its worker started; and each step's start."""

    created: float
    phases: dict[str, float]
    end: float
    steps: dict[str, float]

    def at(self, phase: str) -> float:
        return self.phases.get(phase, self.created)


def run_spans(instance: Any, runs: list[Any]) -> list[RunSpan]:
    import dagster as dg

    spans = []
    for record in instance.get_run_records(filters=dg.RunsFilter(run_ids=[r.run_id for r in runs])):
        phases: dict[str, float] = {}
        steps: dict[str, float] = {}
        end = None
        for entry in instance.all_logs(record.dagster_run.run_id):
            event = entry.dagster_event
            if event is None:
                continue
            name = event.event_type.name
            if name in RUN_PHASES:
                phases[name] = entry.timestamp
            elif name in ("RUN_SUCCESS", "RUN_FAILURE"):
                end = entry.timestamp
            elif name == "STEP_START" and entry.step_key:
                steps[entry.step_key] = entry.timestamp
        if end is not None:
            spans.append(RunSpan(record.create_timestamp.timestamp(), phases, end, steps))
    return sorted(spans, key=lambda span: span.created)


def failed_items(ledger_url: str) -> int:
    import sqlalchemy as sa

    engine = sa.create_engine(ledger_url)
    with engine.connect() as conn:
        count = conn.execute(sa.text("select count(*) from ledger_items where status in ('failed', 'pending')")).scalar_one()
    engine.dispose()
    return count


def postgres_activity(url: str) -> dict[str, int]:
    """Sessions opened and transactions committed in ``url``'s database so far
    (pg_stat_database): a connection per statement shows as sessions near
    the transactions."""
    import sqlalchemy as sa

    engine = sa.create_engine(PG_ADMIN_URL)
    name = sa.engine.make_url(url).database
    with engine.connect() as conn:
        row = conn.execute(
            sa.text("select sessions, xact_commit from pg_stat_database where datname = :name"), {"name": name}
        ).one()
    engine.dispose()
    return {"postgres_sessions": row.sessions, "postgres_commits": row.xact_commit}


def machine_busy(before: Any, after: Any) -> dict[str, float]:
    """CPU-seconds the whole machine spent busy (user, system) between two
    ``psutil.cpu_times()``: every process, Postgres's backends included."""
    user = (after.user + after.nice) - (before.user + before.nice)
    system = sum(getattr(after, f, 0.0) - getattr(before, f, 0.0) for f in ("system", "irq", "softirq"))
    idle = (after.idle + after.iowait) - (before.idle + before.iowait)
    return {
        "machine_user_cpu_s": round(user, 1),
        "machine_system_cpu_s": round(system, 1),
        "machine_idle_share": round(idle / max(user + system + idle, 1e-9), 3),
    }


# ---- what the runs cost the machine ----------------------------------------------
@dataclass
class _Seen:
    cpu_s: float = 0.0
    rss: int = 0
    run: bool = False


class ProcessMeter:
    """Samples every process below this one (except ``exclude``'s trees) with psutil.

    Per process (pid and start time, so a reused pid is a new process): its
    last CPU-seconds (user + system) and whether it is a run process (a run
    worker, which a code server spawns with multiprocessing or starts as
    ``dagster api execute_run``, or its descendants: the forkserver, the steps
    and their log tails). Per sample: resident memory of the run processes together, and of
    the others (webserver, daemon, code servers). A thread, stopped by ``stop``.
    """

    def __init__(self, exclude: list[int], interval_s: float = 1.0) -> None:
        import psutil

        self._psutil = psutil
        self._me = psutil.Process()
        self._exclude = set(exclude)
        self._interval_s = interval_s
        self._seen: dict[tuple[int, float], _Seen] = {}
        self.peak_run_rss = 0
        self.peak_other_rss = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self._interval_s)

    def sample(self) -> None:
        psutil = self._psutil
        run_rss = other_rss = 0
        runs: set[int] = set()
        servers: set[int] = set()  # code servers: the daemon's launches a run as a spawned child
        try:
            children = self._me.children(recursive=True)
        except psutil.Error:
            return
        skip: set[int] = set()
        for proc in children:  # parents come before their children
            try:
                parent = proc.ppid()
                if proc.pid in self._exclude or parent in skip:
                    skip.add(proc.pid)
                    continue
                with proc.oneshot():
                    key = (proc.pid, proc.create_time())
                    times = proc.cpu_times()
                    memory = proc.memory_full_info()  # PSS: shared pages (the forkserver's) split, not counted per child
                    rss, pss = memory.rss, getattr(memory, "pss", memory.rss)
                    command = " ".join(proc.cmdline())
                    if "api grpc" in command or "code-server" in command:
                        servers.add(proc.pid)
                    is_run = parent in runs or "execute_run" in command or (parent in servers and "spawn_main" in command)
            except psutil.Error:  # gone between the listing and the look
                continue
            if is_run:
                runs.add(proc.pid)
                run_rss += pss
            else:
                other_rss += pss
            seen = self._seen.setdefault(key, _Seen())
            seen.cpu_s, seen.rss, seen.run = times.user + times.system, max(seen.rss, rss), is_run
        self.peak_run_rss = max(self.peak_run_rss, run_rss)
        self.peak_other_rss = max(self.peak_other_rss, other_rss)
        self.samples += 1

    def figures(self, campaigns: int) -> dict[str, float]:
        run_cpu = sum(s.cpu_s for s in self._seen.values() if s.run)
        other_cpu = sum(s.cpu_s for s in self._seen.values() if not s.run)
        mb = 1024 * 1024
        return {
            "run_cpu_s": round(run_cpu, 1),
            "run_cpu_s_per_campaign": round(run_cpu / campaigns, 2),
            "run_processes": sum(s.run for s in self._seen.values()),
            "peak_run_memory_mb": round(self.peak_run_rss / mb, 1),
            "peak_run_memory_mb_per_campaign": round(self.peak_run_rss / mb / campaigns, 1),
            "largest_process_rss_mb": round(max((s.rss for s in self._seen.values()), default=0) / mb, 1),
            "other_cpu_s": round(other_cpu, 1),
            "peak_other_memory_mb": round(self.peak_other_rss / mb, 1),
        }


@contextmanager
def storage_env(storage: str, home: Path) -> Iterator[dict[str, str]]:
    """Environment for Dagster's storage and the ledger: the embedded SQLite, or
    a fresh Postgres database (created here, dropped on the way out)."""
    if storage == "sqlite":
        yield {}
        return
    import sqlalchemy as sa

    name = f"ca_backfill_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        (home / "dagster.yaml").write_text((PROJECT / "dagster.postgres.yaml").read_text())
        yield {"DAGSTER_PG_URL": url, "CAMPAIGN_LEDGER_URL": url}
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def campaign_counts(text: str) -> list[int]:
    """``20`` or ``10,20,50``."""
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count or a list like 10,20,50, got {text!r}") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"expected counts >= 1, got {text!r}")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--campaigns", type=campaign_counts, default=[20], help="a count, or a list: 10,20,50")
    parser.add_argument("--scale", type=float, default=1.0, help="vendor latency scale (1.0: the vendors' own)")
    parser.add_argument("--timeout", type=float, default=5400, help="seconds to wait for each backfill")
    parser.add_argument("--storage", choices=("sqlite", "postgres"), default="sqlite",
                        help="Dagster storage and the ledger (postgres: a database of its own on 127.0.0.1:5432)")
    parser.add_argument("--caps", choices=sorted(CAPS_PROFILES), default=DEFAULT_CAPS_PROFILE,
                        help="caps profile of the runs (CAMPAIGN_CAPS_PROFILE)")
    parser.add_argument("--workspace", choices=("code-server", "module"), default="code-server",
                        help="code-server: the code location in its own `dagster code-server start`, as deployed "
                             "(default); module: the project's workspace.yaml, as `dagster dev` (the webserver and "
                             "the daemon each start their own, and the daemon a fresh one every minute)")
    args = parser.parse_args(argv)

    results = [run_backfill(count, args) for count in args.campaigns]
    if len(results) > 1:
        print(f"\n{'campaigns':>9} {'backfill s':>10} {'run CPU-s/campaign':>18} {'peak run memory MB/campaign':>24} "
              f"{'bottleneck use':>14} {'failed':>6} {'dupes':>5}")
        for r in results:
            print(f"{r['campaigns']:>9} {r['backfill_s']:>10} {r['run_cpu_s_per_campaign']:>18} "
                  f"{r['peak_run_memory_mb_per_campaign']:>24} {r['bottleneck_utilization']:>14} "
                  f"{r['failed_items']:>6} {r['duplicates']:>5}")
    # Runs beside the backfill's (a sensor's, a schedule's) ran campaigns too: its figures are not the backfill's.
    ok = all(r["runs_succeeded"] == r["runs"] and not r["failed_items"] and not r["duplicates"] and not r["other_runs"]
             for r in results)
    return 0 if ok else 1


def run_backfill(count: int, args: argparse.Namespace) -> dict[str, Any]:
    """One backfill of ``count`` campaigns on a fresh sandbox, instance and ledger; its figures."""
    import dagster as dg
    import psutil

    saved = dict(os.environ)
    try:
        with (
            sandbox_process(args.scale) as sandbox,
            temp_project() as project,
            storage_env(args.storage, Path(project["DAGSTER_HOME"])) as storage,
        ):
            env = sandbox.env | project | storage | {CAPS_PROFILE_ENV: args.caps}
            os.environ.update(env)
            subprocess.run([sys.executable, "-m", "campaign_assets.cli", "pools"], env=os.environ, check=True,
                           stdout=subprocess.DEVNULL)
            instance = dg.DagsterInstance.get()
            with dagster_processes(env, free_port(), code_server=args.workspace == "code-server") as url:
                stop_sensor(url, SPEC_SENSOR)  # before a spec exists: only the backfill runs campaigns
                ids = write_specs(Path(project["CAMPAIGNS_DIR"]), count)
                instance.add_dynamic_partitions("campaigns", ids)
                cpu_before = psutil.cpu_times()
                with ProcessMeter(exclude=[sandbox.process.pid]) as meter:
                    # The campaign graph (campaign_job's assets), as the UI's backfill of a campaign:
                    # campaign_performance (campaign x day) would widen it to every day of each flight.
                    keys = [node["assetKey"] for node in graphql(url, ASSET_KEYS)["assetNodes"]
                            if "campaign_job" in node["jobNames"]]
                    started = time.time()
                    launched = graphql(url, LAUNCH, {"params": {"assetSelection": keys, "partitionNames": ids}})
                    result = launched["launchPartitionBackfill"]
                    if result["__typename"] != "LaunchBackfillSuccess":
                        raise RuntimeError(result)
                    backfill_id = result["backfillId"]
                    print(f"backfill {backfill_id}: {len(ids)} campaigns x {len(keys)} assets at scale {args.scale}, "
                          f"{args.storage} storage, caps {args.caps}, {args.workspace} workspace", flush=True)
                    while True:
                        backfill = instance.get_backfill(backfill_id)
                        runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
                        finished = [r for r in runs if r.is_finished]
                        if backfill.status.value != "REQUESTED" and len(finished) == len(runs):
                            break
                        if time.time() - started > args.timeout:
                            raise TimeoutError(f"backfill not done after {args.timeout}s: {backfill.status}")
                        time.sleep(2)
                    elapsed = time.time() - started
                    meter.stop()
                    cost = meter.figures(len(ids)) | machine_busy(cpu_before, psutil.cpu_times())
                    if "DAGSTER_PG_URL" in storage:
                        cost |= postgres_activity(storage["DAGSTER_PG_URL"])
                    succeeded = sum(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
                    spans = run_spans(instance, runs)
                    other_runs = len(instance.get_runs()) - len(runs)  # the sensors' and schedules'
            instance.dispose()
            state = sandbox.state()
            ledger_url = storage.get("CAMPAIGN_LEDGER_URL") or f"sqlite:///{Path(project['WORKSPACE_DIR']) / 'ledger.sqlite'}"
            failed = failed_items(ledger_url)
    finally:
        os.environ.clear()
        os.environ.update(saved)

    calls = state["calls"]
    window = (min(c["start"] for c in calls), max(c["end"] for c in calls))
    use = utilization(state, window)
    rate_limited = defaultdict(int)
    for call in calls:
        rate_limited[call["vendor"]] += bool(call.get("rate_limited"))
    dupes = duplicates(state)
    print(f"backfill {backfill.status.value}: {succeeded}/{len(runs)} runs succeeded in {elapsed:.1f}s "
          f"(vendor calls over {window[1] - window[0]:.1f}s); {other_runs} other runs"
          + (" (NOT a clean measurement: they ran campaigns beside the backfill)" if other_runs else ""))
    bottleneck = ("", "", 0.0)
    for vendor, rules in sorted(use.items()):
        print(f"  {vendor:14} " + "; ".join(f"{name}: {value:.2f}" for name, value in rules.items())
              + f"; 429s: {rate_limited[vendor]}")
        for name, value in rules.items():
            if value > bottleneck[2]:
                bottleneck = (vendor, name, value)
    print("runs (seconds from the backfill's launch): created, queued, dequeued, starting, started, "
          "creatives, summary_report, end")
    for span in spans:
        marks = [span.created, *(span.at(phase) for phase in RUN_PHASES),
                 span.steps.get("creatives", span.at("RUN_START")), span.steps.get("summary_report", span.end), span.end]
        print("  " + "  ".join(f"{t - started:6.1f}" for t in marks))
    print(f"{bottleneck[0]} requests in flight over the backfill:")
    print("\n".join(timeline(state, bottleneck[0], window)))
    print(f"bottleneck: {bottleneck[0]} {bottleneck[1]} at {bottleneck[2]:.2f} of its limit; "
          f"failed items: {failed}; duplicates: {len(dupes)}")
    print(f"run processes: {cost['run_cpu_s']} CPU-s ({cost['run_cpu_s_per_campaign']} per campaign) over "
          f"{cost['run_processes']} processes; peak {cost['peak_run_memory_mb']} MB (PSS) at once "
          f"({cost['peak_run_memory_mb_per_campaign']} MB per campaign, largest process "
          f"{cost['largest_process_rss_mb']} MB); webserver, daemon and code servers: {cost['other_cpu_s']} CPU-s, "
          f"peak {cost['peak_other_memory_mb']} MB")
    print(f"the machine: {cost['machine_user_cpu_s']} CPU-s user, {cost['machine_system_cpu_s']} system, "
          f"idle {cost['machine_idle_share']:.0%}"
          + (f"; Postgres: {cost['postgres_sessions']} sessions opened, {cost['postgres_commits']} commits"
             if "postgres_sessions" in cost else ""))
    figures = {
        "campaigns": len(ids),
        "storage": args.storage,
        "caps": args.caps,
        "scale": args.scale,
        "workspace": args.workspace,
        "runs": len(runs),
        "runs_succeeded": succeeded,
        "other_runs": other_runs,
        "backfill_s": round(elapsed, 1),
        "bottleneck_vendor": bottleneck[0],
        "bottleneck_limit": bottleneck[1],
        "bottleneck_utilization": round(bottleneck[2], 3),
        "failed_items": failed,
        "duplicates": len(dupes),
        "rate_limited": dict(rate_limited),
        **cost,
    }
    print(json.dumps(figures), flush=True)
    return figures


if __name__ == "__main__":
    sys.exit(main())
