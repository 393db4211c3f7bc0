"""Who may run a campaign now, and what to do with runs whose process is gone.

Dagster's run queue keeps one run per campaign at a time for the runs it
launches (``tag_concurrency_limits`` on ``dagster/partition`` in dagster.yaml).
``campaign-assets launch`` executes its runs itself, outside the queue, so it
takes the same turn here (``launch --queue`` submits them to the queue
instead, ``queued.py``: no turn, no launcher tag, nothing to sweep):

- ``instance_lock``: creating a fresh instance and registering partitions is
  serialized between launches on one ``DAGSTER_HOME`` (two launches at once on
  a fresh instance used to race on SQLite's schema and the partitions table);
- ``campaign_turn``: one launch per campaign at a time (a lock file per
  campaign under ``DAGSTER_HOME``, released by the kernel when the process
  dies), and it waits while a run of that campaign started elsewhere (the UI,
  the sensor, a backfill) is still going. It says so plainly while it waits;
- ``sweep_dead_runs``: a run executed by a launch whose process is gone (killed
  with SIGKILL, a crashed terminal) stays STARTED for good in Dagster's eyes
  and keeps its pool slots. Each such run carries the launching process in
  ``LAUNCHER_TAG``; the next launch, ``campaign-assets status`` and the
  ``dead_cli_runs_sensor`` mark it failed and free its pool slots at once;
- ``open_instance``: the instance a launch uses, under ``instance_lock``: pool
  limits applied, partitions registered, dead launches swept;
- ``apply_pool_limits``: Dagster keeps per-pool limits (steps per service
  across runs) in the instance, not in dagster.yaml (which only holds
  ``default_limit``), so ``campaign-assets launch`` and ``pools`` write
  the pools of the caps profile ``CAMPAIGN_CAPS_PROFILE`` names
  (``settings.caps_profile``: vendor limits by default) there.

Item claims in the ledger are what finally keeps each vendor object exactly
once (a run of the UI may still start beside a launch between two polls);
this layer keeps the two runs from working side by side in the first place.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from campaign_assets.core.claims import owner_is_dead, parse_token
from campaign_assets.settings import PARTITION_TAG, PARTITIONS, caps_profile

LAUNCHER_TAG = "campaign_assets/launcher"  # host:pid of the launch executing the run
IN_PROGRESS = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


def launcher_token(pid: int | None = None) -> str:
    return f"{socket.gethostname()[:64]}:{os.getpid() if pid is None else pid}"  # as claim tokens carry it


def launcher_alive(token: str) -> bool | None:
    """True or False for a launch on this host; None when it ran elsewhere
    (its host must judge: we cannot see its processes). The liveness rule is
    the ledger claims' own (``core.claims.owner_is_dead``)."""
    parsed = parse_token(token)
    if parsed is None or parsed[0] != socket.gethostname()[:64]:
        return None
    return not owner_is_dead(token)


@dataclass(frozen=True)
class DeadRun:
    run_id: str
    campaign: str | None
    launcher: str


def sweep_dead_runs(instance: dg.DagsterInstance, campaigns: Sequence[str] | None = None) -> list[DeadRun]:
    """Mark failed every in-progress run launched by a process of this host
    that no longer exists, and free its pool slots. Returns what it swept."""
    filters = dg.RunsFilter(statuses=IN_PROGRESS)
    swept: list[DeadRun] = []
    for record in instance.get_run_records(filters=filters):
        run = record.dagster_run
        token = run.tags.get(LAUNCHER_TAG)
        campaign = run.tags.get(PARTITION_TAG)
        if not token or (campaigns is not None and campaign not in campaigns):
            continue
        if launcher_alive(token) is not False:
            continue
        message = f"the launch that executed this run ({token}) is gone; marked failed by campaign-assets"
        instance.report_engine_event(message, run)
        instance.report_run_failed(run, message)
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        swept.append(DeadRun(run.run_id, campaign, token))
    return swept


