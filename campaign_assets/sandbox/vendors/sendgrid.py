"""SendGrid v3 Marketing Campaigns: Single Sends (create, list, get, delete, schedule, unschedule) and their stats.

Shapes follow Twilio SendGrid's API reference (docs.sendgrid.com / twilio.com/docs/sendgrid/api-reference:
"Create Single Send", "Get All Single Sends", "Schedule Single Send", "Delete Single Send Schedule",
"Get Single Send Stats by ID", "Rate Limits"): errors ``{"errors": [{"field", "message"}]}``; every
answer carries ``X-RateLimit-Limit``/``-Remaining``/``-Reset``, and a 429 says when to come back only
through ``X-RateLimit-Reset`` (epoch seconds; here fractional, as the sandbox's clock runs scaled).

A scheduled send stays ``scheduled`` (nothing goes out); once its ``send_at`` has passed it reads
``triggered`` and can no longer be unscheduled or rescheduled (a 400 naming ``send_at``; the
reference documents no code for it, 400 is what it answers for an invalid schedule).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from starlette.responses import Response

from campaign_assets.logic.delivery import EMAIL_STAT_KEYS, email_day_stats, email_list_size
from campaign_assets.sandbox.state import AuthOutcome, StoredObject
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

WRITE_LATENCY_S = 0.6
READ_LATENCY_S = 0.3
NAME_MAX = 100


class SendGridErrors(ErrorStyle):
    """``{"errors": [{"field", "message"}]}``; on 429 the ``X-RateLimit-*`` headers, no Retry-After."""

    default_messages: Mapping[int, str] = {
        401: "authorization required",
        404: "resource not found",
        429: "too many requests",
        500: "internal server error",
        503: "service unavailable",
        504: "gateway timeout",
    }

    def body(self, error: ApiError) -> dict[str, Any]:
        return {"errors": [{"field": error.code, "message": self.message(error)}]}

    def headers(self, error: ApiError) -> dict[str, str]:
        if error.status != 429:
            return {}
        wait = max(error.retry_after_s or 1.0, 0.001)
        return {
            "x-ratelimit-limit": "600",
            "x-ratelimit-remaining": "0",
            "x-ratelimit-reset": f"{time.time() + wait:.3f}",
        }

    def auth_failure(self, outcome: AuthOutcome) -> ApiError:
        if outcome == "missing":
            return ApiError(401, "authorization required")
        return ApiError(401, "The provided authorization grant is invalid, expired, or revoked")


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now() -> str:
    return _iso(dt.datetime.now(dt.timezone.utc))


def _parse_send_at(value: Any) -> dt.datetime:
    if value == "now":
        return dt.datetime.now(dt.timezone.utc)
    try:
        moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, "send_at must be an ISO 8601 date-time or now", code="send_at") from None
    if moment.tzinfo is None:
        raise ApiError(400, "send_at must carry a time zone (yyyy-MM-ddTHH:mm:ssZ)", code="send_at")
    return moment


def _refresh(send: StoredObject) -> dict[str, Any]:
    """A scheduled send whose time has come is ``triggered``."""
    data = send.data
    if data["status"] == "scheduled" and _parse_send_at(data["send_at"]) <= dt.datetime.now(dt.timezone.utc):
        data["status"] = "triggered"
    return data


def _find(call: Call) -> StoredObject:
    found = call.store.find("singlesend", call.params["id"])
    if found is None:
        raise ApiError(404)
    _refresh(found)
    return found


def _uuid(call: Call) -> str:
    raw = call.ids.alphanumeric(32)
    return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"


def create_single_send(call: Call) -> Response:
    body = call.json()
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ApiError(400, "name is required", code="name")
    if len(name) > NAME_MAX:
        raise ApiError(400, f"name must be at most {NAME_MAX} characters", code="name")
    send_to = body.get("send_to") or {}
    config = body.get("email_config") or {}
    if not isinstance(send_to, dict) or not isinstance(config, dict):
        raise ApiError(400, "send_to and email_config must be objects", code="send_to")
    now = _now()
    send_id = _uuid(call)
    data = {
        "id": send_id,
        "name": name,
        "status": "draft",
        "categories": list(body.get("categories") or []),
        "send_at": None,
        "send_to": {"list_ids": list(send_to.get("list_ids") or []), "segment_ids": [], "all": False},
        "email_config": {
            key: config.get(key)
            for key in ("subject", "html_content", "plain_content", "sender_id", "suppression_group_id")
        }
        | {"generate_plain_content": False, "editor": "code"},
        "is_abtest": False,
        "created_at": now,
        "updated_at": now,
    }
    call.store.add("singlesend", send_id, data)
    return json_response(data, 201)


_SUMMARY = ("id", "name", "status", "categories", "send_at", "is_abtest", "created_at", "updated_at")


def list_single_sends(call: Call) -> Response:
    size = int_param(call.query, "page_size", 25, 1, 100, ApiError(400, "page_size must be 1..100", code="page_size"))
    start = decode_offset(call.query.get("page_token"), ApiError(400, "invalid page_token", code="page_token"))
    sends = [_refresh(s) for s in call.store.live("singlesend")]
    page = [{k: s[k] for k in _SUMMARY} for s in sends[start : start + size]]
    metadata: dict[str, Any] = {"self": str(call.request.url), "count": len(sends)}
    if start + size < len(sends):
        query = urlencode({"page_size": size, "page_token": encode_offset(start + size)})
        metadata["next"] = str(call.request.url.replace(query=query))
    return json_response({"result": page, "_metadata": metadata})


def get_single_send(call: Call) -> Response:
    return json_response(_find(call).data)


def delete_single_send(call: Call) -> Response:
    _find(call).deleted = True
    return Response(status_code=204)


def schedule_single_send(call: Call) -> Response:
    send = _find(call)
    if send.data["status"] == "triggered":
        raise ApiError(400, "this Single Send has already been triggered and cannot be rescheduled", code="send_at")
    moment = _parse_send_at(call.json().get("send_at"))
    if call.json().get("send_at") != "now" and moment <= dt.datetime.now(dt.timezone.utc):
        raise ApiError(400, "send_at must be in the future", code="send_at")
    send.data.update(send_at=_iso(moment), status="scheduled", updated_at=_now())
    _refresh(send)
    return json_response({"send_at": send.data["send_at"], "status": send.data["status"]}, 201)


def unschedule_single_send(call: Call) -> Response:
    send = _find(call)
    if send.data["status"] == "triggered":
        raise ApiError(400, "this Single Send has already been triggered and cannot be unscheduled", code="send_at")
    send.data.update(send_at=None, status="draft", updated_at=_now())
    return json_response(
        {key: send.data[key] for key in ("id", "name", "status", "categories", "send_at", "updated_at")}
    )


def _date_param(call: Call, name: str, default: dt.date) -> dt.date:
    raw = call.query.get(name)
    if raw is None:
        return default
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be YYYY-MM-DD", code=name) from None


def single_send_stats(call: Call) -> Response:
    """``aggregated_by=day``: one result per day from ``start_date`` to ``end_date`` (``aggregation``
    the date); else one ``total`` result over that range. The numbers are the delivery model's
    (``logic/delivery.email_day_stats``) for the send's first list, zeros until it is triggered."""
    send = _find(call)
    today = dt.datetime.now(dt.timezone.utc).date()
    triggered = send.data["status"] == "triggered"
    send_day = _parse_send_at(send.data["send_at"]).date() if triggered else today
    start = _date_param(call, "start_date", send_day)
    end = _date_param(call, "end_date", today)
    by = call.query.get("aggregated_by")
    if by not in (None, "day", "total"):
        raise ApiError(400, "aggregated_by must be day or total", code="aggregated_by")
    if end < start:
        raise ApiError(400, "end_date must not be before start_date", code="end_date")
    list_ids = send.data["send_to"]["list_ids"] or [""]
    size = email_list_size(list_ids[0])

    def on(day: dt.date) -> dict[str, int]:
        return email_day_stats(send.id, size, send_day, day) if triggered else dict.fromkeys(EMAIL_STAT_KEYS, 0)

    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    base = {"id": send.id, "ab_variation": "all", "ab_phase": "all"}
    if by == "day":
        results = [base | {"aggregation": d.isoformat(), "stats": on(d)} for d in days]
    else:
        totals = dict.fromkeys(EMAIL_STAT_KEYS, 0)
        for d in days:
            for key, value in on(d).items():
                totals[key] += value
        results = [base | {"aggregation": "total", "stats": totals}]
    return json_response({"results": results, "_metadata": {"self": str(call.request.url), "count": len(results)}})


SENDGRID = Vendor(
    name="sendgrid",
    mount="/sendgrid",
    errors=SendGridErrors(),
    endpoints=(
        Endpoint("POST", "/v3/marketing/singlesends", create_single_send, WRITE_LATENCY_S),
        Endpoint("GET", "/v3/marketing/singlesends", list_single_sends, READ_LATENCY_S),
        Endpoint("GET", "/v3/marketing/singlesends/{id}", get_single_send, READ_LATENCY_S),
        Endpoint("DELETE", "/v3/marketing/singlesends/{id}", delete_single_send, WRITE_LATENCY_S),
        Endpoint("PUT", "/v3/marketing/singlesends/{id}/schedule", schedule_single_send, WRITE_LATENCY_S),
        Endpoint("DELETE", "/v3/marketing/singlesends/{id}/schedule", unschedule_single_send, WRITE_LATENCY_S),
        Endpoint("GET", "/v3/marketing/stats/singlesends/{id}", single_send_stats, READ_LATENCY_S),
    ),
)
