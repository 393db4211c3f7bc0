"""Asset values across hosts: the IO manager on a real S3 API (moto's server).

Run 1 materializes every asset but the summary report on one instance; run 2,
on a second instance with its own storage folder (another "host"), runs only
``summary_report`` and must load its eight upstream values from the bucket, as
``report_refresh_job`` does in production.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from campaign_assets.definitions import build_defs
from campaign_assets.io_manager import CampaignIOManager, storage_options
from campaign_assets.resources import build_resources
from campaign_assets_tests.support.s3 import MotoS3, moto_s3

from .conftest import SEED
from campaign_assets_tests.support.dagster import campaign_graph

BUCKET = "campaign-io"
UPSTREAM = (
    "campaign_spec", "campaign_brief", "media_plan", "project_tasks", "creatives",
    "content_library", "landing_page", "dsp_activation",
)


def test_storage_options_give_the_endpoint_to_s3_only() -> None:
    assert storage_options("s3://b/p", "http://127.0.0.1:9") == {"endpoint_url": "http://127.0.0.1:9"}
    assert storage_options("s3a://b/p", "http://127.0.0.1:9") == {"endpoint_url": "http://127.0.0.1:9"}
    assert storage_options("gs://b/p", "http://127.0.0.1:9") == {}
    assert storage_options("/var/io", "http://127.0.0.1:9") == {}
    assert storage_options("s3://b/p", None) == {}


def test_build_resources_reads_the_base_and_endpoint_through_envvar() -> None:
    default = build_resources({})["io_manager"]
    assert isinstance(default, CampaignIOManager) and default.base_path is None and default.endpoint_url is None
    configured = build_resources({"CAMPAIGN_IO_BASE": "s3://b/io", "AWS_ENDPOINT_URL": "http://127.0.0.1:9"})["io_manager"]
    assert configured.base_path == dg.EnvVar("CAMPAIGN_IO_BASE")
    assert configured.endpoint_url == dg.EnvVar("AWS_ENDPOINT_URL")


def _instance(partition: str = SEED) -> dg.DagsterInstance:
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("campaigns", [partition])
    return instance


def _materialize(env: dict[str, str], instance: dg.DagsterInstance, selection: list[str]) -> dg.ExecuteInProcessResult:
    defs = build_defs(env)
    return dg.materialize(
        campaign_graph(defs),
        selection=selection,
        partition_key=SEED,
        resources=dict(defs.resources),
        instance=instance,
        raise_on_error=True,
    )


def test_unset_base_keeps_values_where_the_default_io_manager_did(project: dict[str, str]) -> None:
    instance = _instance()
    spec_step = ["campaign_spec", "brief_inputs", "plan_inputs", "task_inputs", "creative_inputs", "research_inputs", "review_inputs"]
    assert _materialize(project, instance, spec_step).success
    stored = Path(instance.storage_directory()) / "campaign_spec" / SEED
    assert pickle.loads(stored.read_bytes()).id == SEED


@pytest.fixture(scope="module")
def s3() -> Iterator[MotoS3]:
    with moto_s3() as server:
        server.create_bucket(BUCKET)
        yield server


def test_a_second_host_loads_upstream_values_from_s3(
    project: dict[str, str], s3: MotoS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = project | s3.env | {"CAMPAIGN_IO_BASE": f"s3://{BUCKET}/io"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)  # where EnvVar resolves (and botocore finds the credentials)

    first = _instance()
    defs = build_defs(env)
    everything_but_report = [k.to_user_string() for a in campaign_graph(defs) for k in a.keys]
    everything_but_report.remove("summary_report")
    assert _materialize(env, first, everything_but_report).success

    keys = s3.keys(BUCKET, "io/")
    for asset in UPSTREAM:
        assert f"io/{asset}/{SEED}" in keys, keys
    assert "io/summary_report/" + SEED not in keys
    assert not (Path(first.storage_directory()) / "media_plan").exists()  # nothing went to the local default

    # Prove run 2 reads the bucket, not anything of run 1: shorten the stored library.
    client = s3.client()
    key = f"io/content_library/{SEED}"
    library = pickle.loads(client.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    assert len(library["pieces"]) > 1
    library["pieces"] = library["pieces"][:1]
    client.put_object(Bucket=BUCKET, Key=key, Body=pickle.dumps(library))

    second = _instance()  # another instance, another storage folder: "another host"
    result = _materialize(env, second, ["summary_report"])
    assert result.success
    loaded = {e.event_specific_data.input_name for e in result.all_events if e.event_type == dg.DagsterEventType.LOADED_INPUT}
    assert loaded == set(UPSTREAM)
    [report] = [e for e in result.get_asset_materialization_events()]
    assert report.materialization.metadata["content_pieces_in_vault"].value == 1
    assert f"io/summary_report/{SEED}" in s3.keys(BUCKET, "io/")
