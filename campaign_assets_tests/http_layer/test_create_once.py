"""create_once: a write whose outcome is unknown is reconciled against the vendor, never blindly resent."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

import httpx
import pytest

from campaign_assets.services.http import (
    AmbiguousWriteError,
    HttpSession,
    PermanentVendorError,
)
from campaign_assets_tests.http_layer.vendor import (
    FAST,
    Server,
    commit_object,
    create_and_reply,
    drop,
    list_objects,
    reply,
    run,
    session,
)

# --------------------------------------------------------------------------------------
# create_once: exactly-once creates
# --------------------------------------------------------------------------------------


def _create_and_find(http: HttpSession, marker: str) -> tuple[Callable[[], Awaitable[Any]], Callable[[], Awaitable[Any]]]:
    async def create() -> Any:
        return (await http.json("POST", "/objects", json={"name": "Banner 300x250", "marker": marker}))["data"]

    async def find() -> Any:
        listing = await http.json("GET", "/objects")
        return next((o for o in listing["data"] if o["marker"] == marker), None)

    return create, find


def test_create_once_reconciles_a_write_whose_response_was_lost(server: Server) -> None:
    server.vendor.script("POST", "/objects", drop(commit=commit_object), then=create_and_reply())
    server.vendor.script("GET", "/objects", then=list_objects())

    async def main() -> Any:
        async with session(server) as http:
            create, find = _create_and_find(http, "ca:q4-launch:creatives:300x250")
            return await http.create_once(create, find), http.stats

    obj, stats = run(main())
    assert obj["marker"] == "ca:q4-launch:creatives:300x250" and obj["id"] == "obj-1"
    assert len(server.vendor.objects) == 1  # exactly once
    assert server.vendor.count("POST", "/objects") == 1
    assert stats.reconciled == 1 and stats.as_metadata()["reconciled"] == 1


def test_create_once_creates_again_when_the_failed_write_did_not_commit(server: Server) -> None:
    server.vendor.script("POST", "/objects", reply(500, {"message": "boom"}), then=create_and_reply())
    server.vendor.script("GET", "/objects", then=list_objects())

    async def main() -> Any:
        async with session(server) as http:
            create, find = _create_and_find(http, "m-2")
            return await http.create_once(create, find), http.stats

    obj, stats = run(main())
    assert obj["marker"] == "m-2"
    assert len(server.vendor.objects) == 1
    assert server.vendor.count("POST", "/objects") == 2 and server.vendor.count("GET", "/objects") == 1
    assert stats.reconciled == 0


def test_create_once_does_not_swallow_permanent_errors(server: Server) -> None:
    server.vendor.script("POST", "/objects", then=reply(400, {"message": "name is required"}))

    async def main() -> None:
        async with session(server) as http:
            create, find = _create_and_find(http, "m-3")
            with pytest.raises(PermanentVendorError, match="name is required"):
                await http.create_once(create, find)

    run(main())
    assert server.vendor.count("GET", "/objects") == 0


def test_create_once_gives_up_after_max_attempts() -> None:
    creates = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal creates
        if request.method == "POST":
            creates += 1
            raise httpx.ReadError("connection reset by peer", request=request)
        return httpx.Response(200, json={"data": []})

    async def main() -> None:
        async with session("https://vendor.example", transport=httpx.MockTransport(handler)) as http:
            create, find = _create_and_find(http, "m-4")
            with pytest.raises(AmbiguousWriteError):
                await http.create_once(create, find)

    run(main())
    assert creates == FAST.max_attempts
