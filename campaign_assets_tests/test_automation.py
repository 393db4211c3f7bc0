"""The spec-folder sensor and the report schedule, against a real (temp SQLite) instance."""

import datetime as dt
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from campaign_assets.defs.automation.report_schedule import (
    REPORT_ASSET,
    report_refresh_job,
    report_refresh_schedule,
    report_run_key,
    report_run_requests,
)
from campaign_assets.defs.automation.spec_sensor import SensorCursor, campaign_specs_sensor, scan_folder
from campaign_assets.defs.campaign.common import campaigns_partitions
from campaign_assets.definitions import build_defs
from campaign_assets.ledger import Ledger, Scope
from campaign_assets.resources import LedgerResource, WorkspaceResource
from campaign_assets.settings import CAMPAIGN_JOB, PARTITIONS, REPORT_REFRESH_JOB
from campaign_assets.spec import load_spec, spec_hash

EXAMPLES = Path(__file__).resolve().parents[1] / "campaigns"
IDS = sorted(p.stem for p in EXAMPLES.glob("*.yaml"))


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as instance:
        yield instance


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    folder = tmp_path / "campaigns"
    shutil.copytree(EXAMPLES, folder)
    return folder


def tick(instance: dg.DagsterInstance, folder: Path, cursor: str | None) -> dg.SensorResult:
    """One sensor evaluation, then what the daemon does with its partition requests."""
    # Entered, so whatever the context opens (resources, instance) is closed after the tick.
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"workspace": WorkspaceResource(campaigns_dir=str(folder))}
    ) as context:
        result = campaign_specs_sensor(context)
    assert isinstance(result, dg.SensorResult)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(PARTITIONS, list(request.partition_keys))
    return result


def added(result: dg.SensorResult) -> list[str]:
    return sorted(k for r in result.dynamic_partitions_requests or [] for k in r.partition_keys)


def requested(result: dg.SensorResult) -> dict[str, str]:
    return {r.partition_key: r.run_key for r in result.run_requests or []}


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


# ---- sensor -------------------------------------------------------------------------
def test_new_specs_add_partitions_and_request_runs(instance: dg.DagsterInstance, folder: Path) -> None:
    result = tick(instance, folder, None)
    assert added(result) == IDS
    hashes = {i: spec_hash(load_spec(folder / f"{i}.yaml")) for i in IDS}
    assert requested(result) == {i: f"{i}:{hashes[i]}:0" for i in IDS}
    assert all(r.tags["campaign_assets/spec_hash"] == hashes[r.partition_key] for r in result.run_requests)
    cursor = json.loads(result.cursor)
    assert {i: h for i, (h, _rev) in cursor["specs"].items()} == hashes
    assert sorted(instance.get_dynamic_partitions(PARTITIONS)) == IDS


def test_unchanged_specs_request_nothing(instance: dg.DagsterInstance, folder: Path) -> None:
    first = tick(instance, folder, None)
    spec_file = folder / "q4-product-launch.yaml"
    spec_file.write_text("# a comment changes nothing\n" + spec_file.read_text())
    second = tick(instance, folder, first.cursor)
    assert not second.run_requests and not second.dynamic_partitions_requests
    assert "no new or changed" in second.skip_reason.skip_message
    assert second.cursor == first.cursor


def test_a_retick_with_the_same_cursor_gives_the_same_run_keys(instance: dg.DagsterInstance, folder: Path) -> None:
    """A tick the daemon retries (cursor not yet committed) dedupes on run keys."""
    assert requested(tick(instance, folder, None)) == requested(tick(instance, folder, None))


def test_changed_spec_requests_one_run(instance: dg.DagsterInstance, folder: Path) -> None:
    first = tick(instance, folder, None)
    spec_file = folder / "q4-product-launch.yaml"
    original = spec_file.read_text()
    edit(spec_file, "total: 250000", "total: 300000")
    changed = tick(instance, folder, first.cursor)
    new_hash = spec_hash(load_spec(spec_file))
    assert requested(changed) == {"q4-product-launch": f"q4-product-launch:{new_hash}:1"}
    assert not changed.dynamic_partitions_requests
    # Back to the first content: it runs again (a new revision, not a deduped key).
    spec_file.write_text(original)
    reverted = tick(instance, folder, changed.cursor)
    assert set(requested(reverted).values()) == {f"q4-product-launch:{spec_hash(load_spec(spec_file))}:2"}
    assert set(requested(reverted).values()).isdisjoint(requested(first).values())


