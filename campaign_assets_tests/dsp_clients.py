"""What the three DSP client tests share: one scenario set, run against each
vendor of the sandbox through its own resource (see test_clients_amazon_dsp,
test_clients_trade_desk, test_clients_dv360)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from campaign_assets.sandbox.server import SandboxServer
from campaign_assets.services.dsp import DSPResource
from campaign_assets.services.http import PermanentVendorError
from campaign_assets_tests.http_doubles import GENEROUS_TIMEOUT_S

START, END = dt.date(2027, 1, 4), dt.date(2027, 3, 28)
ORDER_MARKER = "[ca:acme/q4/dsp_activation/order:display]"
LINE_MARKER = "[ca:acme/q4/dsp_activation/line-item:display]"


@dataclass(frozen=True)
class Vendor:
    """One DSP as the sandbox serves it."""

    name: str  # the sandbox vendor
    resource: Callable[..., DSPResource]
    fields: dict[str, Any]  # the resource's vendor settings (advertiser, ...)
    mount: str
    order_create: str  # endpoint names of the writes
    line_create: str
    line_update: str
    line_kind: str  # the sandbox object kind of a line item
    revoked_message: str

    def make(self, sandbox: SandboxServer, **overrides: Any) -> DSPResource:
        config: dict[str, Any] = dict(
            base_url=f"{sandbox.url}{self.mount}",
            api_key=f"sandbox-{self.name}-token",
            backoff_base_s=0.001,
            timeout_s=GENEROUS_TIMEOUT_S,
            **self.fields,
        )
        return self.resource(**(config | overrides))


def run(vendor: Vendor, sandbox: SandboxServer, tmp_path: Path, body: Callable[[Any], Awaitable[Any]], **overrides: Any) -> Any:
    async def scenario() -> Any:
        async with vendor.make(sandbox, **overrides).session(tmp_path) as client:
            assert client.backend == "http"
            return await body(client)

    return asyncio.run(scenario())


def objects(sandbox: SandboxServer, vendor: Vendor, kind: str) -> list[dict[str, Any]]:
    found = sandbox.state()["vendors"][vendor.name]["objects"]
    return [o["data"] for o in found if o["kind"] == kind and not o["deleted"]]


def calls(sandbox: SandboxServer, vendor: Vendor, endpoint: str | None = None) -> list[dict[str, Any]]:
    return [c for c in sandbox.state()["calls"] if c["vendor"] == vendor.name and endpoint in (None, c["endpoint"])]


async def order_and_line(client: Any, cents: int = 8_750_012) -> tuple[Any, Any]:
    order = await client.create_order("Q4 — display", cents, "USD", START, END, marker=ORDER_MARKER)
    line = await client.create_line_item(order.order_id, "Q4 — display", cents, "USD", START, END, marker=LINE_MARKER)
    return order, line


# ---- the scenarios --------------------------------------------------------------------
def created_paused_then_live_and_read_back(vendor: Vendor, sandbox: SandboxServer, tmp_path: Path) -> None:
    async def body(client: Any) -> None:
        order, line = await order_and_line(client)
        assert line.status == "paused" and line.order_id == order.order_id
        assert (line.budget_cents, line.start, line.end) == (8_750_012, START, END)
        assert await client.find_order(marker=ORDER_MARKER) == order
        assert (await client.find_line_item(order.order_id, marker=LINE_MARKER)).line_item_id == line.line_item_id
        assert await client.find_line_item(order.order_id, marker="[ca:other]") is None
        live = await client.set_status(line.line_item_id, "live")
        again = await client.set_status(line.line_item_id, "live")  # idempotent
        assert live.status == again.status == "live"
        read = await client.get_line_item(line.line_item_id)
        assert (read.status, read.budget_cents) == ("live", 8_750_012)
        assert (await client.set_status(line.line_item_id, "paused")).status == "paused"

    run(vendor, sandbox, tmp_path, body)
    assert len(objects(sandbox, vendor, vendor.line_kind)) == 1


def lost_response_is_exactly_once(vendor: Vendor, sandbox: SandboxServer, tmp_path: Path, endpoint: str) -> None:
    async def body(client: Any) -> None:
        sandbox.queue_fault(vendor.name, "lost_response", endpoint)
        order, line = await order_and_line(client)
        assert (await client.set_status(line.line_item_id, "live")).status == "live"
        if endpoint in (vendor.order_create, vendor.line_create):
            assert client.stats.reconciled == 1

    run(vendor, sandbox, tmp_path, body)
    assert len(objects(sandbox, vendor, vendor.line_kind)) == 1
    assert len(calls(sandbox, vendor, endpoint)) >= 1
    if endpoint != vendor.line_update:
        assert len(calls(sandbox, vendor, endpoint)) == 1  # a create is never resent blindly


def rate_limit_is_waited_on(vendor: Vendor, sandbox: SandboxServer, tmp_path: Path) -> None:
    sandbox.queue_fault(vendor.name, "429", vendor.line_create, times=2)

    async def body(client: Any) -> str:
        return (await order_and_line(client))[1].line_item_id

    line_id = run(vendor, sandbox, tmp_path, body)
    assert [c["status"] for c in calls(sandbox, vendor, vendor.line_create)] == [429, 429, 200]
    assert len(objects(sandbox, vendor, vendor.line_kind)) == 1 and line_id


def revoked_token_is_permanent(vendor: Vendor, sandbox: SandboxServer, tmp_path: Path) -> None:
    token = f"revoked-{vendor.name}-token-0123456789"

    async def body(client: Any) -> None:
        await client.create_order("Q4", 100, "USD", START, END, marker=ORDER_MARKER)

    with pytest.raises(PermanentVendorError) as raised:
        run(vendor, sandbox, tmp_path, body, api_key=token)
    assert raised.value.status_code == 401 and vendor.revoked_message in raised.value.message
    assert token not in str(raised.value)
    assert len(calls(sandbox, vendor)) == 1


def teardown_pauses_then_removes(vendor: Vendor, sandbox: SandboxServer, tmp_path: Path) -> list[bool]:
    async def body(client: Any) -> list[bool]:
        order, line = await order_and_line(client)
        await client.set_status(line.line_item_id, "live")
        await client.set_status(line.line_item_id, "paused")
        done = [
            await client.delete_line_item(line.line_item_id),
            await client.delete_line_item(line.line_item_id),
            await client.delete_order(order.order_id),
            await client.delete_order(order.order_id),
        ]
        gone = await client.get_line_item(line.line_item_id)
        assert gone is None or gone.status == "archived"
        return done

    return run(vendor, sandbox, tmp_path, body)
