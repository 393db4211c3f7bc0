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
from campaign_assets.defs.campaign.performance import (
    PACING_CHECK,
    SPEND_CHECK,
    partition_key,
)
from campaign_assets.ledger import Ledger
from campaign_assets_tests.test_assets import checks

CAMPAIGN = "live-campaign"


def live_spec(campaigns: Path, start: dt.date, *, distribution: bool = True) -> None:
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
    if not distribution:
        spec = {k: v for k, v in spec.items() if k not in ("reviewers", "distribution")}
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


# ---- pacing over the reported days, and the two checks (no run) --------------------------------------------
def _plan_and_rows(spend_factor: float, days: int = 1) -> tuple:
    import pandas as pd

    from campaign_assets.logic.media_plan import build_media_plan
    from campaign_assets.spec import CampaignSpec
    from campaign_assets.workflows.performance import planned_cents

    start = dt.date(2027, 3, 1)
    spec = CampaignSpec.model_validate({
        "id": "p", "name": "P", "organization": "acme", "objective": "awareness", "audience": "x",
        "brand": {"name": "Acme", "primary_color": "#0B5FFF"}, "budget": {"total": 70000, "currency": "USD"},
        "flight": {"start": start.isoformat(), "end": "2027-04-10"},
        "channels": [{"name": "display", "share": 0.5, "dsp": "amazon"}, {"name": "search", "share": 0.5}],
        "vectors": [{"stakeholder_group": "E", "timing": "W1", "content_types": ["blog-post"]}],
        "creative_sizes": ["300x250"],
    })
    plan = build_media_plan(spec)
    day = start + dt.timedelta(days=5)
    fetched = [day - dt.timedelta(days=i) for i in range(days)]
    rows = pd.DataFrame([
        {"day": d, "source": "amazon", "channel": "display", "object_id": "li-1", "impressions": 1000, "clicks": 10,
         "spend_cents": round(planned_cents(plan, "display", d) * spend_factor), "delivered": 0, "opens": 0}
        for d in fetched
    ])
    return spec, plan, rows, day


def test_pacing_counts_the_days_reported_not_the_days_never_fetched() -> None:
    from campaign_assets.workflows.performance import pacing_table, planned_cents

    _, plan, rows, day = _plan_and_rows(1.0)
    table = pacing_table(plan, rows, day).set_index("channel")
    assert table.loc["display", "planned_to_date_cents"] == planned_cents(plan, "display", day)  # one day, not six
    assert table.loc["display", "within"] and table.loc["display", "pacing"] == pytest.approx(1.0, abs=1e-3)
    assert table.loc["display", "plan_total_cents"] == 3_500_000  # the whole plan's total, still
    assert not table.loc["search", "measured"]  # no DSP runs search: listed, not judged

    _, plan, rows, day = _plan_and_rows(1.3, days=3)
    assert not pacing_table(plan, rows, day).set_index("channel").loc["display", "within"]


def test_spend_above_the_plan_total_fails_the_error_check() -> None:
    import pandas as pd

    from campaign_assets.defs.campaign.performance import spend_check
    from campaign_assets.logic import performance as perf
    from campaign_assets.workflows.performance import Analysis, pacing_table

    _, plan, rows, day = _plan_and_rows(1.0)
    rows = pd.concat([rows, rows.assign(object_id="li-2", spend_cents=3_600_000)])
    analysis = Analysis(day, pacing_table(plan, rows, day), [], perf.overspend(plan, rows, day), {}, "", 1, 6)
    result = spend_check(analysis, plan, "USD")
    assert not result.passed and result.severity == dg.AssetCheckSeverity.ERROR
    assert "display: spent" in (result.description or "")


@pytest.mark.slow
def test_through_the_sandbox_line_items_made_at_the_dsps_report_their_delivery(
    project: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every service on its HTTP backend against the sandbox: dsp_activation makes the line items at the
    three DSPs' campaign management, and their reporting APIs report on them (async jobs, polled)."""
    from campaign_assets.sandbox import SandboxConfig, SandboxServer, service_env

    today = dt.datetime.now(dt.timezone.utc).date()
    start = today - dt.timedelta(days=10)
    live_spec(Path(project["CAMPAIGNS_DIR"]), start, distribution=False)
    with SandboxServer(SandboxConfig(scale=0.005, timeout_hold_s=1.0)) as sandbox:
        fast = {"HTTP_BACKOFF_S": "0.01", "CANVA_POLL_INTERVAL_S": "0.02", "REPORT_POLL_INTERVAL_S": "0.02"}
        env = project | service_env(sandbox.url) | fast
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        instance = dg.DagsterInstance.ephemeral()
        instance.add_dynamic_partitions("campaigns", [CAMPAIGN])
        assert launch(env, instance).success
        day = start + dt.timedelta(days=3)
        result = perform(env, day, instance)
        value = result.output_for_node("campaign_performance")
        assert sorted(value["source"]) == ["amazon", "dv360", "trade_desk"]
        assert value["spend_cents"].gt(0).all() and value["clicks"].ge(0).all()
        meta = {k: v.value for k, v in result.get_asset_materialization_events()[0].materialization.metadata.items()}
        assert meta["amazon_reporting/backend"] == "http" and meta["sources_failed"] == 0
        assert checks(result)[PACING_CHECK].passed, checks(result)[PACING_CHECK].description
        calls = {c["vendor"] for c in sandbox.state()["calls"]}
        assert {"amazon-ads", "ttd", "bid-manager"} <= calls
