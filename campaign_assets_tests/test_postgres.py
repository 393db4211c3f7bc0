"""Dagster's own storage and the ledger on the machine's Postgres, for real."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from campaign_assets.definitions import build_defs

from .conftest import PROJECT, SEED
from campaign_assets_tests.support.dagster import campaign_graph


def test_materialize_with_dagster_storage_and_ledger_on_postgres(
    pg_url: str, project: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT / "dagster.postgres.yaml", home / "dagster.yaml")  # the documented variant
    monkeypatch.setenv("DAGSTER_PG_URL", pg_url)
    monkeypatch.setenv("CAMPAIGN_LEDGER_URL", pg_url)
    env = project | {"CAMPAIGN_LEDGER_URL": pg_url}

    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        instance.add_dynamic_partitions("campaigns", [SEED])
        defs = build_defs(env)
        for _ in range(2):
            result = dg.materialize(campaign_graph(defs), partition_key=SEED, resources=defs.resources, instance=instance)
            assert result.success
        runs = instance.get_runs()
        assert len(runs) == 2
        assert instance.get_latest_materialization_event(dg.AssetKey("summary_report")) is not None

    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        ledger_rows = conn.execute(sa.text("select count(*) from ledger_items")).scalar_one()
        vault_rows = conn.execute(sa.text("select count(*) from content_library")).scalar_one()
        created = conn.execute(sa.text("select count(*) from audit_log where action = 'created'")).scalar_one()
        dagster_runs = conn.execute(sa.text("select count(*) from runs")).scalar_one()
    engine.dispose()
    assert vault_rows == 9
    assert created == ledger_rows  # the second materialization created nothing
    assert dagster_runs == 2
