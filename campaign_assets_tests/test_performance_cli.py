"""``campaign-assets performance ID --date D`` and the daily schedule's choice of campaigns (issue #16)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import dagster as dg
import pytest
import yaml

from campaign_assets.defs.automation.performance_schedule import (
    CAMPAIGN_TAG,
    DAY_TAG,
    performance_run_requests,
    report_after,
)
from campaign_assets.defs.campaign.performance import partition_key
from campaign_assets.spec import CampaignSpec
from campaign_assets_tests.test_cli import cli

CAMPAIGN = "ten-days-in"


def spec_data(start: dt.date, cid: str = CAMPAIGN) -> dict:
    return {
        "id": cid, "name": "Ten Days In", "organization": "acme", "objective": "awareness",
        "audience": "Platform engineers", "brand": {"name": "Acme", "primary_color": "#0B5FFF", "website": "https://acme.example"},
        "budget": {"total": 90000, "currency": "USD"},
        "flight": {"start": start.isoformat(), "end": (start + dt.timedelta(days=40)).isoformat()},
        "channels": [{"name": "display", "share": 0.5, "dsp": "amazon"}, {"name": "search", "share": 0.2, "dsp": "dv360"},
                     {"name": "social", "share": 0.3}],
        "vectors": [{"stakeholder_group": "Engineers", "timing": "Week 1", "content_types": ["blog-post"]}],
        "creative_sizes": ["300x250"],
    }


def test_the_schedule_asks_for_yesterday_of_every_live_registered_standing_campaign() -> None:
    yesterday = dt.date(2027, 3, 10)
    specs = {
        "live": CampaignSpec.model_validate(spec_data(dt.date(2027, 3, 1), "live")),
        "later": CampaignSpec.model_validate(spec_data(dt.date(2027, 3, 11), "later")),
        "gone": CampaignSpec.model_validate(spec_data(dt.date(2027, 3, 1), "gone")),
        "unregistered": CampaignSpec.model_validate(spec_data(dt.date(2027, 3, 1), "unregistered")),
    }
    requests = performance_run_requests(specs, yesterday, registered={"live", "later", "gone"}, torn_down={"gone"})
    assert [r.partition_key for r in requests] == [partition_key("live", yesterday)]
    assert requests[0].run_key == "perf:live:2027-03-10"


def test_a_finished_day_run_asks_for_its_campaigns_report() -> None:
    run = dg.DagsterRun(job_name="performance_job", run_id="abc", tags={CAMPAIGN_TAG: "live", DAY_TAG: "2027-03-10"})
    request = report_after(run)
    assert request is not None and request.partition_key == "live" and request.run_key == "report-after:abc"
    assert report_after(dg.DagsterRun(job_name="performance_job", run_id="x", tags={})) is None
    backfilled = dg.DagsterRun(job_name="__ASSET_JOB", run_id="b", tags=run.tags,
                               asset_selection=frozenset({dg.AssetKey("campaign_performance")}))
    assert report_after(backfilled) is not None  # a backfill's run of the asset
    other = dg.DagsterRun(job_name="__ASSET_JOB", run_id="o", tags=run.tags, asset_selection=frozenset({dg.AssetKey("x")}))
    assert report_after(other) is None


@pytest.mark.slow
def test_performance_command_materializes_the_day_refreshes_the_report_and_prints_pacing(
    project: dict[str, str], tmp_path: Path
) -> None:
    env = project | {"DAGSTER_HOME": str(tmp_path / "dagster_home")}
    start = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=10)
    (Path(project["CAMPAIGNS_DIR"]) / f"{CAMPAIGN}.yaml").write_text(yaml.safe_dump(spec_data(start), sort_keys=False))
    launched = cli("launch", CAMPAIGN, env=env, cwd=tmp_path)
    assert launched.returncode == 0, launched.stdout + launched.stderr

    day = start + dt.timedelta(days=3)
    ran = cli("performance", CAMPAIGN, "--date", day.isoformat(), env=env, cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert f"{CAMPAIGN} {day}: campaign_performance run" in ran.stdout and "summary_report refreshed" in ran.stdout
    assert re.search(r"^\| display \| 45,000\.00 \|", ran.stdout, flags=re.MULTILINE), ran.stdout
    assert "check pacing_within_15_percent: passed" in ran.stdout
    assert "check spend_within_plan_total: passed" in ran.stdout
    folder = Path(project["WORKSPACE_DIR"]) / "acme" / CAMPAIGN
    assert (folder / "performance" / day.isoformat() / "performance_spend.png").exists()
    report = (folder / "summary_report.md").read_text()
    assert f"## Performance through {day}" in report and "| display |" in report

    future = cli("performance", CAMPAIGN, "--date", "2999-01-01", env=env, cwd=tmp_path)
    assert future.returncode == 2 and "not over yet" in future.stderr
