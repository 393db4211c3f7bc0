"""The spec-folder sensor (DESIGN.md §7), and the pure decision it wraps.

``campaign_specs_sensor`` watches ``CAMPAIGNS_DIR`` (a folder, or a bucket
prefix such as ``s3://bucket/specs``). Its cursor maps each campaign id to
the hash of its last seen spec (of the validated content, not a file time, so
a bucket reads the same as a folder) and a revision counter, so
"new", "changed" and "unchanged" need no run history. A new spec adds its
``campaigns`` partition and requests a ``campaign_job`` run; a changed spec
requests a run; an unchanged one nothing. Invalid files are logged, kept in
the cursor and named in the tick, and never stop the others.

What a tick does is decided by ``plan_sensor_tick``, a plain function of the
folder, the cursor and the partitions, which the tests call directly.
"""

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import dagster as dg

from campaign_assets.defs.campaign.common import campaigns_partitions
from campaign_assets.resources import WorkspaceResource
from campaign_assets.settings import CAMPAIGN_JOB, PARTITIONS, SENSOR_INTERVAL_S, SPEC_HASH_TAG, TRIGGER_TAG
from campaign_assets.spec import CampaignSpec, scan_campaigns, spec_hash

if TYPE_CHECKING:
    from upath import UPath

SPEC_ASSET = dg.AssetKey("campaign_spec")
DATA_VERSION_TAG = "dagster/data_version"
CURSOR_VERSION = 1


# ---- reading the folder --------------------------------------------------------
@dataclass(frozen=True)
class FolderScan:
    """The valid specs by campaign id (with their hash) and the invalid files."""

    specs: Mapping[str, CampaignSpec]
    hashes: Mapping[str, str]
    invalid: Mapping[str, str]  # file name -> error


def scan_folder(folder: "str | Path | UPath") -> FolderScan:
    specs: dict[str, CampaignSpec] = {}
    files: dict[str, str] = {}
    invalid: dict[str, str] = {}
    for found in scan_campaigns(folder):  # sorted: x.yaml wins over x.yml, as in find_spec_path
        name = found.path.name
        if found.spec is None:
            invalid[name] = str(found.error)
        elif found.spec.id in specs:
            invalid[name] = f"{found.path}: campaign {found.spec.id!r} is already defined by {files[found.spec.id]}"
        else:
            specs[found.spec.id], files[found.spec.id] = found.spec, name
    return FolderScan(specs, {cid: spec_hash(s) for cid, s in specs.items()}, invalid)


# ---- the sensor's decision ------------------------------------------------------
@dataclass(frozen=True)
class Seen:
    hash: str
    rev: int  # how many times the spec changed since the sensor first saw it


@dataclass(frozen=True)
class SensorCursor:
    """JSON ``{"v": 1, "specs": {id: [hash, rev]}, "invalid": {file: error}}``."""

    specs: Mapping[str, Seen] = field(default_factory=dict)
    invalid: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        specs = {cid: [s.hash, s.rev] for cid, s in sorted(self.specs.items())}
        return json.dumps({"v": CURSOR_VERSION, "specs": specs, "invalid": dict(sorted(self.invalid.items()))})

    @classmethod
    def from_json(cls, text: str | None) -> "SensorCursor":
        """An empty cursor for None or anything unreadable (the sensor then
        starts over; run keys and the data-version check keep that safe)."""
        try:
            data = json.loads(text or "")
            specs = {str(cid): Seen(str(h), int(r)) for cid, (h, r) in data["specs"].items()}
            return cls(specs, {str(k): str(v) for k, v in data.get("invalid", {}).items()})
        except (ValueError, TypeError, KeyError, AttributeError):
            return cls()


@dataclass(frozen=True)
class SpecRun:
    campaign: str
    hash: str
    rev: int
    reason: Literal["new", "changed"]

    @property
    def run_key(self) -> str:
        # The revision makes a spec that goes back to an earlier content run
        # again (run keys dedupe forever); re-ticks give the same key.
        return f"{self.campaign}:{self.hash}:{self.rev}"


@dataclass(frozen=True)
class TickPlan:
    add_partitions: tuple[str, ...]
    runs: tuple[SpecRun, ...]
    adopted: tuple[str, ...]  # already materialized with this spec: remembered, no run
    removed: tuple[str, ...]  # spec files gone since the last tick (partitions are kept)
    invalid: Mapping[str, str]
    cursor: SensorCursor

    def skip_reason(self) -> str:
        parts = ["no new or changed campaign specs"]
        if self.invalid:
            parts.append(f"{len(self.invalid)} invalid spec file(s): {', '.join(sorted(self.invalid))}")
        return "; ".join(parts)


MaterializedHashes = Callable[[Sequence[str]], Mapping[str, str]]