def pool_limits(env: Mapping[str, str] | None = None) -> Mapping[str, int]:
    """The pool limits of the caps profile ``env`` (default: this process's environment) names."""
    return caps_profile(os.environ if env is None else env).pools


def apply_pool_limits(instance: dg.DagsterInstance, limits: Mapping[str, int] | None = None) -> dict[str, int]:
    """Set each pool's limit in the instance (idempotent); returns what changed.
    ``limits``: the caps profile's pools (``pool_limits()``) when None."""
    if limits is None:
        limits = pool_limits()
    storage = instance.event_log_storage
    changed = {}
    current = {key: storage.get_concurrency_info(key).slot_count for key in storage.get_concurrency_keys()}
    for pool, limit in limits.items():
        if current.get(pool) != limit:
            storage.set_concurrency_slots(pool, limit)
            changed[pool] = limit
    return changed


@contextmanager
def _flock(path: Path, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait:
                on_wait()
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(launcher_token())
            handle.flush()
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def instance_lock(home: Path) -> AbstractContextManager[None]:
    """Serialize instance creation and partition registration between launches."""
    return _flock(home / ".locks" / "instance.lock")


def other_runs(instance: dg.DagsterInstance, campaign: str) -> list[dg.DagsterRun]:
    """Runs of ``campaign`` in progress now (queued runs wait their turn in the queue)."""
    records = instance.get_run_records(filters=dg.RunsFilter(statuses=IN_PROGRESS, tags={PARTITION_TAG: campaign}))
    return [r.dagster_run for r in records]


@contextmanager
def campaign_turn(
    instance: dg.DagsterInstance,
    home: Path,
    campaign: str,
    say: Callable[[str], None] = print,
    poll_s: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[None]:
    """Hold ``campaign``'s turn: no other launch of it, no run of it in progress."""

    def waiting_for_launch() -> None:
        say(f"{campaign}: another launch of this campaign is running; waiting for it to finish")

    with _flock(home / ".locks" / f"campaign-{campaign}.lock", waiting_for_launch):
        told: set[str] = set()
        while True:
            sweep_dead_runs(instance, [campaign])
            running = other_runs(instance, campaign)
            if not running:
                break
            for run in running:
                if run.run_id not in told:
                    told.add(run.run_id)
                    say(f"{campaign}: waiting for run {run.run_id[:8]} ({run.job_name}, {run.status.value}) to finish")
            sleep(poll_s)
        yield


def open_instance(home: Path, campaigns: Sequence[str] = ()) -> dg.DagsterInstance:
    """The instance of DAGSTER_HOME, its pool limits applied and ``campaigns``
    registered as partitions; safe when several launches start at once on a
    fresh DAGSTER_HOME (they take turns), and beside the sensor (which may
    register the same partition at the same moment). Runs of dead launches
    are swept first."""
    with instance_lock(home):
        instance = dg.DagsterInstance.get()
        apply_pool_limits(instance)
        for campaign in campaigns:
            if not instance.has_dynamic_partition(PARTITIONS, campaign):
                try:
                    instance.add_dynamic_partitions(PARTITIONS, [campaign])
                except Exception:  # the sensor registered it between the check and the insert
                    if not instance.has_dynamic_partition(PARTITIONS, campaign):
                        raise
        swept = sweep_dead_runs(instance)
        for dead in swept:
            print(f"run {dead.run_id[:8]} of {dead.campaign or '?'} was left STARTED by a launch that is gone "
                  f"({dead.launcher}): marked failed, its pool slots freed")
        if swept:
            freed = free_dead_service_slots()
            if freed:
                print(f"{freed} vendor call slot(s) held by its processes freed")
    return instance


def free_dead_service_slots() -> int:
    """The slot board's slots held by processes of this host that are gone."""
    from campaign_assets.resources import build_resources
    from campaign_assets.services.slots import SlotBoard

    with dg.build_resources({"ledger": build_resources(os.environ)["ledger"]}) as resources:
        board = SlotBoard(resources.ledger.resolved_url())
        try:
            return board.free_dead_holders()
        finally:
            board.dispose()
