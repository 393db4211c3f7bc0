"""Slack Web API: post, list and delete channel messages.

Slack answers HTTP 200 with ``{"ok": false, "error": …}`` for most errors; only
rate limits (429, with Retry-After), unknown methods (404) and server errors differ.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

from starlette.responses import Response

from campaign_assets.sandbox.state import AuthOutcome, ObjectStore
from campaign_assets.sandbox.vendors.base import (
    ApiError,
    Call,
    Endpoint,
    ErrorStyle,
    Vendor,
    decode_offset,
    encode_offset,
    int_param,
    json_response,
)

LATENCY_S = 1.0
_CHANNEL = re.compile(r"[CGD][A-Z0-9]{2,}|#[a-z0-9._-]+")
_BOT = {"user": "U0SANDBOXBOT", "bot_id": "B0SANDBOX", "app_id": "A0SANDBOX"}


class SlackErrors(ErrorStyle):
    _codes: Mapping[int, str] = {
        401: "invalid_auth",
        404: "unknown_method",
        429: "ratelimited",
        500: "internal_error",
        503: "service_unavailable",
        504: "request_timeout",
    }
    sends_retry_after = True

    def http_status(self, error: ApiError) -> int:
        return 200 if 400 <= error.status < 500 and error.status not in (404, 429) else error.status

    def body(self, error: ApiError) -> dict[str, Any]:
        return {"ok": False, "error": error.code or self._codes.get(error.status, "invalid_arguments")}

    def auth_failure(self, outcome: AuthOutcome) -> ApiError:
        return ApiError(401, code="not_authed" if outcome == "missing" else "invalid_auth")

    def unknown_endpoint(self, method: str, path: str) -> ApiError:
        return ApiError(404, code="unknown_method")


def _channel(value: Any) -> str:
    if not isinstance(value, str) or not _CHANNEL.fullmatch(value):
        raise ApiError(400, code="channel_not_found")
    return value


def _next_ts(store: ObjectStore) -> str:
    """A fresh message timestamp (``seconds.micros``), unique like Slack's."""
    micros = time.time_ns() // 1000
    while (ts := f"{micros // 1_000_000}.{micros % 1_000_000:06d}") in store:
        micros += 1
    return ts


def post_message(call: Call) -> Response:
    body = call.json()
    channel = _channel(body.get("channel"))
    if not body.get("text") and not body.get("blocks"):
        raise ApiError(400, code="no_text")
    ts = _next_ts(call.store)
    message = {"type": "message", "text": str(body.get("text", "")), "ts": ts, **_BOT}
    message.update({key: body[key] for key in ("blocks", "metadata") if key in body})
    call.store.add("message", ts, {**message, "channel": channel})
    return json_response({"ok": True, "channel": channel, "ts": ts, "message": message})


def conversations_history(call: Call) -> Response:
    channel = _channel(call.query.get("channel"))
    limit = int_param(call.query, "limit", 100, 1, 999, ApiError(400, code="invalid_limit"))
    start = decode_offset(call.query.get("cursor"), ApiError(400, code="invalid_cursor"))
    messages = sorted(
        (m.data for m in call.store.live("message") if m.data["channel"] == channel),
        key=lambda message: message["ts"],
        reverse=True,
    )
    page = [{k: v for k, v in m.items() if k != "channel"} for m in messages[start : start + limit]]
    has_more = start + limit < len(messages)
    return json_response(
        {
            "ok": True,
            "messages": page,
            "has_more": has_more,
            "pin_count": 0,
            "response_metadata": {"next_cursor": encode_offset(start + limit) if has_more else ""},
        }
    )


def delete_message(call: Call) -> Response:
    body = call.json()
    channel = _channel(body.get("channel"))
    message = call.store.find("message", str(body.get("ts")))
    if message is None or message.data["channel"] != channel:
        raise ApiError(400, code="message_not_found")
    message.deleted = True
    return json_response({"ok": True, "channel": channel, "ts": message.id})


SLACK = Vendor(
    name="slack",
    mount="/slack/api",
    errors=SlackErrors(),
    endpoints=(
        Endpoint("POST", "/chat.postMessage", post_message, LATENCY_S),
        Endpoint("GET", "/conversations.history", conversations_history, LATENCY_S),
        Endpoint("POST", "/chat.delete", delete_message, LATENCY_S),
    ),
)
