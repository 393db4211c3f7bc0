"""The DV360 HTTP backend against the vendor sandbox: created paused, live,
read back, exactly once on a lost response at every write, 429 waited on, a
revoked token permanent, teardown. Scenarios in ``dsp_clients``."""

from __future__ import annotations

from pathlib import Path

import pytest

from campaign_assets.sandbox.server import SandboxServer
from campaign_assets.services.dv360 import DV360Resource
from campaign_assets_tests import dsp_clients as dc
from campaign_assets.services.http import PermanentVendorError

VENDOR = dc.Vendor(
    name="dv360",
    resource=DV360Resource,
    fields={"advertiser_id": "5000000000000001"},
    mount="/dv360",
    order_create="POST /v3/advertisers/{advertiserId}/insertionOrders",
    line_create="POST /v3/advertisers/{advertiserId}/lineItems",
    line_update="PATCH /v3/advertisers/{advertiserId}/lineItems/{lineItemId}",
    line_kind="lineItem",
    revoked_message="invalid authentication credentials",
)
WRITES = [VENDOR.order_create, VENDOR.line_create, VENDOR.line_update]


def test_created_paused_then_live_and_read_back(sandbox: SandboxServer, tmp_path: Path) -> None:
    dc.created_paused_then_live_and_read_back(VENDOR, sandbox, tmp_path)


def test_line_items_are_draft_and_budgets_in_micros(sandbox: SandboxServer, tmp_path: Path) -> None:
    dc.run(VENDOR, sandbox, tmp_path, lambda client: dc.order_and_line(client, cents=12_345))
    (line,) = dc.objects(sandbox, VENDOR, "lineItem")
    assert line["entityStatus"] == "ENTITY_STATUS_DRAFT" and line["budget"]["maxAmount"] == "123450000"


def test_an_archived_line_item_cannot_go_live(sandbox: SandboxServer, tmp_path: Path) -> None:
    async def body(client):
        _, line = await dc.order_and_line(client)
        await client.set_status(line.line_item_id, "archived")
        await client.set_status(line.line_item_id, "live")

    with pytest.raises(PermanentVendorError) as raised:
        dc.run(VENDOR, sandbox, tmp_path, body)
    assert raised.value.status_code == 400


@pytest.mark.parametrize("endpoint", WRITES)
def test_lost_response_leaves_exactly_one(sandbox: SandboxServer, tmp_path: Path, endpoint: str) -> None:
    dc.lost_response_is_exactly_once(VENDOR, sandbox, tmp_path, endpoint)


def test_rate_limit_is_waited_on(sandbox: SandboxServer, tmp_path: Path) -> None:
    dc.rate_limit_is_waited_on(VENDOR, sandbox, tmp_path)


def test_revoked_token_is_permanent(sandbox: SandboxServer, tmp_path: Path) -> None:
    dc.revoked_token_is_permanent(VENDOR, sandbox, tmp_path)


def test_teardown_pauses_then_archives_and_deletes(sandbox: SandboxServer, tmp_path: Path) -> None:
    assert dc.teardown_pauses_then_removes(VENDOR, sandbox, tmp_path) == [True, False, True, False]
    assert dc.objects(sandbox, VENDOR, "lineItem") == [] and dc.objects(sandbox, VENDOR, "insertionOrder") == []


def test_lost_response_on_delete_is_already_gone(sandbox: SandboxServer, tmp_path: Path) -> None:
    async def body(client):
        order, line = await dc.order_and_line(client)
        sandbox.queue_fault(VENDOR.name, "lost_response", "DELETE /v3/advertisers/{advertiserId}/lineItems/{lineItemId}")
        return await client.delete_line_item(line.line_item_id)

    assert dc.run(VENDOR, sandbox, tmp_path, body) is False  # deleted by the lost call; the retry finds it gone
    assert dc.objects(sandbox, VENDOR, "lineItem") == []