def test_invalid_file_is_reported_and_others_still_processed(instance: dg.DagsterInstance, folder: Path) -> None:
    (folder / "broken.yaml").write_text("id: broken\nname: Broken\nbudget: {total: -5}\n")
    (folder / "not-yaml.yml").write_text("id: [unclosed\n")
    new_spec = (folder / "q4-product-launch.yaml").read_text().replace("q4-product-launch", "fresh-launch")
    (folder / "fresh-launch.yaml").write_text(new_spec)
    result = tick(instance, folder, None)
    assert added(result) == sorted([*IDS, "fresh-launch"])
    assert set(requested(result)) == {*IDS, "fresh-launch"}
    invalid = json.loads(result.cursor)["invalid"]
    assert set(invalid) == {"broken.yaml", "not-yaml.yml"}
    assert "budget.total" in invalid["broken.yaml"] and "objective" in invalid["broken.yaml"]
    assert "not valid YAML" in invalid["not-yaml.yml"]
    # Next tick: nothing to run, and the tick names the bad files.
    again = tick(instance, folder, result.cursor)
    assert not again.run_requests
    assert "broken.yaml" in again.skip_reason.skip_message and "not-yaml.yml" in again.skip_reason.skip_message


def test_duplicate_id_and_wrong_file_name_are_invalid(folder: Path) -> None:
    shutil.copy(folder / "q4-product-launch.yaml", folder / "q4-product-launch.yml")
    shutil.copy(folder / "q4-product-launch.yaml", folder / "other-name.yaml")
    scan = scan_folder(folder)
    assert sorted(scan.specs) == IDS
    assert "already defined by q4-product-launch.yaml" in scan.invalid["q4-product-launch.yml"]
    assert "must match the file name" in scan.invalid["other-name.yaml"]


def test_one_partitions_query_per_tick(
    instance: dg.DagsterInstance, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = instance.get_dynamic_partitions

    def spy(name: str) -> list[str]:
        calls.append(name)
        return real(name)

    monkeypatch.setattr(instance, "get_dynamic_partitions", spy)
    first = tick(instance, folder, None)
    assert calls == [PARTITIONS]
    edit(folder / "spring-webinar-series.yaml", "name: ", "name: Renamed ")
    (folder / "fresh-launch.yaml").write_text(
        (folder / "q4-product-launch.yaml").read_text().replace("q4-product-launch", "fresh-launch")
    )
    tick(instance, folder, first.cursor)
    assert calls == [PARTITIONS, PARTITIONS]


def test_known_partition_already_materialized_with_this_spec_is_adopted(
    instance: dg.DagsterInstance, folder: Path
) -> None:
    """Cursor lost (or campaign launched from the CLI): no run storm for specs
    whose campaign_spec was materialized with the same hash."""
    from campaign_assets.defs.campaign.assets import campaign_spec

    instance.add_dynamic_partitions(PARTITIONS, IDS)
    workspace = WorkspaceResource(campaigns_dir=str(folder))
    result = dg.materialize(
        [campaign_spec], partition_key="q4-product-launch", instance=instance, resources={"workspace": workspace}
    )
    assert result.success
    first = tick(instance, folder, None)
    assert set(requested(first)) == {"holiday-retail-push", "spring-webinar-series"}
    assert not first.dynamic_partitions_requests
    assert "q4-product-launch" in json.loads(first.cursor)["specs"]


def test_unreadable_cursor_starts_over() -> None:
    assert SensorCursor.from_json("not json") == SensorCursor()
    assert SensorCursor.from_json(json.dumps({"specs": {"a": "oops"}})) == SensorCursor()


def test_sensor_targets_campaign_job_and_runs_by_default() -> None:
    defs = build_defs({})
    sensor = defs.resolve_sensor_def("campaign_specs_sensor")
    assert sensor.job_name == "campaign_job"
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds == 30
    schedule = defs.resolve_schedule_def("report_refresh_schedule")
    assert schedule.job_name == "report_refresh_job"
    job = defs.resolve_job_def("report_refresh_job")
    assert job.asset_layer.executable_asset_keys == {REPORT_ASSET}
    assert defs.resolve_job_def("teardown_job").partitions_def == defs.resolve_job_def("campaign_job").partitions_def


# ---- schedule -----------------------------------------------------------------------
def specs_by_id(folder: Path) -> dict:
    return dict(scan_folder(folder).specs)


def test_report_requests_only_live_campaigns(folder: Path) -> None:
    specs = specs_by_id(folder)
    day = specs["q4-product-launch"].flight.start
    live = {i for i, s in specs.items() if s.flight.start <= day <= s.flight.end}
    assert "q4-product-launch" in live and live != set(specs)
    plan = report_run_requests(specs, day, reported=set(specs))
    assert {r.partition_key for r in plan.requests} == live
    assert {r.run_key for r in plan.requests} == {f"report:{i}:{day.isoformat()}" for i in live}
    # Flight bounds are inclusive; the day after the end is not live.
    end = specs["q4-product-launch"].flight.end
    assert "q4-product-launch" in {r.partition_key for r in report_run_requests(specs, end, set(specs)).requests}
    after = report_run_requests(specs, end + dt.timedelta(days=1), set(specs))
    assert "q4-product-launch" not in {r.partition_key for r in after.requests}
    # Live but never materialized: nothing to refresh yet.
    assert report_run_requests(specs, day, reported=set()).not_ready == tuple(sorted(live))


def schedule_tick(instance: dg.DagsterInstance, folder: Path, ledger: LedgerResource, when: dt.datetime):
    with dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=when,
        resources={"workspace": WorkspaceResource(campaigns_dir=str(folder)), "ledger": ledger},
    ) as context:
        return report_refresh_schedule(context)


