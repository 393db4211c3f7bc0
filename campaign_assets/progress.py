"""Progress you can watch, read from the run's event log (issue 11).

Three readers of one source, the event log of a run:

- ``RunProgress``: a pure fold of event records (step starts and successes,
  materializations, and the item lines ``core/progress.py`` writes through
  ``context.log``) into steps done out of total and, per running asset, items
  done out of total;
- ``Follower``: a side thread of ``campaign-assets launch`` that finds the
  launch's runs and polls ``instance.get_records_for_run(run_id, cursor=...)``;
  it renders with rich's ``Progress`` on a terminal, and as plain lines,
  printed only on change, when stdout is not one (``plain_line``);
- ``run_progress``: what ``campaign-assets status`` adds: percentage of items,
  steps running now.

``run_with_progress`` is the assets' side: run a workflow under
``asyncio.run`` with each item outcome logged through ``context.log``.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Coroutine, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any, TypeVar

import dagster as dg

from campaign_assets.core.progress import expected_items, parse_line, watching
from campaign_assets.runs import LAUNCHER_TAG, launcher_token
from campaign_assets.settings import PARTITION_TAG

T = TypeVar("T")
STEP_START = dg.DagsterEventType.STEP_START
STEP_DONE = (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.STEP_SKIPPED)
RUN_END = (dg.DagsterEventType.RUN_SUCCESS, dg.DagsterEventType.RUN_FAILURE, dg.DagsterEventType.RUN_CANCELED)


# --- the assets' side ---------------------------------------------------------------------------

def run_with_progress(spec: Any, work: Coroutine[Any, Any, T], context: Any = None) -> T:
    """``asyncio.run(work)``, each item outcome logged through the running
    asset's ``context.log`` with running counts against what the spec expects
    of this asset (``context``: default, the asset's own, from Dagster)."""
    context = context or dg.AssetExecutionContext.get()
    asset = context.asset_key.path[-1]
    try:
        total = expected_items(spec).get(asset, 0)
    except Exception:  # a partial spec section: the tracker counts what lands
        total = 0
    with watching(asset, total, context.log.info):
        return asyncio.run(work)


# --- the pure fold ------------------------------------------------------------------------------

@dataclass
class RunProgress:
    """Where one run stands, from its event records (applied in order)."""

    campaign: str
    run_id: str | None = None
    steps_total: int = 0
    started: dict[str, float] = field(default_factory=dict)  # step key -> start timestamp
    done: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    items: dict[str, tuple[int, int]] = field(default_factory=dict)  # asset -> (done, total)
    materialized: set[str] = field(default_factory=set)
    finished: str | None = None  # RUN_SUCCESS | RUN_FAILURE | RUN_CANCELED

    @property
    def running(self) -> list[str]:
        return [s for s in self.started if s not in self.done]

    def apply(self, entry: Any) -> bool:
        """Fold one ``EventLogEntry`` (or a record carrying one); True when
        the picture changed."""
        entry = getattr(entry, "event_log_entry", entry)
        event = entry.dagster_event
        if event is None:
            line = parse_line(entry.user_message)
            if line is None:
                return False
            self.items[line.asset] = (line.done, max(line.total, line.done))
            return True
        kind = event.event_type
        step = event.step_key or entry.step_key
        if kind == STEP_START and step:
            self.started.setdefault(step, entry.timestamp)
            return True
        if kind in STEP_DONE and step:
            self.started.setdefault(step, entry.timestamp)
            self.done.add(step)
            if kind == dg.DagsterEventType.STEP_FAILURE:
                self.failed.add(step)
            return True
        if kind == dg.DagsterEventType.ASSET_MATERIALIZATION:
            asset = event.asset_key.path[-1] if event.asset_key else None
            if asset:
                self.materialized.add(asset)
                if asset in self.items:
                    done, total = self.items[asset]
                    self.items[asset] = (max(done, total), max(done, total))
            return asset is not None
        if kind in RUN_END:
            self.finished = kind.name
            return True
        return False

    def running_items(self) -> list[tuple[str, int, int]]:
        """(asset, done, total) of each running step that reported items."""
        return [(s, *self.items[s]) for s in self.running if s in self.items]


def plain_line(progress: RunProgress) -> str:
    """``q4-product-launch: 3/10 steps; creatives 2/4 items``."""
    total = progress.steps_total or len(progress.started)
    text = f"{progress.campaign}: {len(progress.done)}/{total} steps"
    items = progress.running_items()
    if items:
        text += "; " + ", ".join(f"{asset} {done}/{of} items" for asset, done, of in items)
    running = [s for s in progress.running if s not in progress.items]
    if running:
        text += "; running " + ", ".join(running)
    if progress.finished:
        text += f"; {progress.finished.replace('RUN_', '').lower()}"
    return text


def plain_lines(campaign: str, entries: Iterable[Any], steps_total: int = 0) -> list[str]:
    """The plain lines a follower prints for ``entries``: one per change of picture."""
    progress = RunProgress(campaign, steps_total=steps_total)
    lines: list[str] = []
    for entry in entries:
        if progress.apply(entry):
            line = plain_line(progress)
            if not lines or lines[-1] != line:
                lines.append(line)
    return lines


# --- reading a run's log ------------------------------------------------------------------------

def step_total(instance: dg.DagsterInstance, run: dg.DagsterRun) -> int:
    try:
        snapshot = instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
        return len(snapshot.step_keys_to_execute or [s.key for s in snapshot.steps])
    except Exception:
        return 0


def read_run(instance: dg.DagsterInstance, run: dg.DagsterRun, progress: RunProgress | None = None,
             cursor: str | None = None) -> tuple[RunProgress, str | None, bool]:
    """Fold the records of ``run`` after ``cursor``; returns the progress,
    the new cursor and whether anything changed."""
    if progress is None:
        progress = RunProgress(run.tags.get(PARTITION_TAG, "?"), run.run_id, step_total(instance, run))
    changed = False
    while True:
        conn = instance.get_records_for_run(run.run_id, cursor=cursor, limit=1000)
        for record in conn.records:
            changed = progress.apply(record) or changed
        cursor = conn.cursor or cursor
        if not conn.has_more:
            return progress, cursor, changed


def run_progress(instance: dg.DagsterInstance, run_id: str, spec: Any, status: str | None = None) -> dict[str, Any]:
    """``campaign-assets status``'s progress of one run: items done out of
    the items the spec expects (an asset that materialized counts all its
    items), steps running now, ``progress_pct`` in [0, 100]."""
    run = instance.get_run_by_id(run_id)
    if run is None:
        return {"progress_pct": 0.0, "items_done": 0, "items_expected": 0, "running": [], "steps": None}
    progress, _, _ = read_run(instance, run)
    expected = expected_items(spec)
    done = 0
    for asset, total in expected.items():
        if asset in progress.materialized:
            done += total
        elif asset in progress.items:
            done += min(progress.items[asset][0], total)
    of = sum(expected.values())
    pct = 100.0 * done / of if of else 0.0
    live = (status or run.status.value) in ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING")
    if live:
        pct = min(pct, 99.0)  # items all done, the last steps still running
    elif run.status == dg.DagsterRunStatus.SUCCESS:
        pct = 100.0
    return {
        "progress_pct": round(pct, 1),
        "items_done": done,
        "items_expected": of,
        "running": [
            {"step": s, **({"items_done": progress.items[s][0], "items_total": progress.items[s][1]}
                           if s in progress.items else {})}
            for s in progress.running
        ],
        "steps": {"done": len(progress.done), "total": progress.steps_total},
    }


# --- following a launch -------------------------------------------------------------------------

class PlainRenderer:
    """One line per campaign whenever its picture changes."""

    def __init__(self, out: IO[str]) -> None:
        self._out = out
        self._last: dict[str, str] = {}

    def __enter__(self) -> PlainRenderer:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def update(self, progress: RunProgress) -> None:
        line = plain_line(progress)
        if self._last.get(progress.campaign) != line:
            self._last[progress.campaign] = line
            print(line, file=self._out, flush=True)


class RichRenderer:
    """rich's live ``Progress``: a bar of steps per campaign and, under it, a
    bar of items per running asset (removed when its step ends)."""

    def __init__(self, out: IO[str]) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=Console(file=out), transient=False, refresh_per_second=4,
        )
        self._campaigns: dict[str, Any] = {}
        self._assets: dict[tuple[str, str], Any] = {}

    def __enter__(self) -> RichRenderer:
        self._progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._progress.stop()

    def update(self, progress: RunProgress) -> None:
        bar = self._progress
        campaign = progress.campaign
        if campaign not in self._campaigns:
            self._campaigns[campaign] = bar.add_task(f"{campaign} steps", total=progress.steps_total or None)
        bar.update(self._campaigns[campaign], completed=len(progress.done), total=progress.steps_total or None,
                   description=f"{campaign} steps" + (f" ({progress.finished[4:].lower()})" if progress.finished else ""))
        live = {(campaign, asset): (done, of) for asset, done, of in progress.running_items()}
        for key in [k for k in self._assets if k[0] == campaign and k not in live]:
            bar.remove_task(self._assets.pop(key))
        for key, (done, of) in live.items():
            if key not in self._assets:
                self._assets[key] = bar.add_task(f"  {key[1]} items", total=of)
            bar.update(self._assets[key], completed=done, total=of)


