"""The The Trade Desk HTTP backend against the vendor sandbox: created paused, live,
read back, exactly once on a lost response at every write, 429 waited on, a
revoked token permanent, teardown. Scenarios in ``dsp_clients``."""

from __future__ import annotations

from pathlib import Path

import pytest

from campaign_assets.sandbox.server import SandboxServer
from campaign_assets.services.trade_desk import TradeDeskResource
from campaign_assets_tests import dsp_clients as dc

VENDOR = dc.Vendor(
    name="trade-desk",
    resource=TradeDeskResource,
    fields={"advertiser_id": "ttdadv1"},
    mount="/trade-desk/v3",
    order_create="POST /campaign",
    line_create="POST /adgroup",
    line_update="PUT /adgroup",
    line_kind="adgroup",
    revoked_message="Authentication failed",
)
WRITES = [VENDOR.order_create, VENDOR.line_create, VENDOR.line_update]


def test_created_paused_then_live_and_read_back(sandbox: SandboxServer, tmp_path: Path) -> None:
    dc.created_paused_then_live_and_read_back(VENDOR, sandbox, tmp_path)


def test_budgets_travel_as_amount_and_currency(sandbox: SandboxServer, tmp_path: Path) -> None:
    dc.run(VENDOR, sandbox, tmp_path, lambda client: dc.order_and_line(client, cents=12_345))
    (ad_group,) = dc.objects(sandbox, VENDOR, "adgroup")
    budget = ad_group["RTBAttributes"]["BudgetSettings"]["Budget"]
    assert budget == {"Amount": 123.45, "CurrencyCode": "USD"} and ad_group["IsEnabled"] is False


@pytest.mark.parametrize("endpoint", WRITES)
def test_lost_response_leaves_exactly_one(sandbox: SandboxServer, tmp_path: Path, endpoint: str) -> None:
    dc.lost_response_is_exactly_once(VENDOR, sandbox, tmp_path, endpoint)


def test_rate_limit_is_waited_on(sandbox: SandboxServer, tmp_path: Path) -> None:
    dc.rate_limit_is_waited_on(VENDOR, sandbox, tmp_path)


def test_revoked_token_is_permanent(sandbox: SandboxServer, tmp_path: Path) -> None:
    dc.revoked_token_is_permanent(VENDOR, sandbox, tmp_path)


def test_teardown_pauses_then_archives(sandbox: SandboxServer, tmp_path: Path) -> None:
    assert dc.teardown_pauses_then_removes(VENDOR, sandbox, tmp_path) == [True, False, True, False]

