"""Specs and artifacts on a URL: the mirror on an in-memory filesystem (pure,
fast), then the sensor and two "hosts" on a real S3 API (moto's server).

Two hosts share a bucket (artifacts, asset values) and a ledger database.
Each host has its own disk; the cache path is the same on both (asset values
and ledger rows name files by their path there), so host B runs with a fresh
folder at the path host A used, host A's moved aside.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from upath import UPath

from campaign_assets.defs.automation.spec_sensor import campaign_specs_sensor, scan_folder
from campaign_assets.definitions import build_defs
from campaign_assets.resources import WorkspaceResource, build_resources
from campaign_assets.settings import PARTITIONS
from campaign_assets.spec import find_spec_path, load_spec, spec_hash
from campaign_assets.workflows.review import PACKETS
from campaign_assets.storage import Mirror, cache_name, changed_since, local_snapshot, location
from campaign_assets_tests.support.dagster import campaign_graph
from campaign_assets_tests.support.s3 import MotoS3, moto_s3

EXAMPLES = Path(__file__).resolve().parents[1] / "campaigns"
BUCKET = "campaign-storage"


# ---- the mirror, on memory:// --------------------------------------------------------------
@pytest.fixture
def remote() -> Iterator[UPath]:
    root = UPath(f"memory://mirror-{uuid.uuid4().hex[:8]}/acme/c1")
    (root / "brief.md").write_text("brief")
    (root / "creatives" / "300x250.png").write_bytes(b"png-1")
    yield root
    root.fs.rm(root.path, recursive=True)


def test_pull_copies_the_remote_folder_then_only_what_is_newer(remote: UPath, tmp_path: Path) -> None:
    local = tmp_path / "cache" / "acme" / "c1"
    first = Mirror.pull(remote, local)
    assert sorted(first.pulled) == ["brief.md", "creatives/300x250.png"]
    assert (local / "creatives" / "300x250.png").read_bytes() == b"png-1"
    assert Mirror.pull(remote, local).pulled == ()  # same times: nothing to fetch

    # Another host uploads a new version: newer than the local copy, so pulled.
    (remote / "brief.md").write_text("brief v2")
    os.utime(local / "brief.md", (1, 1))  # the local copy is older (the memory filesystem keeps no mtime on rewrite)
    assert Mirror.pull(remote, local).pulled == ("brief.md",)
    assert (local / "brief.md").read_text() == "brief v2"


def test_a_local_file_newer_than_the_remote_is_kept(remote: UPath, tmp_path: Path) -> None:
    local = tmp_path / "c1"
    Mirror.pull(remote, local)
    (local / "brief.md").write_text("written here, not pushed yet")  # a step of this host, still running
    assert Mirror.pull(remote, local).pulled == ()
    assert (local / "brief.md").read_text() == "written here, not pushed yet"


def test_push_uploads_only_new_and_changed_files_and_never_deletes(remote: UPath, tmp_path: Path) -> None:
    local = tmp_path / "c1"
    mirror = Mirror.pull(remote, local)
    assert mirror.push() == []  # nothing changed since the pull
    (local / "landing_page.html").write_text("<html>")
    (local / "creatives" / "300x250.png").write_bytes(b"png-2!")
    (local / "brief.md").unlink()
    assert mirror.push() == ["creatives/300x250.png", "landing_page.html"]
    assert (remote / "landing_page.html").read_text() == "<html>"
    assert (remote / "creatives" / "300x250.png").read_bytes() == b"png-2!"
    assert (remote / "brief.md").read_text() == "brief"  # deleted here, kept there
    assert mirror.push() == []  # pushed: the snapshot moved on


def test_prune_deletes_remotely_what_was_deleted_locally(remote: UPath, tmp_path: Path) -> None:
    local = tmp_path / "c1"
    mirror = Mirror.pull(remote, local)
    (local / "brief.md").unlink()
    assert mirror.push(prune=True) == ["-brief.md"]
    assert not (remote / "brief.md").exists() and (remote / "creatives" / "300x250.png").exists()


def test_change_detection_is_size_and_mtime(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("a")
    before = local_snapshot(tmp_path)
    assert changed_since(before, local_snapshot(tmp_path)) == []
    os.utime(tmp_path / "a", (5, 5))
    (tmp_path / "b.mirror-part").write_text("download in progress")
    assert changed_since(before, local_snapshot(tmp_path)) == ["a"]


def test_cache_names_are_stable_and_cannot_climb_out() -> None:
    assert cache_name("s3://bucket/prefix/") == "s3/bucket/prefix"
    assert cache_name("s3://bucket/../../etc") == "s3/bucket/etc"


def test_workspace_on_a_url_root_pulls_pushes_and_shows_urls(remote: UPath, tmp_path: Path) -> None:
    root = str(remote.parent.parent)  # memory://mirror-xxxx
    workspace = WorkspaceResource(root=root, cache_dir=str(tmp_path / "cache"))
    with dg.build_resources({"workspace": workspace}) as resources:
        folder = resources.workspace.campaign_dir("acme", "c1")
        assert folder == (tmp_path / "cache" / cache_name(root) / "acme" / "c1").resolve()
        assert (folder / "brief.md").read_text() == "brief"
        (folder / "report.md").write_text("report")
        assert resources.workspace.shown(folder / "report.md") == f"{root}/acme/c1/report.md"
    assert (remote / "report.md").read_text() == "report"  # uploaded at teardown


def test_a_url_workspace_needs_a_named_ledger() -> None:
    with pytest.raises(ValueError, match="CAMPAIGN_LEDGER_URL"):
        build_resources({"WORKSPACE_DIR": "s3://b/ws"})
    resources = build_resources(
        {"WORKSPACE_DIR": "s3://b/ws", "CAMPAIGN_LEDGER_URL": "sqlite:////var/ledger.sqlite",
         "WORKSPACE_CACHE_DIR": "/var/cache/ws", "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    )
    workspace = resources["workspace"]
    assert (workspace.root, workspace.cache_dir) == ("s3://b/ws", "/var/cache/ws")
    assert workspace.endpoint_url == dg.EnvVar("AWS_ENDPOINT_URL")
    assert build_resources({"WORKSPACE_DIR": "/srv/ws"})["ledger"].sqlite_path == "/srv/ws/ledger.sqlite"


# ---- a real S3 API ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def s3() -> Iterator[MotoS3]:
    with moto_s3() as server:
        server.create_bucket(BUCKET)
        yield server


@pytest.fixture
def s3_env(s3: MotoS3, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)  # botocore finds the credentials; EnvVar resolves the endpoint
    return s3.env


def _put_examples(s3: MotoS3, prefix: str) -> None:
    client = s3.client()
    for path in sorted(EXAMPLES.glob("*.yaml")):
        client.put_object(Bucket=BUCKET, Key=f"{prefix}/{path.name}", Body=path.read_bytes())


def test_specs_in_a_bucket_are_scanned_found_and_loaded(s3: MotoS3, s3_env: dict[str, str]) -> None:
    prefix = f"specs-{uuid.uuid4().hex[:8]}"
    _put_examples(s3, prefix)
    folder = location(f"s3://{BUCKET}/{prefix}", s3.endpoint)
    scan = scan_folder(folder)
    ids = sorted(p.stem for p in EXAMPLES.glob("*.yaml"))
    assert sorted(scan.specs) == ids and not scan.invalid
    path = find_spec_path(folder, "q4-product-launch")
    assert str(path) == f"s3://{BUCKET}/{prefix}/q4-product-launch.yaml"
    assert spec_hash(load_spec(path)) == spec_hash(load_spec(EXAMPLES / "q4-product-launch.yaml"))
    assert scan_folder(location(f"s3://{BUCKET}/nothing-here", s3.endpoint)).specs == {}


def _tick(instance: dg.DagsterInstance, workspace: WorkspaceResource, cursor: str | None) -> dg.SensorResult:
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources={"workspace": workspace}) as context:
        result = campaign_specs_sensor(context)
    assert isinstance(result, dg.SensorResult)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(PARTITIONS, list(request.partition_keys))
    return result


def test_the_sensor_watches_a_bucket_prefix(s3: MotoS3, s3_env: dict[str, str]) -> None:
    prefix = f"specs-{uuid.uuid4().hex[:8]}"
    client = s3.client()
    seed = (EXAMPLES / "q4-product-launch.yaml").read_text()
    client.put_object(Bucket=BUCKET, Key=f"{prefix}/q4-product-launch.yaml", Body=seed.encode())
    workspace = WorkspaceResource(campaigns_dir=f"s3://{BUCKET}/{prefix}", endpoint_url=dg.EnvVar("AWS_ENDPOINT_URL"))
    with dg.instance_for_test() as instance:
        first = _tick(instance, workspace, None)
        assert [r.partition_key for r in first.run_requests] == ["q4-product-launch"]
        assert instance.get_dynamic_partitions(PARTITIONS) == ["q4-product-launch"]

        assert not _tick(instance, workspace, first.cursor).run_requests  # unchanged: nothing

        # A new spec lands in the bucket: its partition and a run.
        other = (EXAMPLES / "spring-webinar-series.yaml").read_bytes()
        client.put_object(Bucket=BUCKET, Key=f"{prefix}/spring-webinar-series.yaml", Body=other)
        second = _tick(instance, workspace, first.cursor)
        assert [r.partition_key for r in second.run_requests] == ["spring-webinar-series"]
        assert sorted(instance.get_dynamic_partitions(PARTITIONS)) == ["q4-product-launch", "spring-webinar-series"]

        # The seed's object is replaced with a changed spec: one run, tagged "changed".
        assert "total: 250000" in seed
        client.put_object(Bucket=BUCKET, Key=f"{prefix}/q4-product-launch.yaml", Body=seed.replace("total: 250000", "total: 300000").encode())
        third = _tick(instance, workspace, second.cursor)
        [run] = third.run_requests
        assert run.partition_key == "q4-product-launch" and run.tags["campaign_assets/trigger"] == "spec changed"
        assert json.loads(third.cursor)["specs"]["q4-product-launch"][1] == 1


CAMPAIGN = "spring-webinar-series"


def _materialize(env: dict[str, str], selection: list[str]) -> dg.ExecuteInProcessResult:
    defs = build_defs(env)
    instance = dg.DagsterInstance.ephemeral()  # each host its own instance: values come from the bucket
    instance.add_dynamic_partitions(PARTITIONS, [CAMPAIGN])
    return dg.materialize(
        campaign_graph(defs), selection=selection, partition_key=CAMPAIGN, resources=dict(defs.resources),
        instance=instance, raise_on_error=True,
    )


def test_a_second_host_reads_the_artifacts_the_first_wrote(
    s3: MotoS3, s3_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Host A makes everything the review needs; host B, its disk empty, runs
    only ``campaign_review``, which reads host A's landing page and creatives."""
    run = uuid.uuid4().hex[:8]
    campaigns = tmp_path / "campaigns"
    shutil.copytree(EXAMPLES, campaigns)
    cache = tmp_path / "cache"
    env = s3_env | {
        "CAMPAIGNS_DIR": str(campaigns),
        "WORKSPACE_DIR": f"s3://{BUCKET}/ws-{run}",
        "WORKSPACE_CACHE_DIR": str(cache),
        "CAMPAIGN_IO_BASE": f"s3://{BUCKET}/io-{run}",
        "CAMPAIGN_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.sqlite'}",  # the hosts' shared database
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    prefix = f"ws-{run}/acme/{CAMPAIGN}/"

    graph = [k.to_user_string() for a in campaign_graph(build_defs(env)) for k in a.keys]
    from_review_on = {"campaign_review", "approval_gate", "summary_report", "dsp_go_live", "email_send", "published_site", "social_posts"}
    host_a = _materialize(env, [k for k in graph if k not in from_review_on])
    assert host_a.success
    keys = s3.keys(BUCKET, prefix)
    pngs = [k for k in keys if k.startswith(f"{prefix}creatives/") and k.endswith(".png")]
    assert f"{prefix}landing_page.html" in keys and f"{prefix}brief.md" in keys and pngs, keys
    [landing] = [e for e in host_a.get_asset_materialization_events() if e.asset_key.to_user_string() == "landing_page"]
    assert landing.materialization.metadata["page"].value == f"s3://{BUCKET}/{prefix}landing_page.html"

    shutil.move(str(cache), str(tmp_path / "host-a-disk"))  # host B's disk: nothing of host A
    host_b = _materialize(env, ["campaign_review"])
    assert host_b.success
    local = cache / cache_name(env["WORKSPACE_DIR"]) / "acme" / CAMPAIGN
    client = s3.client()
    for key in pngs:  # pulled from the bucket, byte for byte
        assert (local / key.removeprefix(prefix)).read_bytes() == client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    release = host_b.output_for_node("campaign_review", "campaign_review")["release"]
    sources = {Path(f["source"]).name: f["sha256"] for f in release["files"]}
    for key in pngs:
        body = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        assert sources.get(Path(key).name) == hashlib.sha256(body).hexdigest(), sources
    # What host B made went up too (the review packet), and the UI shows where.
    review = host_b.output_for_node("campaign_review", "campaign_review")
    packet = f"{prefix}{PACKETS}/{review['fingerprint'][:12]}.html"
    assert packet in s3.keys(BUCKET, prefix)
    [event] = host_b.get_asset_materialization_events()
    assert event.materialization.metadata["review_packet"].value == f"s3://{BUCKET}/{packet}"


def test_teardown_of_a_url_workspace_deletes_the_campaigns_files_in_the_bucket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Made on one host, torn down from another (an empty cache): the
    teardown pulls the campaign, deletes what it made, and prunes the bucket."""
    from campaign_assets.core.teardown import TeardownServices, teardown_campaign
    from campaign_assets.defs.campaign import assets as campaign_module, research as research_module
    from campaign_assets.resources import SERVICE_ENV, LedgerResource

    for _cls, _prefix, token in SERVICE_ENV.values():
        monkeypatch.delenv(token, raising=False)  # local backends
    shutil.copytree(EXAMPLES, tmp_path / "campaigns")
    root = UPath(f"memory://teardown-{uuid.uuid4().hex[:8]}")
    cache = tmp_path / "cache"
    workspace = WorkspaceResource(campaigns_dir=str(tmp_path / "campaigns"), root=str(root), cache_dir=str(cache))
    resources = build_resources({}) | {
        "workspace": workspace, "ledger": LedgerResource(sqlite_path=str(tmp_path / "ledger.sqlite")),
    }
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(PARTITIONS, ["q4-product-launch"])
        assets = dg.load_assets_from_modules([campaign_module, research_module])
        assert dg.materialize(assets, partition_key="q4-product-launch", instance=instance, resources=resources).success
    remote = root / "acme" / "q4-product-launch"
    assert (remote / "landing_page.html").exists() and (remote / "brief.md").exists()
    shutil.rmtree(cache)  # another host

    ledger = resources["ledger"].open()
    try:
        report = teardown_campaign(
            "q4-product-launch", workspace=workspace, ledger=ledger, services=TeardownServices.from_mapping(resources)
        )
    finally:
        ledger.dispose()
    assert report.ok and report.counts["deleted"] > 2, report
    assert root.fs.find(remote.path) == []


def test_a_spec_launched_from_elsewhere_joins_a_bucket_folder(tmp_path: Path) -> None:
    from campaign_assets.cli import Target, register_spec
    from campaign_assets.spec import SpecError

    folder = UPath(f"memory://specs-{uuid.uuid4().hex[:8]}/campaigns")
    source = EXAMPLES / "q4-product-launch.yaml"
    home = register_spec(Target(source, load_spec(source)), folder, replace=False)
    assert str(home) == f"{folder}/q4-product-launch.yaml" and home.read_bytes() == source.read_bytes()
    assert sorted(scan_folder(folder).specs) == ["q4-product-launch"]
    changed = tmp_path / "q4-product-launch.yaml"
    changed.write_text(source.read_text().replace("total: 250000", "total: 300000"))
    with pytest.raises(SpecError, match="--replace"):
        register_spec(Target(changed, load_spec(changed)), folder, replace=False)
    register_spec(Target(changed, load_spec(changed)), folder, replace=True)
    assert home.read_text() == changed.read_text()