def plan_sensor_tick(
    scan: FolderScan,
    previous: SensorCursor,
    existing_partitions: Collection[str],
    materialized_hashes: MaterializedHashes | None = None,
) -> TickPlan:
    """What one tick does, from the folder, the cursor and the partitions.

    A spec the cursor does not know whose partition already exists (a cursor
    reset, or a campaign launched from the CLI) is *adopted* without a run
    when ``campaign_spec`` was last materialized with the same hash
    (``materialized_hashes`` answers for all such ids at once).
    """
    existing = set(existing_partitions)
    unknown_existing = [cid for cid in scan.hashes if cid not in previous.specs and cid in existing]
    done = dict(materialized_hashes(unknown_existing)) if unknown_existing and materialized_hashes else {}
    seen: dict[str, Seen] = {}
    runs: list[SpecRun] = []
    adopted: list[str] = []
    for cid, digest in sorted(scan.hashes.items()):
        before = previous.specs.get(cid)
        if before is None:
            seen[cid] = Seen(digest, 0)
            if done.get(cid) == digest:
                adopted.append(cid)
            else:
                runs.append(SpecRun(cid, digest, 0, "new"))
        elif before.hash != digest:
            seen[cid] = Seen(digest, before.rev + 1)
            runs.append(SpecRun(cid, digest, before.rev + 1, "changed"))
        else:
            seen[cid] = before
    return TickPlan(
        add_partitions=tuple(sorted(set(scan.hashes) - existing)),
        runs=tuple(runs),
        adopted=tuple(adopted),
        removed=tuple(sorted(set(previous.specs) - set(scan.hashes))),
        invalid=dict(scan.invalid),
        cursor=SensorCursor(seen, dict(scan.invalid)),
    )


def materialized_spec_hashes(instance: dg.DagsterInstance) -> MaterializedHashes:
    """The spec hash (``campaign_spec``'s data version) of the latest
    materialization of each given partition, in one event-log query."""

    def lookup(partitions: Sequence[str]) -> Mapping[str, str]:
        tags = instance.event_log_storage.get_latest_tags_by_partition(
            SPEC_ASSET, dg.DagsterEventType.ASSET_MATERIALIZATION, [DATA_VERSION_TAG], asset_partitions=list(partitions)
        )
        return {p: t[DATA_VERSION_TAG] for p, t in tags.items() if DATA_VERSION_TAG in t}

    return lookup


def _some(ids: Sequence[str], limit: int = 20) -> str:
    more = f" and {len(ids) - limit} more" if len(ids) > limit else ""
    return ", ".join(ids[:limit]) + more


def sensor_result(
    plan: TickPlan, selection_for: Callable[[str], Sequence[dg.AssetKey] | None] = lambda _campaign: None
) -> dg.SensorResult:
    """``selection_for(campaign)``: the assets its run materializes (None: the whole job)."""
    runs = []
    for r in plan.runs:
        selection = selection_for(r.campaign)
        runs.append(
            dg.RunRequest(
                run_key=r.run_key,
                partition_key=r.campaign,
                tags={SPEC_HASH_TAG: r.hash, TRIGGER_TAG: f"spec {r.reason}"},
                asset_selection=list(selection) if selection is not None else None,
            )
        )
    add = [campaigns_partitions.build_add_request(list(plan.add_partitions))] if plan.add_partitions else []
    return dg.SensorResult(
        run_requests=runs,
        dynamic_partitions_requests=add,
        cursor=plan.cursor.to_json(),
        skip_reason=None if runs else plan.skip_reason(),
    )


@dg.sensor(
    name="campaign_specs_sensor",
    job_name=CAMPAIGN_JOB,
    minimum_interval_seconds=SENSOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Watches CAMPAIGNS_DIR: a new spec adds its campaign partition and runs campaign_job; a changed "
    "spec runs it again; unchanged specs do nothing. Invalid files are reported in the tick and skipped.",
)
def campaign_specs_sensor(context: dg.SensorEvaluationContext, workspace: WorkspaceResource) -> dg.SensorResult:
    scan = scan_folder(workspace.specs_folder())
    previous = SensorCursor.from_json(context.cursor)
    existing = context.instance.get_dynamic_partitions(PARTITIONS)  # the one partitions query of the tick
    plan = plan_sensor_tick(scan, previous, existing, materialized_spec_hashes(context.instance))
    for name, error in sorted(plan.invalid.items()):
        context.log.warning(f"skipping invalid spec file {name}:\n{error}")
    for reason in ("new", "changed"):
        ids = [r.campaign for r in plan.runs if r.reason == reason]
        if ids:
            context.log.info(f"{len(ids)} {reason} spec(s), requesting {CAMPAIGN_JOB}: {_some(ids)}")
    if plan.adopted:
        context.log.info(f"already materialized with the current spec: {_some(plan.adopted)}")
    if plan.removed:
        context.log.info(f"spec files removed (partitions kept): {_some(plan.removed)}")
    drafting: list[dg.AssetKey] = []
    if plan.runs and context.repository_def is not None:
        from campaign_assets.defs.campaign.jobs import drafting_selection

        drafting = drafting_selection(context.repository_def.get_job(CAMPAIGN_JOB))
    # A campaign without review sections runs exactly the drafting graph.
    return sensor_result(plan, lambda cid: None if scan.specs[cid].reviewed or not drafting else drafting)
