"""Buffer's published REST API (``https://api.bufferapp.com/1``): queue, list, read and destroy updates.

Shapes follow buffer.com/developers/api (updates, profiles, errors): POST bodies are
``application/x-www-form-urlencoded`` with ``profile_ids[]``; every answer is JSON; errors are
``{"success": false, "code": N, "message": "..."}``; 60 authenticated requests per token per
minute, over which Buffer answers 429 (no Retry-After). Buffer refuses to queue the same text
twice on one profile (code 1025), as it does for recently posted content.

Profiles: any 24-hex-digit id is a connected profile (Buffer ids are Mongo ObjectIds). Queued
updates stay ``buffer`` (pending): nothing is ever really posted.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from starlette.responses import Response

from campaign_assets.logic.delivery import buffer_statistics
from campaign_assets.sandbox.state import AuthOutcome, StoredObject
from campaign_assets.sandbox.vendors.base import (
    ApiError,
    Call,
    Endpoint,
    ErrorStyle,
    Vendor,
    int_param,
    json_response,
)

WRITE_LATENCY_S = 0.5
READ_LATENCY_S = 0.3
_PROFILE = re.compile(r"[0-9a-f]{24}")
_CODES: Mapping[int, tuple[int, str]] = {
    400: (1004, "Required parameter missing."),
    401: (401, "Unauthorized."),
    404: (1020, "Update could not be found."),
    429: (429, "You have exceeded the rate limit of 60 requests per minute."),
    500: (1000, "An unknown error occurred."),
    503: (1000, "Service unavailable."),
    504: (1000, "Request timed out."),
}


class BufferErrors(ErrorStyle):
    """``{"success": false, "code", "message"}``; no Retry-After on 429."""

    def body(self, error: ApiError) -> dict[str, Any]:
        code, message = _CODES.get(error.status, (1000, "An unknown error occurred."))
        return {"success": False, "code": int(error.code) if error.code else code, "message": error.message or message}

    def auth_failure(self, outcome: AuthOutcome) -> ApiError:
        if outcome == "missing":
            return ApiError(401, "Access token required.", code="1001")
        return ApiError(401, "OAuth oauth2 access token is invalid or expired.", code="401")

    def unknown_endpoint(self, method: str, path: str) -> ApiError:
        return ApiError(404, "Endpoint not found.", code="1005")


def _form(call: Call) -> dict[str, list[str]]:
    try:
        return parse_qs(call.body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise ApiError(400, "Invalid request body.", code="1003") from None


def _scheduled_at(value: str) -> int:
    """A unix timestamp or an ISO 8601 date-time, as Buffer accepts for ``scheduled_at``."""
    if value.isdigit():
        return int(value)
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, "Parameter value not within bounds: scheduled_at.", code="1006") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return int(moment.timestamp())


def _profile(profile_id: str) -> str:
    if not _PROFILE.fullmatch(profile_id):
        raise ApiError(404, "Profile could not be found.", code="1010")
    return profile_id


def _pending(call: Call, profile_id: str) -> list[dict[str, Any]]:
    updates = [u.data for u in call.store.live("update") if u.data["profile_id"] == profile_id]
    return sorted(updates, key=lambda u: (u["due_at"], u["created_at"], u["id"]))


def _view(update: dict[str, Any]) -> dict[str, Any]:
    """The update with its lifetime ``statistics`` so far: the delivery model's
    (``logic/delivery.buffer_statistics``) from its due day through today."""
    today = dt.datetime.now(dt.timezone.utc).date()
    posted = dt.datetime.fromtimestamp(int(update["due_at"]), dt.timezone.utc).date()
    return update | {"statistics": buffer_statistics(update["id"], update.get("profile_service") or "", posted, today)}


def create_update(call: Call) -> Response:
    form = _form(call)
    profile_ids = [_profile(p) for p in form.get("profile_ids[]", [])]
    text = (form.get("text") or [""])[0]
    if not profile_ids:
        raise ApiError(400, "Required parameter missing: profile_ids.", code="1004")
    if not text.strip():
        raise ApiError(400, "Required parameter missing: text.", code="1004")
    now = int(time.time())
    raw = (form.get("scheduled_at") or [""])[0]
    due_at = _scheduled_at(raw) if raw else now + 3600
    for profile_id in profile_ids:
        if any(u["text"] == text for u in _pending(call, profile_id)):
            raise ApiError(400, "Update was recently posted, can't post duplicate content.", code="1025")
    created = []
    for profile_id in profile_ids:
        update_id = call.ids.alphanumeric(24)
        moment = dt.datetime.fromtimestamp(due_at, dt.timezone.utc)
        update = {
            "id": update_id,
            "created_at": now,
            "day": moment.strftime("%A %d %B"),
            "due_at": due_at,
            "due_time": moment.strftime("%I:%M %p").lower(),
            "profile_id": profile_id,
            "profile_service": "twitter",
            "status": "buffer",
            "text": text,
            "text_formatted": text,
            "user_id": "4eb9276e0acb04bb81000067",
            "via": "api",
        }
        call.store.add("update", update_id, update)
        created.append(update)
    total = len(_pending(call, profile_ids[0]))
    return json_response(
        {"success": True, "buffer_count": total, "buffer_percentage": min(100, total * 10),
         "updates": [_view(u) for u in created]}
    )


def pending_updates(call: Call) -> Response:
    profile_id = _profile(call.params["id"])
    count = int_param(call.query, "count", 10, 1, 100, ApiError(400, "count must be between 1 and 100.", code="1006"))
    page = int_param(call.query, "page", 1, 1, 10**6, ApiError(400, "page must be positive.", code="1006"))
    updates = _pending(call, profile_id)
    start = (page - 1) * count
    return json_response({"total": len(updates), "updates": [_view(u) for u in updates[start : start + count]]})


def _find(call: Call) -> StoredObject:
    found = call.store.find("update", call.params["id"])
    if found is None:
        raise ApiError(404)
    return found


def get_update(call: Call) -> Response:
    return json_response(_view(_find(call).data))


def destroy_update(call: Call) -> Response:
    _find(call).deleted = True
    return json_response({"success": True})


BUFFER = Vendor(
    name="buffer",
    mount="/buffer/1",
    errors=BufferErrors(),
    endpoints=(
        Endpoint("POST", "/updates/create.json", create_update, WRITE_LATENCY_S),
        Endpoint("GET", "/profiles/{id}/updates/pending.json", pending_updates, READ_LATENCY_S),
        Endpoint("GET", "/updates/{id}.json", get_update, READ_LATENCY_S),
        Endpoint("POST", "/updates/{id}/destroy.json", destroy_update, WRITE_LATENCY_S),
    ),
)
