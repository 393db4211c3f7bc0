"""The Canva HTTP backend against the vendor sandbox: upload jobs, designs, retries and exactly-once creates."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from campaign_assets.sandbox.content import render_png
from campaign_assets.sandbox.server import SandboxServer
from campaign_assets.services.canva import ASSET_NAME_MAX, CanvaResource, Design, HttpCanva, asset_name, marker_tag
from campaign_assets.services.http import PermanentVendorError
from campaign_assets_tests.http_doubles import GENEROUS_TIMEOUT_S, time_out_next

TOKEN = "sandbox-canva-token"
MARKER = "[ca:acme/q4-product-launch/creatives/creative:300x250]"
TITLE = f"Q4 Product Launch 300x250 {MARKER}"
PNG = render_png("creative", 300, 250)


def resource(sandbox: SandboxServer, **overrides: Any) -> CanvaResource:
    config: dict[str, Any] = dict(
        base_url=f"{sandbox.url}/canva/rest",
        api_key=TOKEN,
        backoff_base_s=0.001,
        timeout_s=GENEROUS_TIMEOUT_S,
        poll_interval_s=0.005,
    )
    return CanvaResource(**(config | overrides))


def live(sandbox: SandboxServer, kind: str) -> list[dict[str, Any]]:
    objects = sandbox.state()["vendors"]["canva"]["objects"]
    return [o["data"] for o in objects if o["kind"] == kind and not o["deleted"]]


def calls(sandbox: SandboxServer, endpoint: str | None = None) -> list[dict[str, Any]]:
    return [
        c for c in sandbox.state()["calls"] if c["vendor"] == "canva" and endpoint in (None, c["endpoint"])
    ]


async def upload_and_design(client: HttpCanva) -> Design:
    asset = await client.upload_asset("q4-product-launch-300x250.png", PNG, marker=MARKER)
    return await client.create_design(TITLE, 300, 250, asset.asset_id, marker=MARKER)


def test_asset_names_fit_canva_and_carry_the_marker_tag() -> None:
    name = asset_name("a-campaign-id-that-is-long-enough-to-need-cutting-300x250.png", MARKER)
    assert len(name) == ASSET_NAME_MAX and name.endswith(" " + marker_tag(MARKER))
    assert asset_name("short.png", MARKER) == f"short.png {marker_tag(MARKER)}"
    assert marker_tag(MARKER) != marker_tag(MARKER.replace("300x250", "728x90"))


def test_upload_polls_the_job_then_designs_and_deletes(sandbox: SandboxServer, tmp_path: Path) -> None:
    async def scenario() -> tuple[str, Design]:
        async with resource(sandbox).session(tmp_path) as client:
            assert isinstance(client, HttpCanva)
            asset = await client.upload_asset("q4-product-launch-300x250.png", PNG, marker=MARKER)
            design = await client.create_design(TITLE, 300, 250, asset.asset_id, marker=MARKER)
            assert await client.find_design(marker=MARKER) == design
            assert await client.find_design(marker="[ca:nothing]") is None
            return asset.asset_id, design

    asset_id, design = asyncio.run(scenario())
    [asset] = live(sandbox, "asset")
    assert asset["id"] == asset_id and asset["name"] == asset_name("q4-product-launch-300x250.png", MARKER)
    [stored] = live(sandbox, "design")
    assert (stored["id"], stored["title"], stored["asset_id"]) == (design.design_id, TITLE, asset_id)
    assert (stored["width"], stored["height"]) == (300, 250)
    assert design.edit_url.endswith("/edit") and design.view_url.endswith("/view")
    assert len(calls(sandbox, "GET /v1/asset-uploads/{jobId}")) >= 2  # polled while in progress

    async def teardown() -> None:
        async with resource(sandbox).session(tmp_path) as client:
            await client.delete_asset(asset_id)
            await client.delete_asset(asset_id)  # already gone: 404 is fine

    asyncio.run(teardown())
    assert live(sandbox, "asset") == []


def test_rate_limit_without_retry_after_backs_off_and_recovers(sandbox: SandboxServer, tmp_path: Path) -> None:
    sandbox.queue_fault("canva", "429", "POST /v1/designs", times=2)

    async def scenario() -> Design:
        async with resource(sandbox).session(tmp_path) as client:
            return await upload_and_design(client)

    design = asyncio.run(scenario())
    assert [d["id"] for d in live(sandbox, "design")] == [design.design_id]
    assert [c["status"] for c in calls(sandbox, "POST /v1/designs")] == [429, 429, 200]


def test_server_error_while_polling_is_retried(sandbox: SandboxServer, tmp_path: Path) -> None:
    sandbox.queue_fault("canva", "500", "GET /v1/asset-uploads/{jobId}", times=2)

    async def scenario() -> Design:
        async with resource(sandbox).session(tmp_path) as client:
            return await upload_and_design(client)

    asyncio.run(scenario())
    assert len(live(sandbox, "asset")) == 1 and len(live(sandbox, "design")) == 1
    assert [c["status"] for c in calls(sandbox, "GET /v1/asset-uploads/{jobId}")][:2] == [500, 500]


def test_revoked_token_fails_fast_with_the_vendor_message(sandbox: SandboxServer, tmp_path: Path) -> None:
    token = "revoked-canva-token-0123456789"

    async def scenario() -> None:
        async with resource(sandbox, api_key=token).session(tmp_path) as client:
            await upload_and_design(client)

    with pytest.raises(PermanentVendorError) as raised:
        asyncio.run(scenario())
    assert raised.value.status_code == 401 and "Access token is invalid" in raised.value.message
    assert token not in str(raised.value)
    assert len(calls(sandbox)) == 1


def test_timeout_on_a_design_create_is_reconciled_then_retried(
    sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox.queue_fault("canva", "timeout", "POST /v1/designs")
    time_out_next(monkeypatch, "POST /v1/designs")  # the one the sandbox holds; other calls keep a generous timeout

    async def scenario() -> Design:
        async with resource(sandbox).session(tmp_path) as client:
            return await upload_and_design(client)

    design = asyncio.run(scenario())
    assert [d["id"] for d in live(sandbox, "design")] == [design.design_id]
    assert len(calls(sandbox, "POST /v1/designs")) == 2 and len(calls(sandbox, "GET /v1/designs")) == 1


def test_lost_design_response_creates_exactly_once(sandbox: SandboxServer, tmp_path: Path) -> None:
    sandbox.queue_fault("canva", "lost_response", "POST /v1/designs")

    async def scenario() -> Design:
        async with resource(sandbox).session(tmp_path) as client:
            design = await upload_and_design(client)
            assert client.stats.reconciled == 1
            return design

    design = asyncio.run(scenario())
    assert [d["id"] for d in live(sandbox, "design")] == [design.design_id]
    assert len(calls(sandbox, "POST /v1/designs")) == 1


def test_lost_upload_response_is_reconciled_where_uploads_can_be_listed(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    """Canva lists uploads only through the Uploads folder; where that listing is missing (the
    sandbox today) a lost upload is uploaded again and leaves one orphan. The design stays single."""
    listing = httpx.get(
        f"{sandbox.url}/canva/rest/v1/folders/uploads/items", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    can_list = listing.status_code != 404
    sandbox.reset()
    sandbox.queue_fault("canva", "lost_response", "POST /v1/asset-uploads")

    async def scenario() -> Design:
        async with resource(sandbox).session(tmp_path) as client:
            return await upload_and_design(client)

    design = asyncio.run(scenario())
    [stored] = live(sandbox, "design")
    assets = {a["id"] for a in live(sandbox, "asset")}
    assert stored["id"] == design.design_id and stored["asset_id"] in assets
    assert len(assets) == (1 if can_list else 2)
    assert len(calls(sandbox, "POST /v1/asset-uploads")) == (1 if can_list else 2)


def test_find_design_follows_the_continuation(sandbox: SandboxServer, tmp_path: Path) -> None:
    """The search is case-insensitive, the match is not: 25 newer look-alikes fill the first page."""

    async def scenario() -> tuple[Design, Design | None]:
        async with resource(sandbox).session(tmp_path) as client:
            asset = await client.upload_asset("bg.png", PNG, marker=MARKER)
            target = await client.create_design(TITLE, 300, 250, asset.asset_id, marker=MARKER)
            for n in range(25):
                await client.create_design(f"Copy {n} {MARKER.upper()}", 300, 250, asset.asset_id, marker="[ca:x]")
            return target, await client.find_design(marker=MARKER)

    target, found = asyncio.run(scenario())
    assert found == target
    assert len(calls(sandbox, "GET /v1/designs")) == 2


def test_upload_job_failure_is_permanent(sandbox: SandboxServer, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with resource(sandbox).session(tmp_path) as client:
            await client.upload_asset("not-an-image.png", b"plain text", marker=MARKER)

    with pytest.raises(PermanentVendorError, match="import_failed"):
        asyncio.run(scenario())
    assert live(sandbox, "asset") == []