def test_schedule_tick_dedupes_per_day_and_skips_torn_down(
    instance: dg.DagsterInstance, folder: Path, tmp_path: Path
) -> None:
    specs = specs_by_id(folder)
    q4 = specs["q4-product-launch"]
    instance.add_dynamic_partitions(PARTITIONS, IDS)
    for cid in IDS:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=REPORT_ASSET, partition=cid))
    ledger = LedgerResource(sqlite_path=str(tmp_path / "ledger.sqlite"))
    day = dt.datetime.combine(q4.flight.start, dt.time(6), tzinfo=dt.timezone.utc)

    first = schedule_tick(instance, folder, ledger, day)
    again = schedule_tick(instance, folder, ledger, day + dt.timedelta(minutes=1))
    assert [r.run_key for r in first] == [r.run_key for r in again]
    assert report_run_key("q4-product-launch", q4.flight.start) in {r.run_key for r in first}
    next_day = schedule_tick(instance, folder, ledger, day + dt.timedelta(days=1))
    assert {r.run_key for r in next_day}.isdisjoint(r.run_key for r in first)

    # A torn-down campaign (its summary report deleted by a teardown) is not refreshed.
    store = Ledger(ledger.resolved_url())
    scope = Scope(q4.organization, q4.id, "summary_report")
    store.record_success(
        scope, "report", "docs", action="created", vendor_id="d1", url=None, content_hash="h", payload={}
    )
    assert {r.partition_key for r in schedule_tick(instance, folder, ledger, day)} == {r.partition_key for r in first}
    store.mark_deleted(store.rows(scope)["report"])
    after = schedule_tick(instance, folder, ledger, day)
    refreshed = set() if isinstance(after, dg.SkipReason) else {r.partition_key for r in after}
    assert refreshed == {r.partition_key for r in first} - {"q4-product-launch"}


def test_schedule_skips_when_nothing_is_live(instance: dg.DagsterInstance, folder: Path, tmp_path: Path) -> None:
    ledger = LedgerResource(sqlite_path=str(tmp_path / "ledger.sqlite"))
    result = schedule_tick(instance, folder, ledger, dt.datetime(2001, 1, 1, 6, tzinfo=dt.timezone.utc))
    assert isinstance(result, dg.SkipReason)


def test_report_refresh_job_selects_only_the_report() -> None:
    defs = build_defs({})
    assert report_refresh_job.name == REPORT_REFRESH_JOB
    assert report_refresh_job.selection.resolve(defs.resolve_asset_graph()) == {REPORT_ASSET}
    job = defs.resolve_job_def(REPORT_REFRESH_JOB)
    assert job.asset_layer.executable_asset_keys == {REPORT_ASSET}
    assert [node.name for node in job.nodes] == ["summary_report"]
    # One campaign per run: the same dynamic partitions as the assets and campaign_job.
    assert isinstance(job.partitions_def, dg.DynamicPartitionsDefinition)
    assert job.partitions_def.name == PARTITIONS
    assert job.partitions_def == campaigns_partitions == defs.resolve_job_def(CAMPAIGN_JOB).partitions_def
