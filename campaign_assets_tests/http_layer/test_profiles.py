"""Vendor profiles: error messages, classification of HTTP-200 failures, the Retry-After parser."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from campaign_assets.services.http import (
    PermanentVendorError,
    VendorError,
    VendorProfile,
    body_flag_classifier,
    default_error_message,
    default_retry_after,
    parse_retry_after,
)
from campaign_assets_tests.http_layer.vendor import (
    Server,
    reply,
    run,
    session,
)

# --------------------------------------------------------------------------------------
# Vendor-level signals in HTTP 200 bodies (Slack)
# --------------------------------------------------------------------------------------

SLACK = VendorProfile(service="slack", classify=body_flag_classifier())


def test_slack_ok_false_ratelimited_is_retried(server: Server) -> None:
    server.vendor.script(
        "POST", "/api/chat.postMessage",
        reply(200, {"ok": False, "error": "ratelimited"}, headers={"Retry-After": "0.01"}),
        reply(200, {"ok": True, "ts": "1700000000.000100"}),
    )

    async def main() -> Any:
        async with session(server, service="slack", profile=SLACK) as http:
            return await http.json("POST", "/api/chat.postMessage", json={"channel": "C1", "text": "hi"}), http.stats

    payload, stats = run(main())
    assert payload["ok"] is True
    assert server.vendor.count() == 2 and stats.rate_limited == 1


def test_slack_ok_false_invalid_auth_is_permanent(server: Server) -> None:
    server.vendor.script("POST", "/api/chat.postMessage", then=reply(200, {"ok": False, "error": "invalid_auth"}))

    async def main() -> VendorError:
        async with session(server, service="slack", profile=SLACK) as http:
            with pytest.raises(PermanentVendorError) as caught:
                await http.request("POST", "/api/chat.postMessage", json={"channel": "C1"})
            return caught.value

    error = run(main())
    assert error.message == "invalid_auth" and error.status_code == 200
    assert server.vendor.count() == 1


def test_custom_classify_and_error_message_functions(server: Server) -> None:
    # A vendor that signals "busy" with 409 and puts its message in a header.
    profile = VendorProfile(
        service="odd",
        classify=lambda r: "retryable" if r.status_code == 409 else ("permanent" if r.status_code >= 400 else "ok"),
        error_message=lambda r: r.headers.get("x-error", "?"),
    )
    server.vendor.script("GET", "/odd", reply(409, {}), then=reply(418, {}, headers={"x-error": "teapot"}))

    async def main() -> VendorError:
        async with session(server, profile=profile) as http:
            with pytest.raises(PermanentVendorError) as caught:
                await http.request("GET", "/odd")
            return caught.value

    assert run(main()).message == "teapot"
    assert server.vendor.count() == 2


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (401, {"error": {"message": "Incorrect API key", "type": "invalid_request_error", "code": "invalid_api_key"}},
         "invalid_api_key: Incorrect API key"),
        (403, {"error": {"code": 403, "message": "The caller does not have permission", "status": "PERMISSION_DENIED"}},
         "PERMISSION_DENIED: The caller does not have permission"),
        (400, {"errors": [{"message": "name: Missing input", "help": "..."}, {"message": "due_on: bad date"}]},
         "name: Missing input; due_on: bad date"),
        (400, {"code": "invalid_field", "message": "Design type is invalid"}, "invalid_field: Design type is invalid"),
        (200, {"ok": False, "error": "invalid_auth"}, "invalid_auth"),
        (200, {"ok": False, "error": "invalid_arguments", "response_metadata": {"messages": ["[ERROR] missing channel"]}},
         "invalid_arguments: [ERROR] missing channel"),
        (400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."},
         "invalid_grant: Token has been expired or revoked."),
        (422, {"title": "Unprocessable", "detail": "bad size"}, "Unprocessable: bad size"),
        (502, b"<html>Bad Gateway</html>", "<html>Bad Gateway</html>"),
        (503, b"", "Service Unavailable"),
    ],
)
def test_default_error_message_understands_vendor_shapes(status: int, body: Any, expected: str) -> None:
    if isinstance(body, bytes):
        response = httpx.Response(status, content=body)
    else:
        response = httpx.Response(status, json=body)
    assert default_error_message(response) == expected


def test_default_error_message_truncates() -> None:
    assert len(default_error_message(httpx.Response(500, json={"message": "x" * 5000}))) == 500


def test_parse_retry_after() -> None:
    now = datetime(2027, 1, 4, 12, 0, 0, tzinfo=timezone.utc)
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(" 0.25 ") == 0.25
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now=now) == 30.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now=now) == 0.0
    assert parse_retry_after("-5") == 0.0
    for bad in (None, "", "soon", "nan", "inf"):
        assert parse_retry_after(bad) is None
    assert default_retry_after(httpx.Response(429, headers={"Retry-After": "0.4", "x-sandbox-retry-after": "3"})) == 0.4
    assert default_retry_after(httpx.Response(429, headers={"x-sandbox-retry-after": "0.4"})) is None
    assert default_retry_after(httpx.Response(429, headers={"Retry-After": "3"})) == 3.0
    assert default_retry_after(httpx.Response(429)) is None
