"""The DSP reporting clients (Amazon Ads v3, TTD MyReports, Bid Manager v2) against the vendor
sandbox: async report jobs polled to completion, 429s waited out, lost responses found instead of
asked twice; the local backend on the same delivery model."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from campaign_assets.logic.delivery import media_delivery
from campaign_assets.sandbox.server import SandboxServer
from campaign_assets.sandbox.vendors.dsp_reporting import LINE_ITEM, line_item_object
from campaign_assets.services.dsp_reporting import (
    AmazonReportingResource,
    DV360ReportingResource,
    LineItemDay,
    LineItemQuery,
    LocalDSPReporting,
    TradeDeskReportingResource,
    report_name,
)
from campaign_assets_tests.http_doubles import GENEROUS_TIMEOUT_S

DAY = dt.date(2027, 3, 4)
PLANNED = {"li-display-1": ("display", 350_000), "li-search-2": ("search", 120_000)}
NAME = report_name("acme/q4", "amazon", DAY)

# resource class, sandbox vendor, the report-creating endpoint, extra config
VENDORS = {
    "amazon": (AmazonReportingResource, "amazon-ads", "POST /reporting/reports", {"client_id": "c", "profile_id": "1"}),
    "trade_desk": (TradeDeskReportingResource, "ttd", "POST /v3/myreports/reportschedule",
                   {"advertiser_id": "adv1", "template_id": "7"}),
    "dv360": (DV360ReportingResource, "bid-manager", "POST /v2/queries", {}),
}
POLL = {"amazon": "GET /reporting/reports/{reportId}", "trade_desk": "POST /v3/myreports/reportexecution/query/advertisers",
        "dv360": "GET /v2/queries/{queryId}/reports/{reportId}"}


def expected(item: str) -> LineItemDay:
    channel, cents = PLANNED[item]
    d = media_delivery(item, DAY, cents, channel)
    return LineItemDay(item, DAY, d.impressions, d.clicks, d.spend_cents)


def queries() -> list[LineItemQuery]:
    return [LineItemQuery(item, channel, cents) for item, (channel, cents) in PLANNED.items()] + [
        LineItemQuery("li-unknown", "display", 50_000)  # not at the vendor: delivers nothing
    ]


def register(sandbox: SandboxServer, vendor: str) -> None:
    for item, (channel, cents) in PLANNED.items():
        sandbox.add_object(vendor, LINE_ITEM, item, line_item_object(channel, {DAY: cents}))


def fetch(sandbox: SandboxServer, dsp: str, tmp_path: Path, **overrides: Any) -> list[LineItemDay]:
    cls, mount, _, extra = VENDORS[dsp]
    config = {"base_url": f"{sandbox.url}/{mount}", "api_key": "sandbox-token", "backoff_base_s": 0.001,
              "timeout_s": GENEROUS_TIMEOUT_S, "poll_interval_s": 0.01}
    resource = cls(**(config | extra | overrides))

    async def body() -> list[LineItemDay]:
        async with resource.session(tmp_path) as client:
            return await client.line_item_delivery(queries(), DAY, name=NAME)

    return asyncio.run(body())


def calls(sandbox: SandboxServer, vendor: str, endpoint: str) -> list[dict[str, Any]]:
    return [c for c in sandbox.state()["calls"] if c["vendor"] == vendor and c["endpoint"] == endpoint]


def objects(sandbox: SandboxServer, vendor: str, kind: str) -> list[dict[str, Any]]:
    return [o for o in sandbox.state()["vendors"][vendor]["objects"] if o["kind"] == kind]


@pytest.mark.parametrize("dsp", VENDORS)
def test_a_report_job_is_polled_until_done_and_reads_the_model(sandbox: SandboxServer, dsp: str, tmp_path: Path) -> None:
    sandbox.reset(scale=0.01)  # a report job takes 0.2 s: several polls
    register(sandbox, VENDORS[dsp][1])
    rows = fetch(sandbox, dsp, tmp_path)
    assert rows == [expected("li-display-1"), expected("li-search-2"), LineItemDay("li-unknown", DAY, 0, 0, 0)]
    assert len(calls(sandbox, VENDORS[dsp][1], POLL[dsp])) >= 2  # it was still running at the first look
    assert len(calls(sandbox, VENDORS[dsp][1], VENDORS[dsp][2])) == 1


@pytest.mark.parametrize("dsp", VENDORS)
def test_a_lost_create_is_found_not_asked_twice(sandbox: SandboxServer, dsp: str, tmp_path: Path) -> None:
    _, vendor, create, _ = VENDORS[dsp]
    register(sandbox, vendor)
    sandbox.queue_fault(vendor, "lost_response", create)
    assert fetch(sandbox, dsp, tmp_path)[:2] == [expected("li-display-1"), expected("li-search-2")]
    kind = {"amazon": "report", "trade_desk": "schedule", "dv360": "query"}[dsp]
    assert len(objects(sandbox, vendor, kind)) == 1  # one report job at the vendor, not two


def test_a_lost_run_of_a_bid_manager_query_is_found(sandbox: SandboxServer, tmp_path: Path) -> None:
    register(sandbox, "bid-manager")
    sandbox.queue_fault("bid-manager", "lost_response", "POST /v2/queries/{queryId}:run")
    assert fetch(sandbox, "dv360", tmp_path)[0] == expected("li-display-1")
    assert len(objects(sandbox, "bid-manager", "report")) == 1


@pytest.mark.parametrize("dsp", VENDORS)
def test_429s_are_waited_out(sandbox: SandboxServer, dsp: str, tmp_path: Path) -> None:
    _, vendor, create, _ = VENDORS[dsp]
    register(sandbox, vendor)
    sandbox.queue_fault(vendor, "429", create, times=2)
    sandbox.queue_fault(vendor, "429", POLL[dsp])
    assert fetch(sandbox, dsp, tmp_path)[1] == expected("li-search-2")
    limited = [c for c in sandbox.state()["calls"] if c["vendor"] == vendor and c["fault"] == "429"]
    assert len(limited) == 3


def test_a_report_asked_again_reads_the_same_numbers(sandbox: SandboxServer, tmp_path: Path) -> None:
    register(sandbox, "amazon-ads")
    first = fetch(sandbox, "amazon", tmp_path)
    assert fetch(sandbox, "amazon", tmp_path) == first  # the 425 names the first report: read again
    assert len(objects(sandbox, "amazon-ads", "report")) == 1


def test_an_unknown_token_is_refused_in_the_vendors_shape(sandbox: SandboxServer, tmp_path: Path) -> None:
    from campaign_assets.services.http import PermanentVendorError

    with pytest.raises(PermanentVendorError) as raised:
        fetch(sandbox, "trade_desk", tmp_path, api_key="revoked-token")
    assert raised.value.status_code == 401 and "TTD-Auth" in raised.value.message


def test_local_backend_is_the_same_model_and_writes_its_report(tmp_path: Path) -> None:
    async def body() -> list[LineItemDay]:
        async with AmazonReportingResource().session(tmp_path) as client:
            assert isinstance(client, LocalDSPReporting)
            return await client.line_item_delivery(queries()[:2], DAY, name=NAME)

    assert asyncio.run(body()) == [expected("li-display-1"), expected("li-search-2")]
    assert (tmp_path / "amazon_reporting" / "reports" / f"{DAY.isoformat()}.json").exists()


# ---- line items made through the sandbox's DSP campaign management are reported on ------------------------------
MANAGED = {  # dsp: (management resource, its mount, its settings)
    "amazon": ("campaign_assets.services.amazon_dsp:AmazonDSPResource", "amazon-dsp",
               {"client_id": "c", "profile_id": "1", "advertiser_id": "4000000000000001"}),
    "trade_desk": ("campaign_assets.services.trade_desk:TradeDeskResource", "trade-desk/v3", {"advertiser_id": "adv1"}),
    "dv360": ("campaign_assets.services.dv360:DV360Resource", "dv360", {"advertiser_id": "5000000000000001"}),
}


@pytest.mark.parametrize("dsp", MANAGED)
def test_a_line_item_made_at_the_dsp_is_reported_at_its_even_daily_budget(
    sandbox: SandboxServer, dsp: str, tmp_path: Path
) -> None:
    import importlib

    path, mount, settings = MANAGED[dsp]
    module, _, name = path.partition(":")
    manager = getattr(importlib.import_module(module), name)(
        base_url=f"{sandbox.url}/{mount}", api_key="sandbox-token", backoff_base_s=0.001, timeout_s=GENEROUS_TIMEOUT_S,
        **settings,
    )
    start, end = DAY - dt.timedelta(days=2), DAY + dt.timedelta(days=7)  # ten days

    async def make() -> str:
        async with manager.session(tmp_path) as client:
            order = await client.create_order("Q4 — display", 1_000_000, "USD", start, end, marker="[ca:o]")
            line = await client.create_line_item(order.order_id, "Q4 — display", 1_000_000, "USD", start, end,
                                                 marker="[ca:l]")
            return line.line_item_id

    line_id = asyncio.run(make())
    cls, reporting_mount, _, extra = VENDORS[dsp]
    reporter = cls(base_url=f"{sandbox.url}/{reporting_mount}", api_key="sandbox-token", backoff_base_s=0.001,
                   timeout_s=GENEROUS_TIMEOUT_S, poll_interval_s=0.01, **extra)

    async def report() -> list[LineItemDay]:
        async with reporter.session(tmp_path) as client:
            return await client.line_item_delivery([LineItemQuery(line_id, "display")], DAY, name=NAME)

    d = media_delivery(line_id, DAY, 100_000, "display")  # 10,000.00 over ten days, evenly
    assert asyncio.run(report()) == [LineItemDay(line_id, DAY, d.impressions, d.clicks, d.spend_cents)]