class Follower:
    """Follows the runs this process launches for ``campaigns`` (found by the
    launcher tag and partition, created after the follower started), or the
    runs ``run_ids`` names per campaign (runs submitted to the run queue),
    through their event logs, polled every ``interval`` seconds in a side thread."""

    def __init__(self, instance: dg.DagsterInstance, campaigns: Sequence[str], renderer: Any,
                 interval: float = 0.5, run_ids: Mapping[str, str] | None = None) -> None:
        self.instance = instance
        self.campaigns = list(campaigns)
        self.run_ids = dict(run_ids or {})
        self.renderer = renderer
        self.interval = interval
        self.since = time.time() - 1.0
        self.token = launcher_token()
        self._state: dict[str, tuple[dg.DagsterRun, RunProgress, str | None]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="campaign-progress", daemon=True)

    def _find(self, campaign: str) -> dg.DagsterRun | None:
        if campaign in self.run_ids:
            return self.instance.get_run_by_id(self.run_ids[campaign])
        records = self.instance.get_run_records(
            filters=dg.RunsFilter(tags={PARTITION_TAG: campaign, LAUNCHER_TAG: self.token}), limit=1
        )
        if records and records[0].create_timestamp.timestamp() >= self.since:
            return records[0].dagster_run
        return None

    def poll(self) -> None:
        for campaign in self.campaigns:
            entry = self._state.get(campaign)
            if entry is None:
                run = self._find(campaign)
                if run is None:
                    continue
                progress = RunProgress(campaign, run.run_id, step_total(self.instance, run))
                entry = (run, progress, None)
            run, progress, cursor = entry
            if progress.finished and campaign in self._state:
                continue
            progress, cursor, changed = read_run(self.instance, run, progress, cursor)
            fresh = campaign not in self._state
            self._state[campaign] = (run, progress, cursor)
            if changed or fresh:
                self.renderer.update(progress)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except Exception:  # a hiccup reading the log never stops the launch
                pass

    def __enter__(self) -> Follower:
        self.renderer.__enter__()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        try:
            self.poll()
        finally:
            self.renderer.__exit__(*exc)


@contextmanager
def following(instance: dg.DagsterInstance, campaigns: Sequence[str], out: IO[str] | None = None,
              run_ids: Mapping[str, str] | None = None) -> Iterator[Follower]:
    """Show the launch's progress while the body runs: rich on a terminal,
    plain lines otherwise (``run_ids``: see ``Follower``)."""
    out = out or sys.stdout
    renderer = RichRenderer(out) if out.isatty() else PlainRenderer(out)
    with Follower(instance, campaigns, renderer, run_ids=run_ids) as follower:
        yield follower
