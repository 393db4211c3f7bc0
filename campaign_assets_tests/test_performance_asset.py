"""campaign_performance through materialize() with the local backends (issue #16).

A campaign whose flight started ten days ago, approved and gone live, then one past day of
delivery: every source lands in performance_daily once per (source, object, day), the asset's
metadata carries the pacing table and the charts, both checks run, and the summary report shows
the performance section afterwards.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import pytest
import yaml

from campaign_assets.approvals import Approvals
from campaign_assets.definitions import build_defs
from campaign_assets.defs.campaign.performance import PACING_CHECK, SPEND_CHECK, partition_key
from campaign_assets.ledger import Ledger
from campaign_assets_tests.test_assets import checks, materialize

CAMPAIGN = "live-campaign"


def live_spec(campaigns: Path, start: dt.date) -> None:
    spec = {
        "id": CAMPAIGN, "name": "Live Campaign", "organization": "acme", "objective": "awareness",
        "audience": "Platform engineers", "brand": {"name": "Acme", "primary_color": "#0B5FFF", "website": "https://acme.example"},
        "budget": {"total": 120000, "currency": "USD"},
        "flight": {"start": start.isoformat(), "end": (start + dt.timedelta(days=55)).isoformat()},
        "channels": [
            {"name": "display", "share": 0.3, "dsp": "amazon"},
            {"name": "video", "share": 0.2, "dsp": "trade_desk"},
            {"name": "search", "share": 0.2, "dsp": "dv360"},
            {"name": "social", "share": 0.3},
        ],
        "vectors": [{"stakeholder_group": "Engineers", "timing": "Week 1", "content_types": ["email", "social-post"]}],
        "creative_sizes": ["300x250"],
        "reviewers": [{"name": "Dana"}],
        "distribution": {"email": {"list_id": "list-1"},
                         "social": {"profiles": [{"id": "5f1a2b3c4d5e6f7081920a1b", "network": "linkedin"}]}},
    }
    (campaigns / f"{CAMPAIGN}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))


def perform(env: dict[str, str], day: dt.date, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    """The campaign's upstream from the earlier runs (the same instance and IO manager), then one day."""
    defs = build_defs(env)
    graph = [a for a in defs.assets if getattr(a, "partitions_def", None) is not None]
    return dg.materialize(
        graph, selection=["campaign_performance"], partition_key=partition_key(CAMPAIGN, day),
        resources=dict(defs.resources), instance=instance, raise_on_error=True,
    )


def launch(env: dict[str, str], instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    defs = build_defs(env)
    assets = [a for a in defs.assets if getattr(a, "partitions_def", None) is not None
              and getattr(a.partitions_def, "name", None) == "campaigns"]
    return dg.materialize(assets, partition_key=CAMPAIGN, resources=dict(defs.resources), instance=instance,
                          raise_on_error=True)


@pytest.mark.slow
def test_a_live_campaigns_day_lands_once_with_pacing_and_charts(project: dict[str, str]) -> None:
    today = dt.datetime.now(dt.timezone.utc).date()
    start = today - dt.timedelta(days=10)
    live_spec(Path(project["CAMPAIGNS_DIR"]), start)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("campaigns", [CAMPAIGN])
    assert launch(project, instance).success
    url = f"sqlite:///{Path(project['WORKSPACE_DIR']) / 'ledger.sqlite'}"
    Approvals(url).decide("acme", CAMPAIGN, "approved", by="tester", note="go")
    assert launch(project, instance).success  # goes live: the send and the post, both in the past

    assert perform(project, start, instance).success  # the send day: everything delivered then
    day = start + dt.timedelta(days=3)
    first = perform(project, day, instance)
    assert first.success
    value = first.output_for_node("campaign_performance")
    assert set(value["source"]) == {"amazon", "trade_desk", "dv360", "email", "social"}
    assert (value["day"] == day).all() and len(value) == 5
    assert value.loc[value["source"] != "email", "impressions"].gt(0).all()
    meta = {k: v.value for k, v in first.get_asset_materialization_events()[0].materialization.metadata.items()}
    assert "| display |" in meta["pacing"] and "data:image/png;base64," in meta["charts"]
    charts = [Path(v) for k, v in meta.items() if k.startswith("chart/")]
    assert {p.name for p in charts} >= {"performance_spend.png", "performance_clicks.png", "performance_email_funnel.png"}
    assert all(p.parent.name == day.isoformat() and p.parent.parent.name == "performance" and p.exists() for p in charts)
    found = checks(first)
    assert found[PACING_CHECK].passed and found[SPEND_CHECK].passed  # the model follows the budget within ±10%
    assert meta["days_reported"] == 2 and meta["days_to_date"] == 4
    assert found[SPEND_CHECK].severity == dg.AssetCheckSeverity.ERROR

    again = perform(project, day, instance)  # the same day again: replaced, never added
    with Ledger(url) as ledger:
        stored = ledger.performance("acme", CAMPAIGN)
    assert len(stored) == 10  # two days x (three line items, one send, one post)
    assert again.output_for_node("campaign_performance")[["source", "object_id", "spend_cents", "clicks"]].equals(
        value[["source", "object_id", "spend_cents", "clicks"]]
    )

    assert launch(project, instance).success  # the summary report now shows the section
    report = (Path(project["WORKSPACE_DIR"]) / "acme" / CAMPAIGN / "summary_report.md").read_text()
    assert f"## Performance through {day.isoformat()}" in report
    assert f"performance/{day.isoformat()}/performance_spend.png" in report
